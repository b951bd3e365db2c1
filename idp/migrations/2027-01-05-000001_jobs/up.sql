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

-- Back-channel logout notices: jobs of kind `idp.backchannel-logout` with their address and
-- claims as payload, the practice's own workspace first; given-up ones stay failed.
INSERT INTO jobs (kind, key, payload, priority, attempts, run_after, last_error, failed_at, created_at)
    SELECT 'idp.backchannel-logout', 'notice:' || q.id,
        json_object('client_id', q.client_id, 'uri', q.uri, 'claims', q.logout_token),
        COALESCE(c.first_party, 0), q.attempts, q.next_attempt_at, q.last_error,
        CASE WHEN q.attempts >= 8 THEN q.next_attempt_at END, q.created_at
    FROM backchannel_queue q LEFT JOIN clients c ON c.client_id = q.client_id
    WHERE q.delivered_at IS NULL;
DROP TABLE backchannel_queue;
