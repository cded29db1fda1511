"""Hardware simulator: SUMO traffic, the virtual IO board (hw/ firmware behind a pty)."""
