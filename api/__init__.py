"""FastAPI app: health, docs, and (later) Open311 and v1 routes."""
