-- Virtual keys belong to a workspace (existing keys to 'default'), and so does the
-- traffic they make: each spend row carries its key's workspace when it is written, so
-- a workspace's alert rules measure its own keys' requests (one index range per round).
ALTER TABLE keys ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'default';

ALTER TABLE spend ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'default';

CREATE INDEX spend_workspace_time ON spend (workspace_id, created_at);
