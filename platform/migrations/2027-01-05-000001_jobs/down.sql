CREATE TABLE search_queue (
    message_id INTEGER PRIMARY KEY NOT NULL,
    queued_at INTEGER NOT NULL
) STRICT;
INSERT INTO search_queue (message_id, queued_at)
    SELECT CAST(substr(key, 14) AS INTEGER), run_after FROM jobs
    WHERE kind = 'search' AND failed_at IS NULL;
DROP TABLE jobs;
