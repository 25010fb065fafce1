"""Use cases. Each public function is one transaction: case row, audit event, outbox and notification rows together."""
