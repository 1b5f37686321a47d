-- Incidents of a workspace and their timelines.  open_key is "workspace|source kind|ref"
-- while an incident is open or acknowledged and NULL once it is resolved (or for a manual
-- incident): its UNIQUE constraint makes "open a new incident unless one for this source
-- is still open" one atomic insert, across workers and replicas.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    source_ref TEXT,
    route_id TEXT,
    provider TEXT,
    model TEXT,
    open_key TEXT UNIQUE,
    opened_at REAL NOT NULL,
    acknowledged_at REAL,
    resolved_at REAL,
    updated_at REAL NOT NULL
);

CREATE INDEX incidents_ws ON incidents (workspace_id, opened_at);

CREATE TABLE incident_timeline (
    id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);

CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, at);
