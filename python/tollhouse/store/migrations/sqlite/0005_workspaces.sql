-- Workspaces, their members (role owner|admin|member|viewer) and workspace-scoped admin
-- API keys (only the SHA-256 of a key is stored).  The default workspace exists from the
-- first start.
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE workspace_members (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (workspace_id, email)
);

CREATE TABLE workspace_api_keys (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);

CREATE INDEX workspace_api_keys_ws ON workspace_api_keys (workspace_id);

INSERT INTO workspaces (id, name, created_at) VALUES ('default', 'Default', 0);
