//! E-mail addresses as a parsed type.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("e-mail address is empty")]
    Empty,
    #[error("e-mail address is longer than 254 characters")]
    TooLong,
    #[error("e-mail address must have exactly one '@' with text on both sides")]
    Shape,
    #[error("e-mail address must not contain spaces, control characters, quotes or angle brackets")]
    Character,
    #[error(
        "the domain of the e-mail address must contain a dot and only letters, digits, '-' and '.'"
    )]
    Domain,
}

impl Email {
    /// Parses an address; the domain is lowercased, the local part kept as typed.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.len() > 254 {
            return Err(EmailError::TooLong);
        }
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"<>(),;:\\[]".contains(c))
        {
            return Err(EmailError::Character);
        }
        let (local, domain) = s.split_once('@').ok_or(EmailError::Shape)?;
        if local.is_empty() || domain.is_empty() || domain.contains('@') || local.len() > 64 {
            return Err(EmailError::Shape);
        }
        let domain = domain.to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !domain.contains('.') || !domain.split('.').all(label_ok) {
            return Err(EmailError::Domain);
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            Email::parse(" Anna@Praxis.DE ").unwrap().as_str(),
            "Anna@praxis.de"
        );
        assert_eq!(Email::parse(""), Err(EmailError::Empty));
        assert_eq!(Email::parse("anna"), Err(EmailError::Shape));
        assert_eq!(Email::parse("a@b@c.de"), Err(EmailError::Shape));
        assert_eq!(Email::parse("a b@c.de"), Err(EmailError::Character));
        assert_eq!(Email::parse("a@localhost"), Err(EmailError::Domain));
        assert_eq!(Email::parse("a@-x.de"), Err(EmailError::Domain));
        assert_eq!(
            Email::parse(&format!("{}@x.de", "a".repeat(300))),
            Err(EmailError::TooLong)
        );
    }
}
