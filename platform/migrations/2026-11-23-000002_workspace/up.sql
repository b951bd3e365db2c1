-- The workspace: who signed in (from the IdP's claims), platform sessions, chat.
-- All times are Unix seconds (UTC).

-- Members as the practice IdP describes them (refreshed at each login and token refresh).
CREATE TABLE members (
    id INTEGER PRIMARY KEY NOT NULL,
    sub TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    roles TEXT NOT NULL DEFAULT '[]',
    is_admin INTEGER NOT NULL DEFAULT 0,
    specialty TEXT,
    kv_region TEXT,
    work_areas TEXT NOT NULL DEFAULT '[]',
    send_read_receipts INTEGER NOT NULL DEFAULT 1,
    mention_mail INTEGER NOT NULL DEFAULT 1,
    mention_mail_delay_secs INTEGER NOT NULL DEFAULT 900,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_login_at INTEGER
) STRICT;

-- Pending sign-ins at the IdP (state → nonce, PKCE verifier, where to return).
CREATE TABLE login_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    next TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    idp_sid TEXT,
    id_token TEXT NOT NULL,
    access_token TEXT NOT NULL,
    refresh_token TEXT,
    access_expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    ended_at INTEGER,
    end_reason TEXT
) STRICT;
CREATE INDEX sessions_sid ON sessions(idp_sid);

CREATE TABLE rooms (
    id INTEGER PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('group', 'direct')),
    name TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    visibility TEXT NOT NULL CHECK (visibility IN ('open', 'private')),
    archived INTEGER NOT NULL DEFAULT 0,
    direct_key TEXT UNIQUE,
    created_by INTEGER REFERENCES members(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_message_id INTEGER
) STRICT;

CREATE TABLE room_members (
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    joined_at INTEGER NOT NULL,
    last_read_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, member_id)
) STRICT;
CREATE INDEX room_members_member ON room_members(member_id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY NOT NULL,
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    author_id INTEGER REFERENCES members(id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    reply_to INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    mentions TEXT NOT NULL DEFAULT '[]',
    mentions_all INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    edited_at INTEGER,
    deleted_at INTEGER
) STRICT;
CREATE INDEX messages_room ON messages(room_id, id);
CREATE INDEX messages_created ON messages(created_at);

CREATE TABLE reactions (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    emoji TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, member_id, emoji)
) STRICT;

-- Mentions waiting to be mailed after the member's delay (unless read first).
CREATE TABLE mention_notices (
    id INTEGER PRIMARY KEY NOT NULL,
    member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    due_at INTEGER NOT NULL,
    done_at INTEGER
) STRICT;
CREATE INDEX mention_notices_due ON mention_notices(due_at) WHERE done_at IS NULL;

-- Messages whose search index entry must be (re)written or removed.
CREATE TABLE search_queue (
    message_id INTEGER PRIMARY KEY NOT NULL,
    queued_at INTEGER NOT NULL
) STRICT;

CREATE TABLE mail_queue (
    id INTEGER PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at INTEGER,
    last_error TEXT
) STRICT;
