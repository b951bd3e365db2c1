-- Accounts, sessions, devices, OIDC clients and grants, mail queue, security events.
-- All times are Unix seconds (UTC).

CREATE TABLE users (
    id INTEGER PRIMARY KEY NOT NULL,
    sub TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    email_verified INTEGER NOT NULL DEFAULT 0,
    display_name TEXT NOT NULL,
    password_hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
    is_admin INTEGER NOT NULL DEFAULT 0,
    is_owner INTEGER NOT NULL DEFAULT 0,
    roles TEXT NOT NULL DEFAULT '[]',
    specialty TEXT,
    kv_region TEXT,
    work_areas TEXT NOT NULL DEFAULT '[]',
    totp_secret TEXT,
    totp_last_step INTEGER,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    last_failed_at INTEGER,
    locked_until INTEGER,
    password_changed_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at INTEGER
) STRICT;
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

-- One-time links: owner setup, invitation, password reset.
CREATE TABLE action_tokens (
    id INTEGER PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('setup', 'invite', 'reset')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) STRICT;

CREATE TABLE devices (
    id INTEGER PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    cookie_hash TEXT NOT NULL UNIQUE,
    name TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'suspended', 'rejected')),
    user_agent TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    decided_at INTEGER,
    decided_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    last_seen_at INTEGER NOT NULL
) STRICT;
CREATE INDEX devices_user ON devices(user_id);

-- Browser sessions. `stage` is 'active' for a signed-in session; the other stages hold a
-- login that passed the password but still needs a second factor, enrolment or device
-- approval, and authenticate nothing else.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    sid TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    stage TEXT NOT NULL CHECK (stage IN ('active', 'totp', 'enroll', 'device')),
    device_id INTEGER REFERENCES devices(id) ON DELETE SET NULL,
    amr TEXT NOT NULL DEFAULT 'pwd',
    auth_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    user_agent TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    ended_at INTEGER,
    end_reason TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions(user_id);

-- Failed logins per client address (per-account counters live on users).
CREATE TABLE throttle (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    locked_until INTEGER
) STRICT;

CREATE TABLE clients (
    id INTEGER PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    secret_hash TEXT,
    confidential INTEGER NOT NULL,
    first_party INTEGER NOT NULL DEFAULT 0,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    post_logout_uris TEXT NOT NULL DEFAULT '[]',
    backchannel_logout_uri TEXT,
    allowed_scopes TEXT NOT NULL DEFAULT '["openid","profile","email","practice","offline_access"]',
    launch_url TEXT,
    initiate_login_uri TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    private_wrapped TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    publish_until INTEGER
) STRICT;

-- A grant: the tokens issued from one authorization (or client_credentials request).
CREATE TABLE grants (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    scope TEXT NOT NULL,
    auth_time INTEGER,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT
) STRICT;
CREATE INDEX grants_user ON grants(user_id);

CREATE TABLE auth_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    grant_id TEXT
) STRICT;

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER,
    revoked_at INTEGER
) STRICT;

-- Issued access tokens (JWTs) by id, so they can be revoked and introspected.
CREATE TABLE access_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT REFERENCES grants(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE TABLE consents (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT;

-- Clients that received tokens within a browser session (for back-channel logout).
CREATE TABLE session_clients (
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    PRIMARY KEY (session_id, client_id)
) STRICT;

CREATE TABLE backchannel_queue (
    id INTEGER PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    uri TEXT NOT NULL,
    logout_token TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error TEXT
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

CREATE TABLE security_events (
    id INTEGER PRIMARY KEY NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    user_id INTEGER,
    actor_id INTEGER,
    client_id TEXT,
    ip TEXT,
    detail TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX security_events_at ON security_events(at);
