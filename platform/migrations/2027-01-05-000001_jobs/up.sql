-- One table of background jobs (tenants/src/jobs: JOBS_SQL; the same in idp.sqlite and
-- platform.sqlite). A job is written in the transaction of the change it follows; a pending
-- (kind, key) is one job; failed jobs are kept with their last error.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    last_error TEXT,
    failed_at INTEGER,
    created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX jobs_pending_key ON jobs(kind, key) WHERE failed_at IS NULL;
CREATE INDEX jobs_due ON jobs(kind, priority DESC, run_after) WHERE failed_at IS NULL;

-- Mail not yet delivered or given up: its job (the mail itself stays in mail_queue).
INSERT INTO jobs (kind, key, attempts, run_after, created_at)
    SELECT 'mail', CAST(id AS TEXT), attempts, next_attempt_at, created_at FROM mail_queue
    WHERE sent_at IS NULL AND failed_at IS NULL;

-- Messages waiting for the search index: jobs of kind `search`.
INSERT INTO jobs (kind, key, run_after, created_at)
    SELECT 'search', 'chat-message:' || message_id, queued_at, queued_at FROM search_queue
    WHERE true;
DROP TABLE search_queue;

-- Open mention notices: a job each, due when the notice is (the notices stay the record).
INSERT INTO jobs (kind, key, run_after, created_at)
    SELECT 'chat.mention', CAST(id AS TEXT), due_at, due_at FROM mention_notices
    WHERE done_at IS NULL;
