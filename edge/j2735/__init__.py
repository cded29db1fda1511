"""SAE J2735 SPaT and MAP in UPER, from the controller's outputs and the site's geometry."""
