"""Host side of the IO-board link: CONFIG from the site, the sans-IO session, the serial runner."""
