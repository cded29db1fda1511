"""The developer side of the project: what a checkout has and the device never gets.

- `devtools.bench`: `edge bench NAME` (the control core, the board link over a pty, the
  MQTT link, the cameras; traffic and preemption live with the simulator in sim/sumo).
- `devtools.vision`: the detector's evaluation on real footage, its ground truth, and the
  small ONNX graphs the tests and benches build (the `onnx` package, a dev dependency).
- `devtools.provision`, `devtools.board_flash`: the laptop's half of flash.sh.

Rules it keeps: it may import `edge`, `hw` and `sim`; nothing in `edge/` imports it
(tests/test_import_graph.py). `edge` reaches its commands only through the entry points
pyproject.toml declares (group `edge.commands`), which the device's package leaves out
(scripts/device-wheel.sh), so there they are simply absent.
"""
