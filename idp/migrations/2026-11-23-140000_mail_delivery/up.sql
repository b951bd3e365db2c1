-- Mail delivery: mail that can never be delivered is marked failed instead of retried,
-- and the worker finds due mail through an index. The table now equals
-- kollegium_tenants::mail::MAIL_QUEUE_SQL.
ALTER TABLE mail_queue ADD COLUMN failed_at INTEGER;
CREATE INDEX mail_queue_due ON mail_queue(next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
