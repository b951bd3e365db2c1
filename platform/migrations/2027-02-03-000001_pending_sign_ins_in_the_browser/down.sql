CREATE TABLE login_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    next TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    browser_hash TEXT NOT NULL DEFAULT '',
    client_key TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX login_states_browser ON login_states(browser_hash);
CREATE INDEX login_states_client ON login_states(client_key, created_at);
CREATE INDEX login_states_created ON login_states(created_at);
