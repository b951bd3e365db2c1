-- Attachments of task cards (issue 13, item 2): a name and content type as uploaded, the
-- blob in the practice file store (`file_blobs`, one reference per row), who and when.
CREATE TABLE task_attachments (
    id INTEGER PRIMARY KEY NOT NULL,
    card_id INTEGER NOT NULL REFERENCES task_cards(id),
    blob_hash TEXT NOT NULL REFERENCES file_blobs(hash),
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    uploaded_by INTEGER REFERENCES members(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX task_attachments_card ON task_attachments(card_id);
CREATE INDEX task_attachments_blob ON task_attachments(blob_hash);
