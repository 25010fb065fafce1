"""Tables for supervision (escalation steps, extensions, shelving, spot checks). Filled in by the supervisors issue."""
