-- Spend per key per UTC day (day = days since the UNIX epoch), kept in step with the
-- spend rows by insert_spend, so a key's usage is read without scanning its rows.
CREATE TABLE spend_daily (
    key_hash TEXT NOT NULL,
    day BIGINT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_hash, day)
);

INSERT INTO spend_daily (key_hash, day, requests, cost_micros)
SELECT key_hash, floor(created_at / 86400)::bigint, COUNT(*), SUM(cost_micros)
FROM spend
GROUP BY key_hash, floor(created_at / 86400)::bigint;
