//! Practice slugs: the DNS label that names a practice (`<slug>.<base>`).

use std::fmt;

/// Names that can never be a practice because the node or common infrastructure uses them.
pub const RESERVED: &[&str] = &[
    "www",
    "id",
    "admin",
    "api",
    "mail",
    "static",
    "operator",
    "dav",
    "assets",
    "app",
    "auth",
    "login",
    "logout",
    "sso",
    "oauth",
    "oidc",
    "status",
    "metrics",
    "health",
    "healthz",
    "help",
    "support",
    "docs",
    "blog",
    "smtp",
    "imap",
    "pop",
    "ftp",
    "ns1",
    "ns2",
    "mx",
    "cdn",
    "root",
    "system",
    "kollegium",
    "localhost",
    "test",
    "demo",
    "webmail",
    "autodiscover",
    "autoconfig",
];

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 40;

/// A validated practice slug. Only [`Slug::parse`] creates one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

/// Why a slug was refused; each variant names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("slug is empty")]
    Empty,
    #[error("slug must be at least {MIN_LEN} characters long (got {0})")]
    TooShort(usize),
    #[error("slug must be at most {MAX_LEN} characters long (got {0})")]
    TooLong(usize),
    #[error("slug may contain only lowercase letters a-z, digits 0-9 and '-' (found {0:?})")]
    InvalidCharacter(char),
    #[error("slug must not start or end with '-'")]
    EdgeHyphen,
    #[error("slug must not contain '--' (reserved for punycode and similar encodings)")]
    DoubleHyphen,
    #[error("slug {0:?} is reserved")]
    Reserved(String),
}

impl Slug {
    pub fn parse(input: &str) -> Result<Self, SlugError> {
        if input.is_empty() {
            return Err(SlugError::Empty);
        }
        if let Some(c) = input
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(SlugError::InvalidCharacter(c));
        }
        let len = input.len();
        if len < MIN_LEN {
            return Err(SlugError::TooShort(len));
        }
        if len > MAX_LEN {
            return Err(SlugError::TooLong(len));
        }
        if input.starts_with('-') || input.ends_with('-') {
            return Err(SlugError::EdgeHyphen);
        }
        if input.contains("--") {
            return Err(SlugError::DoubleHyphen);
        }
        if RESERVED.contains(&input) {
            return Err(SlugError::Reserved(input.to_owned()));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Slug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_labels() {
        for ok in ["abc", "praxis-mueller", "mvz-1", "a1b", &"a".repeat(40)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn every_rule_has_its_own_refusal() {
        assert_eq!(Slug::parse(""), Err(SlugError::Empty));
        assert_eq!(Slug::parse("ab"), Err(SlugError::TooShort(2)));
        assert_eq!(Slug::parse(&"a".repeat(41)), Err(SlugError::TooLong(41)));
        assert_eq!(Slug::parse(&"a".repeat(200)), Err(SlugError::TooLong(200)));
        assert_eq!(Slug::parse("Praxis"), Err(SlugError::InvalidCharacter('P')));
        assert_eq!(
            Slug::parse("praxis-müller"),
            Err(SlugError::InvalidCharacter('ü'))
        );
        assert_eq!(Slug::parse("../x"), Err(SlugError::InvalidCharacter('.')));
        assert_eq!(Slug::parse("a_b"), Err(SlugError::InvalidCharacter('_')));
        assert_eq!(Slug::parse("-abc"), Err(SlugError::EdgeHyphen));
        assert_eq!(Slug::parse("abc-"), Err(SlugError::EdgeHyphen));
        assert_eq!(Slug::parse("xn--mller-kva"), Err(SlugError::DoubleHyphen));
        assert_eq!(Slug::parse("www"), Err(SlugError::Reserved("www".into())));
        assert_eq!(
            Slug::parse("operator"),
            Err(SlugError::Reserved("operator".into()))
        );
    }

    #[test]
    fn messages_name_the_rule() {
        let msg = Slug::parse("a--b").unwrap_err().to_string();
        assert!(msg.contains("--"), "{msg}");
        let msg = Slug::parse("dav").unwrap_err().to_string();
        assert!(msg.contains("reserved"), "{msg}");
    }
}
