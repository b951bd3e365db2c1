//! The platform's 5xx causes: [`Internal`] keeps the source error, and [`log_5xx`] logs the
//! whole chain once where the answer is rendered. Every web error of the platform
//! (`AuthError`, the chat's `PageError` and `ApiError`, the sign-in routes) carries one.

pub use kollegium_tenants::cause::{BoxError, Internal, chain, log_5xx};

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk I/O error")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("database: {0}")]
    struct Wrapper(#[source] Root);

    #[test]
    fn a_page_error_renders_its_chain() {
        let e =
            crate::chat::routes::PageError::Internal(Internal::new("chat request", Wrapper(Root)));
        assert_eq!(chain(&e), "chat request: database: disk I/O error");
    }

    #[test]
    fn an_auth_error_renders_its_chain() {
        let e = crate::auth::session::AuthError::Internal(Internal::new(
            "reading the session",
            Wrapper(Root),
        ));
        assert_eq!(chain(&e), "reading the session: database: disk I/O error");
    }
}
