"""Tables for the case-store API (API keys, idempotency records, webhook updates). Filled in by the API issue."""
