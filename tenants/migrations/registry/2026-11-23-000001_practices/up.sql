-- The central registry knows practices and nothing about their users or content.
CREATE TABLE practices (
    slug TEXT PRIMARY KEY NOT NULL,
    display_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
    created_at INTEGER NOT NULL,
    status_changed_at INTEGER NOT NULL,
    placement TEXT NOT NULL DEFAULT 'local'
) STRICT;
