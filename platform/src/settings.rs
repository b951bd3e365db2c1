//! The workspace's settings, composed from the pieces' own settings: the sign-in's and each
//! app's. Lives beside them so the sign-in never imports an app.

/// The workspace's settings as the binary composes them (from the configuration); each
/// piece takes its part ([`crate::auth::SessionSettings`],
/// [`crate::chat::state::ChatSettings`]).
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// A platform session unused this long ends; no longer than the IdP's idle limit.
    pub session_idle_secs: i64,
    /// A platform session ends this long after sign-in, however busy: the IdP session's
    /// absolute limit (the workspace never outlives the sign-in it came from).
    pub session_absolute_secs: i64,
    /// A pending sign-in (state, nonce, PKCE verifier) is valid this long.
    pub login_state_ttl_secs: i64,
    /// Chat messages a member may send in a burst, refilled at `posts_per_sec`.
    pub post_burst: f64,
    pub posts_per_sec: f64,
    /// The practice file store: clamd's address, the scan timeout, the largest file.
    pub files: crate::filestore::FileSettings,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        let session = crate::auth::SessionSettings::default();
        let chat = crate::chat::state::ChatSettings::default();
        Self {
            session_idle_secs: session.session_idle_secs,
            session_absolute_secs: session.session_absolute_secs,
            login_state_ttl_secs: session.login_state_ttl_secs,
            post_burst: chat.post_burst,
            posts_per_sec: chat.posts_per_sec,
            files: crate::filestore::FileSettings::default(),
        }
    }
}
