-- Mail bodies are kept only until the mail is delivered or given up: they carry one-time
-- links. Rows delivered before this rule lose their bodies now; the row stays as the
-- record. secure_delete overwrites the freed bytes instead of leaving them as free space
-- (the migration runner checkpoints and truncates the write-ahead log afterwards).
PRAGMA secure_delete = ON;
UPDATE mail_queue SET body_text = '', body_html = ''
    WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL)
      AND (body_text <> '' OR body_html <> '');
PRAGMA secure_delete = OFF;
