-- Spend per key per UTC day (day = days since the UNIX epoch), kept in step with the
-- spend rows by insert_spend, so a key's usage is read without scanning its rows.
CREATE TABLE spend_daily (
    key_hash TEXT NOT NULL,
    day INTEGER NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    cost_micros INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_hash, day)
);

INSERT INTO spend_daily (key_hash, day, requests, cost_micros)
SELECT key_hash, CAST(created_at / 86400 AS INTEGER), COUNT(*), SUM(cost_micros)
FROM spend
GROUP BY key_hash, CAST(created_at / 86400 AS INTEGER);
