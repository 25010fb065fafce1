"""Tables for the work-order side (per-department tasks, offers to workers). Filled in by the workers issue."""
