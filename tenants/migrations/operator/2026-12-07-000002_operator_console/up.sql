-- The operator console: the provider's staff accounts, their setup links and sessions,
-- the sign-in throttle (the IdP's table shape, so its throttle code counts here too) and
-- the audit log. Nothing here is about a practice's members or content.
CREATE TABLE operators (
    id INTEGER PRIMARY KEY NOT NULL,
    -- Lower case, unique: what the operator signs in with.
    name TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    -- argon2id (PHC string); set together with the TOTP secret when setup completes.
    password_hash TEXT,
    -- The TOTP secret, sealed with a key derived from the node key.
    totp_secret TEXT,
    -- The last TOTP step used: a code works once.
    last_totp_step INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at INTEGER NOT NULL,
    -- No account signs in without TOTP: password and second factor come together.
    CHECK ((password_hash IS NULL) = (totp_secret IS NULL))
) STRICT;

CREATE TABLE operator_setup_links (
    id INTEGER PRIMARY KEY NOT NULL,
    operator_id INTEGER NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    -- SHA-256 of the token (hex); the token itself is only in the printed link.
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    -- The password chosen on the link's first step (argon2id), until TOTP is confirmed.
    pending_password_hash TEXT,
    -- The TOTP secret offered for enrolment, sealed, with the time it was offered.
    pending_totp TEXT,
    pending_at INTEGER
) STRICT;
CREATE INDEX operator_setup_links_operator ON operator_setup_links (operator_id);

CREATE TABLE operator_sessions (
    id INTEGER PRIMARY KEY NOT NULL,
    -- SHA-256 of the cookie's token (hex).
    token_hash TEXT NOT NULL UNIQUE,
    operator_id INTEGER NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) STRICT;
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);

-- The IdP's throttle table, same shape: keys per account, per address and per pair.
CREATE TABLE throttle (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    locked_until INTEGER
) STRICT;

-- Who did what, when: an operator's name or "Kommandozeile"; an action code; its subject
-- (a slug, an operator's name, a message id), never content.
CREATE TABLE operator_audit (
    id INTEGER PRIMARY KEY NOT NULL,
    at INTEGER NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL
) STRICT;
