-- Workspace resources kept as JSON records (alert rules, delivery targets, ...): their
-- fields evolve without migrations; kind names the resource.
CREATE TABLE workspace_resources (
    workspace_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (workspace_id, kind, id)
);
