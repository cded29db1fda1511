"""The simulator's camera: perspective renders of approaches from SUMO traffic, their views
and lane zones, and the labelled data sets the vehicle model trains and is judged on."""
