-- The background alert evaluator's state.  alert_states holds one row per evaluated rule
-- ('ok' or 'firing'): a transition is a conditional UPDATE, so whichever evaluator flips
-- the row is the only one that sends, on every replica sharing the store; the event it
-- sent and the targets still to deliver it to are kept for the next rounds.  alert_lease
-- names the evaluator that runs the rounds (taken when expired), so the other workers
-- and replicas skip the spend-row queries.
CREATE TABLE alert_states (
    workspace_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL,
    since REAL NOT NULL,
    evaluated_at REAL NOT NULL,
    event_id TEXT,
    event TEXT,
    pending TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, rule_id)
);

CREATE TABLE alert_lease (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);

INSERT INTO alert_lease (name, owner, expires_at) VALUES ('evaluator', '', 0);
