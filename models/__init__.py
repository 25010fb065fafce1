"""The domain: the pure case lifecycle (lifecycle.py) and the case store tables (tables.py)."""
