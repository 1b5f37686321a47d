-- Ingested runtime and change events.  (scope, idem_key) is the primary key: processing an
-- event is this one insert, so a replayed Idempotency-Key can never process twice; the
-- stored response is what a replay answers.
CREATE TABLE ingest_events (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    event TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

CREATE INDEX ingest_events_kind ON ingest_events (scope, kind, created_at);
