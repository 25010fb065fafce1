"""Issue 13 item 6: a failing statement's error (and so its log line) never carries the statement's parameters.

Parameters hold outbox payloads, descriptions and device ids; `services.db.make_engine` hides them.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa


def test_a_failed_statement_does_not_show_its_parameters(db) -> None:
    secret = "138-1234-5678 behind the shed"
    with pytest.raises(sa.exc.DBAPIError) as failed, db.engine.connect() as conn:
        conn.execute(sa.text("SELECT note FROM no_such_table WHERE note = :note"), {"note": secret})
    assert secret not in str(failed.value)
    assert "parameters hidden" in str(failed.value)
