-- The hash-chained audit log: each entry stores the previous entry's hash, and seq (the
-- primary key) makes two concurrent appends of the same position collide, so one retries.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    event_type TEXT NOT NULL,
    workspace_id TEXT,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_log_ts ON audit_log (ts);
