//! Where a browser may be sent back to after signing in: a path on the same origin.
//!
//! The IdP (`/id/login?next=…`) and the workspace (`/auth/login?next=…`) both take the
//! place to return to from the request, so both parse it here. A browser reads a
//! `Location` more loosely than the spec: it drops tabs and line breaks (`/\t/evil` is
//! `//evil`), treats `\` as `/`, and other software on the way may decode `%2f` or fold
//! Unicode look-alikes of `/` and `.`. So only a plain path is accepted: visible ASCII
//! (no spaces, no control characters, nothing non-ASCII), exactly one leading `/`, no
//! backslash anywhere, and in the path part (before `?`) neither percent-encoded slashes,
//! backslashes or dots nor `.`/`..` segments. Legitimate values are made from request
//! URIs, which are ASCII and percent-encoded already, so none of this refuses one.

/// Why a `next` value was refused; each variant names the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NextError {
    #[error("empty")]
    Empty,
    #[error("longer than {0} bytes")]
    TooLong(usize),
    #[error("not a path starting with a single '/'")]
    NotLocal,
    #[error("contains a character other than visible ASCII")]
    Character,
    #[error("contains a backslash")]
    Backslash,
    #[error("the path contains an encoded '/', '\\' or '.'")]
    EncodedSeparator,
    #[error("the path contains a '.' or '..' segment")]
    DotSegment,
}

/// A path on the request's own origin, safe to put into a `Location` header. Only
/// [`LocalPath::parse`] creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPath(String);

impl LocalPath {
    /// Accepts `input` if it is a local path of at most `max_len` bytes (see the module).
    pub fn parse(input: &str, max_len: usize) -> Result<Self, NextError> {
        if input.is_empty() {
            return Err(NextError::Empty);
        }
        if input.len() > max_len {
            return Err(NextError::TooLong(max_len));
        }
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(NextError::Character);
        }
        if input.contains('\\') {
            return Err(NextError::Backslash);
        }
        let rest = input.strip_prefix('/').ok_or(NextError::NotLocal)?;
        if rest.starts_with('/') {
            return Err(NextError::NotLocal);
        }
        let path = input.split(['?', '#']).next().unwrap_or_default();
        let lower = path.to_ascii_lowercase();
        if ["%2f", "%5c", "%2e"].iter().any(|e| lower.contains(e)) {
            return Err(NextError::EncodedSeparator);
        }
        if path.split('/').any(|s| s == "." || s == "..") {
            return Err(NextError::DotSegment);
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The place to return to: `next` if it is a local path of at most `max_len` bytes,
/// otherwise `fallback`.
pub fn safe_next(next: Option<&str>, max_len: usize, fallback: &str) -> String {
    next.and_then(|n| LocalPath::parse(n, max_len).ok())
        .map_or_else(|| fallback.to_owned(), LocalPath::into_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1024;

    #[test]
    fn local_paths_are_kept() {
        for ok in [
            "/",
            "/room",
            "/room/12?x=1#m5",
            "/room/search?q=a%2Fb",
            "/id/authorize?client_id=platform&redirect_uri=https%3A%2F%2Fa.example%2Fcb",
            "/files/v1.2/notes.txt",
            "/a/b/",
        ] {
            assert_eq!(safe_next(Some(ok), MAX, "/fallback"), ok, "{ok}");
        }
    }

    #[test]
    fn everything_else_falls_back() {
        let long = format!("/{}", "a".repeat(MAX));
        let corpus: &[&str] = &[
            "",
            // Other origins and schemes.
            "//evil.example",
            "///evil.example",
            "https://evil.example/",
            "evil.example",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            // Control characters a browser drops before reading the URL.
            "/\t/evil.example/x",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/a\0b",
            "/a\u{7f}b",
            "/a\u{85}b",
            " /evil",
            "/ /evil.example",
            // Backslashes, read as slashes.
            "/\\evil.example",
            "/\\/evil.example",
            "/a\\b",
            // Percent-encoded separators in the path.
            "/%2f/evil.example",
            "/%2F/evil.example",
            "/%5c/evil.example",
            "/%5Cevil.example",
            "/%2e%2e/%2e%2e/evil",
            "/%2E./x",
            // Dot segments.
            "/../x",
            "/./x",
            "/a/../../b",
            "/..",
            // Unicode look-alikes of '/', '\' and '.'.
            "/\u{2215}evil.example",
            "/\u{2044}evil.example",
            "/\u{ff0f}evil.example",
            "/\u{ff3c}evil.example",
            "/\u{fe68}evil.example",
            "/\u{29f8}evil.example",
            "/evil\u{3002}example",
            "/evil\u{ff0e}example",
            "/evil\u{ff61}example",
            "/\u{2024}\u{2024}/x",
            // Non-breaking and other Unicode spaces.
            "/\u{a0}/evil",
            "/\u{2028}/evil",
        ];
        for bad in corpus {
            assert_eq!(
                safe_next(Some(bad), MAX, "/fallback"),
                "/fallback",
                "{bad:?}"
            );
        }
        assert_eq!(safe_next(Some(&long), MAX, "/fallback"), "/fallback");
        assert_eq!(safe_next(None, MAX, "/fallback"), "/fallback");
    }

    #[test]
    fn each_rule_names_itself() {
        assert_eq!(LocalPath::parse("", MAX), Err(NextError::Empty));
        assert_eq!(LocalPath::parse("/abc", 3), Err(NextError::TooLong(3)));
        assert_eq!(LocalPath::parse("//x", MAX), Err(NextError::NotLocal));
        assert_eq!(LocalPath::parse("x/", MAX), Err(NextError::NotLocal));
        assert_eq!(LocalPath::parse("/\t", MAX), Err(NextError::Character));
        assert_eq!(LocalPath::parse("/a\\b", MAX), Err(NextError::Backslash));
        assert_eq!(
            LocalPath::parse("/%2fx", MAX),
            Err(NextError::EncodedSeparator)
        );
        assert_eq!(LocalPath::parse("/a/..", MAX), Err(NextError::DotSegment));
        // Query and fragment may carry encoded separators (an encoded redirect_uri).
        assert!(LocalPath::parse("/a?u=%2F%2Fb#%5c", MAX).is_ok());
        assert_eq!(
            LocalPath::parse("/a?x", MAX).map(LocalPath::into_string),
            Ok("/a?x".to_owned())
        );
    }
}
