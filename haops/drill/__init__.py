"""HA drills: inject a fault under a steady probe load and measure what the clients saw."""
