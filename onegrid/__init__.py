"""OneGrid: the wiring (settings, clock, CLI, the one application factory)."""
