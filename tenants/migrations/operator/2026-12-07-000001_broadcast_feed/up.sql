-- The operator's broadcast feed: every signed entry in seq order, as served at /feed.
-- Nothing here is about practices or their members.
CREATE TABLE feed (
    seq INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
    kind TEXT NOT NULL CHECK (kind IN ('message', 'retraction')),
    -- The message's id (a message) or the id of the message it retracts (a retraction).
    message_id TEXT NOT NULL,
    -- The message's title, for listings; empty for a retraction.
    title TEXT NOT NULL,
    -- The signed payload's exact text and its signature (base64).
    payload TEXT NOT NULL,
    sig TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX feed_one_message_per_id ON feed (message_id) WHERE kind = 'message';
CREATE UNIQUE INDEX feed_one_retraction_per_id ON feed (message_id) WHERE kind = 'retraction';
