-- Guardrails (the record as JSON: its fields evolve without migrations) and their key and
-- member assignments; guardrails_version drives every worker's in-memory guardrail cache.
CREATE TABLE guardrails (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION
);

CREATE TABLE guardrail_assignments (
    guardrail_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guardrail_id, kind, target)
);

CREATE INDEX guardrail_assignments_target ON guardrail_assignments (kind, target);

INSERT INTO store_meta (name, value) VALUES ('guardrails_version', 0);
