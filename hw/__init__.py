"""IO-board firmware core: wire codec, board safety, message handling (MicroPython and CPython)."""
