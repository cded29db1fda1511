"""The ATSPM high-resolution event log: Indiana enumerations, its files and its store."""
