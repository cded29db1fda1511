"""Test layers: the fast layer (`make check`) and the layers that start things (`make test`).

Rules:
- A test leaves the pure layer only if SLOW_LAYERS names it: a folder (`tests/sim/`), a module
  or one test (`path::name`, all its parameters), with its layers and why. The most specific
  entry wins. Layers (markers declared in pyproject.toml): `long` (pure but heavy) and those
  that start something: broker, browser, board, sumo, cli, server, process.
- Every other test, and every `long` one, is `pure`: it starts no process (subprocess, fork,
  spawn, multiprocessing, os.system), opens no pseudo-terminal and binds, connects or sends on
  no socket. The guard makes such a call raise during the test's set-up and call, and fails the
  test naming it even if it swallowed the error, so a slow test cannot hide in the fast layer.
- Calls from threads that were running before the test began are not the test's (a client
  thread left by an earlier slow test may reconnect at any time) and are let through.
- `make check` runs `--fast-layer` (`-m "pure and not long"`, without even importing what the
  table names in full); `make test` runs everything; `-m sumo` (say) runs one layer.
- The table is checked at start-up: known layers, a reason each, paths that exist, and named
  tests that exist in their collected module.
"""

from __future__ import annotations

import _posixsubprocess
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The slow layers, as declared in pyproject.toml's markers. `long` is pure (the guard holds) but
# heavy; every other one starts something.
LONG = "long"
LAYERS = ("long", "broker", "browser", "board", "sumo", "cli", "server", "process")

_BROKER = frozenset({"broker"})
_SUMO = frozenset({"sumo"})
_LONG = frozenset({LONG})

# nodeid prefix -> (layers, why). A reason says what the tests start or what makes them heavy.
SLOW_LAYERS: dict[str, tuple[frozenset[str], str]] = {
    # Processes, brokers, browsers, boards on ptys, SUMO.
    "tests/board/test_pty.py": (
        frozenset({"board", "cli"}),
        "`edge board run` and the virtual board as processes on a real pty",
    ),
    "tests/board/test_bench.py": (
        frozenset({"board", "cli"}),
        "`edge bench board`: a board process on a pty",
    ),
    "tests/camera_render/test_views.py": (_SUMO, "cameras placed from SUMO's networks"),
    "tests/camera_render/test_model.py::test_it_finds_the_vehicles_of_held_out_frames": (
        _SUMO,
        "held-out frames rendered from SUMO traffic",
    ),
    "tests/device/test_central.py": (
        frozenset({"cli", "broker", "board"}),
        "`edge run --device` against Mosquitto and a virtual board",
    ),
    "tests/device/test_central_priority.py": (
        frozenset({"cli", "broker", "board"}),
        "`edge run --device` against Mosquitto and a virtual board",
    ),
    "tests/device/test_notify.py": (
        frozenset({"cli", "board"}),
        "`edge run` as a process with a notify socket and a virtual board",
    ),
    "tests/device/test_status.py": (
        frozenset({"cli", "board"}),
        "`edge status` and `edge run` as processes, a virtual board",
    ),
    "tests/ntcip/test_agent.py": (
        frozenset({"server", "process"}),
        "the SNMP agent on loopback UDP, net-snmp's snmpget/snmpwalk/snmpset as processes",
    ),
    "tests/ntcip/test_device.py": (
        frozenset({"cli", "board", "process"}),
        "`edge run --device --snmp` on a virtual board, queried by net-snmp's tools",
    ),
    "tests/j2735/test_spat.py": (
        frozenset({"long"}),
        "~8000 SPaT frames decoded by pycrate (pure Python, ~4 ms each)",
    ),
    "tests/j2735/test_codec.py::test_parsed_txt_is_what_the_asn1_text_parses_to": (
        frozenset({"long"}),
        "parses the ETSI ASN.1 text with pyparsing (~7 s)",
    ),
    "tests/j2735/test_device.py": (
        frozenset({"server"}),
        "the j2735 extension sends UDP to a receiver on loopback",
    ),
    "tests/j2735/test_mqtt.py": (
        frozenset({"broker"}),
        "the j2735 extension beside the central link, against Mosquitto",
    ),
    "tests/j2735/test_cli.py": (
        frozenset({"sumo", "cli"}),
        "`edge j2735 --sim`: SUMO in lockstep, the frames decoded",
    ),
    "tests/atspm/test_store_kill.py": (
        frozenset({"process"}),
        "SIGKILLs a hi-res log writer process at random moments",
    ),
    "tests/device/test_store_kill.py": (
        frozenset({"process"}),
        "SIGKILLs a writer process at random moments",
    ),
    "tests/flash/": (
        frozenset({"process", "broker", "board"}),
        "flash.sh (bash, pip, mpremote, shellcheck, systemd-analyze) into a stand-in root, "
        "a virtual board's REPL on a pty, Mosquitto",
    ),
    "tests/link/test_bench.py": (_BROKER, "`edge bench link`: Mosquitto and devices"),
    "tests/link/test_broker.py": (_BROKER, "Mosquitto with TLS, ACL and persistence"),
    "tests/link/test_bench_fleet.py": (
        frozenset({"broker", "process"}),
        "`edge bench fleet`: Mosquitto, a 3-node NATS cluster, load and ingest processes",
    ),
    "tests/link/test_cluster.py": (
        frozenset({"broker", "process"}),
        "a 3-node NATS cluster: ACL, MQTT 3.1.1, a node SIGKILLed mid-run",
    ),
    "tests/link/test_cli.py": (
        frozenset({"broker", "cli"}),
        "`edge central` against Mosquitto and a device process",
    ),
    "tests/link/test_outage.py": (_BROKER, "Mosquitto stopped and restarted mid-run"),
    "tests/link/test_outflow.py": (_BROKER, "two devices' outflows through Mosquitto"),
    "tests/link/test_reflash.py": (_BROKER, "a device run twice, a fresh store, via Mosquitto"),
    "tests/link/test_launch.py": (
        frozenset({"process"}),
        "the broker launcher with stand-in child processes",
    ),
    "tests/link/test_reconnect.py::test_a_dead_first_node_costs_one_refused_connect": (
        _BROKER,
        "a device link whose first broker node is dead, then Mosquitto",
    ),
    "tests/link/test_reconnect.py::test_a_node_that_closes_before_its_connack_is_left_at_once": (
        frozenset({"server"}),
        "a loopback server that closes the connection after the CONNECT",
    ),
    "tests/link/test_sigkill.py": (
        frozenset({"broker", "process"}),
        "the runtime process SIGKILLed mid-send to Mosquitto",
    ),
    "tests/link/test_spool_faults.py": (_BROKER, "the central link's spool through Mosquitto"),
    "tests/link/test_keyring.py": (_BROKER, "a key rollover through Mosquitto to a device"),
    "tests/link/test_renewal.py": (_BROKER, "a certificate renewed through Mosquitto"),
    "tests/link/test_enrolment.py": (_BROKER, "a first certificate over the bootstrap listener"),
    "tests/link/test_tls.py": (_BROKER, "Mosquitto with SAN-less, revoked and good certificates"),
    "tests/runtime/test_run.py": (
        frozenset({"cli", "board"}),
        "`edge run` as a process against a virtual board on a pty",
    ),
    "tests/runtime/test_extensions.py::"
    "test_failing_task_restarts_with_backoff_and_slow_tick_work_never_delays_the_tick": (
        frozenset({"board"}),
        "a real runtime against the virtual board on a pty",
    ),
    "tests/runtime/test_tick_isolation.py": (
        frozenset({"broker", "board", "server"}),
        "the runtime with Mosquitto, a board process and the page's server",
    ),
    "tests/sim/": (
        _SUMO,
        "SUMO, netconvert and TraCI (a few derivation tests need only the network files)",
    ),
    "tests/sim/test_hires_log.py": (
        _SUMO,
        "an hour of SUMO traffic (~20 s) whose hi-res log the atspm package reads (DuckDB)",
    ),
    "tests/sim/test_priority_central.py": (
        frozenset({"sumo", "broker"}),
        "central's priority requests over Mosquitto to a SUMO run",
    ),
    "tests/sim/test_snmp_sim.py": (
        frozenset({"sumo", "cli", "board", "server"}),
        "`edge run --sim single --snmp PORT`: SUMO, a virtual board, net-snmp's tools (~40 s)",
    ),
    "tests/sim/test_realtime.py": (
        frozenset({"sumo", "cli", "board"}),
        "`edge run --sim`: SUMO, a virtual board on a pty",
    ),
    "tests/vision/test_config.py::test_edge_check_prints_file_and_place": (
        frozenset({"cli"}),
        "`edge check` as a process",
    ),
    "tests/vision/test_detect_cli.py": (frozenset({"cli"}), "`edge vision detect` as a process"),
    "tests/test_device_package.py": (
        frozenset({"process", "cli"}),
        "builds the device wheel with pip and imports it in isolated interpreters",
    ),
    "tests/web/test_zone_editor_browser.py": (
        frozenset({"browser", "server"}),
        "Chromium drives the zone editor against the page's server",
    ),
    "tests/vision/test_health_night.py": (_SUMO, "frames rendered from SUMO traffic"),
    "tests/vision/test_lockstep.py": (_SUMO, "the controller on rendered cameras in SUMO"),
    "tests/vision/test_runtime.py": (
        frozenset({"cli", "board"}),
        "`edge run` with a camera as a process against a virtual board",
    ),
    "tests/web/test_browser.py": (
        frozenset({"browser", "server", "board"}),
        "the page in Chromium, served by a runtime process with a virtual board",
    ),
    "tests/web/test_camera_panel.py": (
        frozenset({"browser", "server"}),
        "the camera and link panels in Chromium",
    ),
    "tests/web/test_api.py::test_a_failing_recorder_never_stops_the_control_tick": (
        frozenset({"server"}),
        "the page on a real loopback socket",
    ),
    "tests/web/test_limits.py::test_the_page_listens_on_loopback_unless_told_otherwise": (
        frozenset({"server"}),
        "binds the page's server",
    ),
    "tests/web/test_listen.py": (
        frozenset({"server", "process"}),
        "the page's real server over TLS and under a flood of connections",
    ),
    "tests/web/test_limits.py::test_a_header_cannot_claim_another_address": (
        frozenset({"server"}),
        "the page's real server on loopback",
    ),
    "tests/web/test_limits.py"
    "::test_the_real_server_names_no_software_and_sends_the_security_headers": (
        frozenset({"server"}),
        "the page's real server on loopback",
    ),
    "tests/web/test_limits.py::test_big_bodies_to_a_running_intersection_never_delay_its_tick": (
        frozenset({"server", "cli", "board"}),
        "`edge run` with its page, big bodies over loopback",
    ),
    "tests/control/test_purity.py"
    "::test_importing_the_core_loads_only_the_core_and_its_standard_library": (
        frozenset({"process"}),
        "imports the core in a `python -I -S` interpreter",
    ),
    "tests/control/test_purity.py::test_a_planted_standard_library_import_is_named": (
        frozenset({"process"}),
        "imports a planted copy of the core in a `python -I -S` interpreter",
    ),
    "tests/control/test_purity.py::test_a_planted_import_of_edge_outside_the_core_is_named": (
        frozenset({"process"}),
        "imports a planted copy of the core in a `python -I -S` interpreter",
    ),
    "tests/control/test_purity.py"
    "::test_a_module_preloaded_by_the_environment_cannot_hide_a_planted_import": (
        frozenset({"process"}),
        "imports a planted copy of the core in two interpreters",
    ),
    "tests/test_clearance.py::test_edge_check_prints_warnings_and_still_passes": (
        frozenset({"cli"}),
        "`edge check` as a process",
    ),
    "tests/test_config.py::test_edge_check_prints_every_problem_and_fails": (
        frozenset({"cli"}),
        "`edge check` as a process",
    ),
    "tests/test_credentials.py::test_cli_reads_stdin": (
        frozenset({"cli"}),
        "`edge credentials` as a process reading stdin",
    ),
    "tests/test_site_safety.py::test_edge_check_refuses_the_unsafe_site": (
        frozenset({"cli"}),
        "`edge check` as a process",
    ),
    "tests/test_site_safety.py"
    "::test_matrix_shows_the_right_turn_arrow_in_conflict_with_the_walk_across_its_path": (
        frozenset({"cli"}),
        "`edge check --matrix` as a process",
    ),
    # Pure but heavy (over about 1.5 s on this busy machine): out of `make check`, in
    # `make test`; the guard still holds.
    "tests/control/test_properties.py": (
        _LONG,
        "hypothesis over every example and the seeded long runs (about 30 s)",
    ),
    "tests/control/test_adaptive.py::test_adaptive_safety_and_service_under_random_demand": (
        _LONG,
        "hypothesis over every example (about 7 s)",
    ),
    "tests/control/test_adaptive.py::test_held_back_left_waits_a_bounded_time": (
        _LONG,
        "hypothesis, long episodes (about 3 s)",
    ),
    "tests/control/test_adaptive.py"
    "::test_adaptive_replay_is_identical_and_quiet_steps_change_nothing": (
        _LONG,
        "hypothesis over every example, each run twice (about 5 s)",
    ),
    "tests/board/test_lamp_minimums.py"
    "::test_any_valid_new_timing_keeps_its_minimums_on_the_lamps": (
        _LONG,
        "hypothesis through controller, guard and firmware (about 14 s)",
    ),
    "tests/hw/test_hw_board_safety.py::test_board_agrees_with_the_rule_model": (
        _LONG,
        "hypothesis against the rule model (about 9 s)",
    ),
    "tests/hw/test_hw_micropython.py": (
        _LONG,
        "the firmware under MicroPython compiled to WebAssembly (about 6 s)",
    ),
    "tests/vision/test_real_truth.py": (_LONG, "decodes the real footage (about 5 s)"),
    "tests/control/test_golden.py": (_LONG, "replays 18 golden traces (about 5-9 s)"),
    "tests/vision/test_siteedit.py::test_only_an_edit_that_passes_the_checks_is_written": (
        _LONG,
        "a property over random layout edits, each checked and written (about 4 s)",
    ),
    "tests/web/test_zone_editor.py::"
    "test_a_wrong_password_is_refused_and_locks_out_as_manual_control_does": (
        _LONG,
        "scrypt checks of wrong passwords up to the lockout (about 3 s)",
    ),
    "tests/vision/test_coco_model.py": (_LONG, "the COCO model on the real footage (about 4 s)"),
    "tests/vision/test_health.py": (
        _LONG,
        "video files through the reader thread, faults seen within seconds (about 6 s)",
    ),
    "tests/control/test_detector_faults.py::test_faults_keep_every_safety_rule_and_replay_alike": (
        _LONG,
        "hypothesis: detector faults over every example, each run twice (about 4 s)",
    ),
    "tests/control/test_transit_priority.py"
    "::test_transit_never_exceeds_its_share_nor_breaks_safety": (
        _LONG,
        "hypothesis over transit requests (about 2 s)",
    ),
    "tests/test_site_safety.py"
    "::test_accepted_sites_never_time_a_conflict_and_every_layer_holds_the_table": (
        _LONG,
        "hypothesis over generated sites (about 2 s)",
    ),
    "tests/test_site_safety.py::test_geometry_lets_a_stream_off_only_where_it_yields": (
        _LONG,
        "hypothesis over generated geometry (about 2 s)",
    ),
    "tests/hw/test_hw_codec.py::test_any_split_of_a_stream_decodes_the_same": (
        _LONG,
        "hypothesis over stream splits (about 2 s)",
    ),
    "tests/hw/test_hw_codec.py::test_fuzz_mutated_frames_never_raise_or_pass_bad_crc": (
        _LONG,
        "fuzzed frames (about 2 s)",
    ),
    "tests/web/test_schema.py": (_LONG, "property-based requests against the OpenAPI document"),
    "tests/web/test_api.py::test_state_follows_the_controller": (
        _LONG,
        "polls the page through 300 controller steps (about 3 s)",
    ),
    "tests/vision/test_fallback.py::test_camera_dies_detectors_fall_back": (
        _LONG,
        "a camera's video runs out in real time (about 2 s)",
    ),
    "tests/web/test_limits.py"
    "::test_guessers_at_many_addresses_lock_the_account_but_never_a_known_technician": (
        _LONG,
        "guesses from 16 addresses through the page up to the account's lockout",
    ),
}


def _entry(nodeid: str) -> tuple[frozenset[str], str] | None:
    """The most specific SLOW_LAYERS entry naming this test, or None (the pure layer)."""
    hits = [key for key in SLOW_LAYERS if _entry_matches(key, nodeid)]
    return SLOW_LAYERS[max(hits, key=len)] if hits else None


def _entry_matches(key: str, nodeid: str) -> bool:
    if key.endswith("/"):
        return nodeid.startswith(key)
    return nodeid == key or nodeid.startswith((key + "::", key + "["))


def check_table(declared: set[str]) -> list[str]:
    """What is wrong with SLOW_LAYERS: unknown layers, missing reasons, paths that are gone."""
    problems = []
    for key, (layers, why) in SLOW_LAYERS.items():
        unknown = layers - set(LAYERS)
        if not layers or unknown:
            problems.append(f"{key}: layers {sorted(layers)}: expected some of {list(LAYERS)}")
        if not why.strip():
            problems.append(f"{key}: no reason given")
        path = ROOT / key.split("::")[0]
        if not (path.is_dir() if key.endswith("/") else path.is_file()):
            problems.append(f"{key}: no such {'folder' if key.endswith('/') else 'file'}")
    for name in ("pure", *LAYERS):
        if name not in declared:
            problems.append(f"marker {name!r} is not declared in pyproject.toml")
    return problems


class LayerViolation(RuntimeError):
    """A pure-layer test started a process, opened a pty or used a socket."""


_VIOLATIONS = pytest.StashKey[list[str]]()


@contextmanager
def guard(nodeid: str, found: list[str]) -> Iterator[None]:
    """Within: starting a process, a pty or a socket connection raises LayerViolation.

    Each such call is also appended to `found`, so that a test that catches the error still fails.
    """
    before = set(threading.enumerate()) - {threading.current_thread()}

    def refuse(what: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if threading.current_thread() in before:
                return real(*args, **kwargs)
            text = (
                f"{nodeid} is in the pure test layer but called {what}: name its module in "
                f"SLOW_LAYERS in tests/layers.py with what it starts (or make it pure)"
            )
            found.append(text)
            raise LayerViolation(text)

        return call

    patches: list[tuple[Any, str, str]] = [
        (subprocess.Popen, "_execute_child", "subprocess.Popen (a process)"),
        (_posixsubprocess, "fork_exec", "_posixsubprocess.fork_exec (a process)"),
        (os, "fork", "os.fork (a process)"),
        (os, "forkpty", "os.forkpty (a process on a pty)"),
        (os, "posix_spawn", "os.posix_spawn (a process)"),
        (os, "posix_spawnp", "os.posix_spawnp (a process)"),
        (os, "system", "os.system (a process)"),
        (os, "openpty", "os.openpty (a pseudo-terminal)"),
        (socket.socket, "connect", "socket.connect"),
        (socket.socket, "connect_ex", "socket.connect_ex"),
        (socket.socket, "bind", "socket.bind"),
        (socket.socket, "sendto", "socket.sendto"),
    ]
    saved: list[tuple[Any, str, Any, bool]] = []
    try:
        for owner, name, what in patches:
            if not hasattr(owner, name):
                continue
            own = name in vars(owner)
            real = getattr(owner, name)
            saved.append((owner, name, vars(owner).get(name), own))
            setattr(owner, name, refuse(what, real))
        yield
    finally:
        for owner, name, original, own in reversed(saved):
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)  # inherited (socket.socket from _socket.socket)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast-layer",
        action="store_true",
        help="only the fast layer (-m 'pure and not long'; make check): the modules and "
        "folders SLOW_LAYERS names in full are not even imported",
    )


def pytest_configure(config: pytest.Config) -> None:
    declared = {line.split(":")[0].strip() for line in config.getini("markers")}
    problems = check_table(declared)
    if problems:
        raise pytest.UsageError("tests/layers.py SLOW_LAYERS:\n" + "\n".join(problems))
    if config.getoption("fast_layer"):
        if config.option.markexpr:
            raise pytest.UsageError("--fast-layer selects its own tests: drop -m")
        config.option.markexpr = "pure and not long"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not config.getoption("fast_layer") or not collection_path.is_relative_to(ROOT):
        return None
    rel = collection_path.relative_to(ROOT).as_posix()
    key = rel + "/" if collection_path.is_dir() else rel
    return True if key in SLOW_LAYERS else None


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    modules: set[str] = set()
    matched: set[str] = set()
    for item in items:
        modules.add(item.nodeid.split("::")[0])
        entry = _entry(item.nodeid)
        layers = entry[0] if entry else frozenset()
        if layers <= {LONG}:
            item.add_marker("pure")
        for name in sorted(layers):
            item.add_marker(name)
        matched.update(k for k in SLOW_LAYERS if "::" in k and _entry_matches(k, item.nodeid))
    if any("::" in arg for arg in config.args):
        return  # tests picked by name: the others of their modules were never collected
    stale = [
        k for k in SLOW_LAYERS if "::" in k and k.split("::")[0] in modules and k not in matched
    ]
    if stale:
        raise pytest.UsageError(
            "tests/layers.py SLOW_LAYERS names tests that do not exist: " + ", ".join(stale)
        )


@contextmanager
def _guard_cm(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("pure") is None:
        yield
        return
    with guard(item.nodeid, item.stash.setdefault(_VIOLATIONS, [])):
        yield


# Set-up and call only: a pure test's teardown may be where pytest finalizes a session fixture
# that a slow test set up.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _guard_cm(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _guard_cm(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    found = item.stash.get(_VIOLATIONS, [])
    if found and report.when in ("setup", "call") and not report.failed:
        report.outcome = "failed"
        report.longrepr = "\n".join(dict.fromkeys(found))
    return report
