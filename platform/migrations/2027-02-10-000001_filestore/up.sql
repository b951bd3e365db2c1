-- The practice file store (`platform::filestore`): one row per content-addressed blob under
-- the practice's `files/` directory. `refs` counts the rows of the apps that point at the
-- blob (task attachments now, the files app later); a blob whose count reached 0 is deleted
-- with its file after the transaction that released it committed.
CREATE TABLE file_blobs (
    hash TEXT PRIMARY KEY NOT NULL CHECK (length(hash) = 64),
    size INTEGER NOT NULL CHECK (size >= 0),
    refs INTEGER NOT NULL CHECK (refs >= 0),
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX file_blobs_unreferenced ON file_blobs(hash) WHERE refs = 0;
