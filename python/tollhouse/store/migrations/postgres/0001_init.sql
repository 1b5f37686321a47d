-- Virtual keys (only the SHA-256 hash of the raw key), spend rows, and the key version
-- counter that drives the gateway's in-memory key cache.
CREATE TABLE keys (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    limit_micros BIGINT,
    limit_reset TEXT,
    rpm BIGINT,
    tpm BIGINT,
    models TEXT,
    team TEXT,
    expires_at DOUBLE PRECISION,
    metadata TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE spend (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cached_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    latency_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    ttft_ms DOUBLE PRECISION,
    status INTEGER NOT NULL DEFAULT 200,
    error_code TEXT,
    streamed BOOLEAN NOT NULL DEFAULT FALSE,
    cancelled BOOLEAN NOT NULL DEFAULT FALSE,
    finish_reason TEXT,
    team TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX spend_key_time ON spend (key_hash, created_at);

CREATE INDEX spend_time ON spend (created_at);

CREATE TABLE store_meta (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO store_meta (name, value) VALUES ('keys_version', 0);
