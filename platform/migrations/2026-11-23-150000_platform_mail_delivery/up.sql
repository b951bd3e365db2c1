-- The node's mail worker delivers this queue too (mention notifications): like idp.sqlite
-- (2026-11-23-140000_mail_delivery) the table now equals
-- kollegium_tenants::mail::MAIL_QUEUE_SQL: undeliverable mail is marked failed, and due
-- mail is found through an index.
ALTER TABLE mail_queue ADD COLUMN failed_at INTEGER;
CREATE INDEX mail_queue_due ON mail_queue(next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
