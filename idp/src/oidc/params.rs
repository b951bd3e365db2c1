//! Strict parsing of OAuth request parameters (query string or form body): valid UTF-8
//! after percent-decoding, no parameter more than once (OAuth 2.0 §3.1), bounded sizes.
//! Lenient parsers replace bad bytes and keep the last duplicate; we refuse instead.

/// Largest query string or form body accepted. An authorization request is bounded
/// further by what the login form can carry back to it (`routes::MAX_NEXT`): `/id/authorize`
/// refuses a longer one with its error page instead of losing it at the login.
pub const MAX_TOTAL: usize = 16 * 1024;
/// Most parameters accepted.
pub const MAX_COUNT: usize = 64;
/// Largest ordinary value (`state`, `nonce`, `redirect_uri`, ...).
pub const MAX_VALUE: usize = 2048;
/// Largest token-carrying value (`id_token_hint`, `token`, ...).
pub const MAX_TOKEN_VALUE: usize = 8192;

const TOKEN_PARAMS: &[&str] = &["id_token_hint", "token", "refresh_token", "logout_token"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("request too large")]
    TooLarge,
    #[error("parameter {0} is too long")]
    ValueTooLong(String),
    #[error("parameter {0} is repeated")]
    Repeated(String),
    #[error("invalid encoding")]
    Encoding,
}

/// Decoded parameters in request order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(part: &[u8]) -> Result<String, ParamError> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = part.get(i + 1).copied().and_then(hex);
                let lo = part.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h * 16 + l),
                    _ => return Err(ParamError::Encoding),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParamError::Encoding)
}

impl Params {
    pub fn parse(raw: &[u8]) -> Result<Self, ParamError> {
        if raw.len() > MAX_TOTAL {
            return Err(ParamError::TooLarge);
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let k = decode(k)?;
            let v = decode(v)?;
            if k.chars().any(char::is_control) || v.chars().any(|c| c.is_control() && c != ' ') {
                return Err(ParamError::Encoding);
            }
            let max = if TOKEN_PARAMS.contains(&k.as_str()) {
                MAX_TOKEN_VALUE
            } else {
                MAX_VALUE
            };
            if v.len() > max {
                return Err(ParamError::ValueTooLong(k.chars().take(40).collect()));
            }
            if out.iter().any(|(e, _)| *e == k) {
                return Err(ParamError::Repeated(k.chars().take(40).collect()));
            }
            out.push((k, v));
            if out.len() > MAX_COUNT {
                return Err(ParamError::TooLarge);
            }
        }
        Ok(Self(out))
    }

    /// A parameter's value; empty values count as absent (OAuth 2.0 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Without the named parameters.
    pub fn without(&self, names: &[&str]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(k, _)| !names.contains(&k.as_str()))
                .cloned()
                .collect(),
        )
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Re-encoded as a query string.
    pub fn to_query(&self) -> String {
        serde_urlencoded::to_string(&self.0).unwrap_or_default()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly() {
        let p = Params::parse(b"a=1&b=x%20y+z&c=&d").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("x y z"));
        assert_eq!(p.get("c"), None);
        assert_eq!(p.get("d"), None);
        assert_eq!(
            Params::parse(b"a=1&a=2").unwrap_err(),
            ParamError::Repeated("a".into())
        );
        assert_eq!(Params::parse(b"a=%ff").unwrap_err(), ParamError::Encoding);
        assert_eq!(Params::parse(b"a=%f").unwrap_err(), ParamError::Encoding);
        assert_eq!(Params::parse(b"a=%00").unwrap_err(), ParamError::Encoding);
        let long = format!("state={}", "x".repeat(8192));
        assert!(matches!(
            Params::parse(long.as_bytes()),
            Err(ParamError::ValueTooLong(_))
        ));
        let q = Params::parse(b"x=a%26b").unwrap().with("y", "1").to_query();
        assert_eq!(q, "x=a%26b&y=1");
    }
}
