-- A node's verified copy of the operator's broadcast feed, once for all its practices.
-- Which practice or member matched, read or dismissed a message is never stored here.

-- Every verified entry as received (payload text and signature), in seq order. The last
-- verified seq is the highest here.
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
    payload TEXT NOT NULL,
    sig TEXT NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;

-- The messages the entries carry, withdrawn ones marked.
CREATE TABLE messages (
    id TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL UNIQUE REFERENCES entries (seq),
    published_at INTEGER NOT NULL,
    valid_until INTEGER,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    pinned INTEGER NOT NULL CHECK (pinned IN (0, 1)),
    -- Audience sets as JSON arrays of catalogue ids (empty: any).
    specialties TEXT NOT NULL,
    roles TEXT NOT NULL,
    kv_regions TEXT NOT NULL,
    withdrawn_at INTEGER,
    withdrawn_seq INTEGER REFERENCES entries (seq)
) STRICT;
CREATE INDEX messages_active ON messages (withdrawn_at, pinned, published_at);

-- Entries this node refused: once per (seq, reason), however often the feed offers them.
CREATE TABLE refusals (
    id INTEGER PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL,
    UNIQUE (seq, reason)
) STRICT;
