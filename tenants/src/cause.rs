//! The cause of a 5xx answer, kept with its whole source chain, and the one way the apps
//! log it: each app's web error carries an [`Internal`] for what went wrong inside (never
//! a `String` that threw the cause away), and logs [`chain`] once, where the 5xx response
//! is rendered.

use std::borrow::Cow;
use std::error::Error as StdError;

/// A boxed error that may cross threads (`web::block`).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What failed inside, with the error that caused it (if any). Its `Display` is the
/// context only; [`chain`] gives the context and every source.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct Internal {
    context: Cow<'static, str>,
    #[source]
    source: Option<BoxError>,
}

impl Internal {
    /// A failure without an underlying error (an invariant broken, state missing).
    pub fn msg(context: impl Into<Cow<'static, str>>) -> Self {
        Self {
            context: context.into(),
            source: None,
        }
    }

    /// `context` caused by `source`, whose own sources stay reachable.
    pub fn new(context: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self {
            context: context.into(),
            source: Some(source.into()),
        }
    }
}

/// `e` and every source below it, joined by `": "` (the form logged for every 5xx).
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let s = cause.to_string();
        // A wrapper that prints its source (`#[error("x: {0}")]`) would repeat it.
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = cause.source();
    }
    out
}

/// Logs a 5xx cause with its whole chain, once, where the response is rendered.
pub fn log_5xx(what: &str, e: &(dyn StdError + 'static)) {
    tracing::error!(error = %chain(e), "{what}");
}

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
    fn the_chain_keeps_every_cause() {
        let e = Internal::new("ending the session", Wrapper(Root));
        assert_eq!(e.to_string(), "ending the session");
        assert_eq!(chain(&e), "ending the session: database: disk I/O error");
        assert_eq!(chain(&Internal::msg("state missing")), "state missing");
    }

    #[test]
    fn a_store_error_keeps_its_text_through_internal() {
        let store = crate::store::StoreError::Poisoned;
        let e = Internal::new("opening the database", store);
        assert_eq!(chain(&e), "opening the database: internal lock poisoned");
    }
}
