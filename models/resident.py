"""Tables for the resident side (followers, feedback after closure). Filled in by the residents issue."""
