CREATE TABLE backchannel_queue (
    id INTEGER PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    uri TEXT NOT NULL,
    logout_token TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error TEXT
) STRICT;
INSERT INTO backchannel_queue (client_id, uri, logout_token, attempts, next_attempt_at, created_at, last_error)
    SELECT json_extract(payload, '$.client_id'), json_extract(payload, '$.uri'),
        json_extract(payload, '$.claims'), attempts, run_after, created_at, last_error
    FROM jobs WHERE kind = 'idp.backchannel-logout';
DROP TABLE jobs;
