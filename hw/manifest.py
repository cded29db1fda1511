# IO-board firmware: the `hw` package (codec, board safety, field monitor, board core)
# and the Pico entry point.
#
# micropython-lib style package manifest. To freeze it into a firmware build, a
# board manifest includes the port's own and this one:
#     include("$(PORT_DIR)/boards/manifest.py")
#     include("<repo>/hw/manifest.py")
# and the board's /main.py is then one line: `import hw.main as m; m.run()`.
# Without freezing, copy the files with mpremote:
#     mpremote mkdir :hw
#     mpremote cp hw/__init__.py hw/codec.py hw/board_safety.py hw/monitor.py hw/board.py :hw/
#     mpremote cp hw/main.py :main.py
# metadata() and package() are provided by MicroPython's manifest tool.
# ruff: noqa: F821

metadata(
    description="Edge intersection IO board: wire codec, board safety, Raspberry Pi Pico entry",
    version="0.2.0",
)

package(
    "hw",
    files=("__init__.py", "codec.py", "board_safety.py", "monitor.py", "board.py", "main.py"),
    base_path="..",
)
