"""One FastAPI router per resource of /api/v1 and /open311/v2: parse, call one service, render the Public model."""
