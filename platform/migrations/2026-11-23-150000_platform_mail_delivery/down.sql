DROP INDEX mail_queue_due;
ALTER TABLE mail_queue DROP COLUMN failed_at;
