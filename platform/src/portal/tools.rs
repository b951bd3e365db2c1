//! Tiles for the practice's third-party tools. The IdP knows them; the platform asks it
//! server-to-server (`GET <issuer>/api/launchables`) with the member's access token, like
//! any relying party would, and never reads `idp.sqlite`.

use std::time::Duration;

use crate::auth::SignIn;

/// How long the start page waits for the IdP.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// Longest answer accepted.
const MAX_BYTES: usize = 256 * 1024;
/// Most tiles shown.
const MAX_TOOLS: usize = 100;

/// A tool tile: a name and an http(s) address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub name: String,
    pub href: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error("request: {0}")]
    Request(String),
    #[error("the identity provider answered {0}")]
    Status(u16),
    #[error("answer too large")]
    TooLarge,
    #[error("answer malformed: {0}")]
    Malformed(String),
}

#[derive(Debug, serde::Deserialize)]
struct Answer {
    launchables: Vec<Entry>,
}

#[derive(Debug, serde::Deserialize)]
struct Entry {
    name: String,
    href: String,
}

/// An address a tile may link to: absolute http or https, without user info.
pub fn safe_href(href: &str) -> Option<String> {
    if href.len() > 2000 || href.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let u = reqwest::Url::parse(href).ok()?;
    if !matches!(u.scheme(), "http" | "https")
        || u.host_str().is_none_or(str::is_empty)
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return None;
    }
    Some(u.to_string())
}

fn safe_name(name: &str) -> Option<String> {
    let n: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let n: String = n.chars().take(120).collect();
    (!n.is_empty()).then_some(n)
}

/// Parses the IdP's answer, dropping entries with an unsafe address or an empty name.
pub fn parse(body: &[u8]) -> Result<Vec<Tool>, ToolsError> {
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| ToolsError::Malformed(e.to_string()))?;
    Ok(a.launchables
        .into_iter()
        .filter_map(|e| {
            Some(Tool {
                name: safe_name(&e.name)?,
                href: safe_href(&e.href)?,
            })
        })
        .take(MAX_TOOLS)
        .collect())
}

/// The tools the member can launch, from the practice IdP at `issuer`.
pub async fn fetch(
    state: &SignIn,
    issuer: &str,
    access_token: &str,
) -> Result<Vec<Tool>, ToolsError> {
    let res = state
        .http
        .get(format!("{issuer}/api/launchables"))
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| ToolsError::Request(e.without_url().to_string()))?;
    if !res.status().is_success() {
        return Err(ToolsError::Status(res.status().as_u16()));
    }
    if res.content_length().is_some_and(|l| l > MAX_BYTES as u64) {
        return Err(ToolsError::TooLarge);
    }
    let body = res
        .bytes()
        .await
        .map_err(|e| ToolsError::Request(e.without_url().to_string()))?;
    if body.len() > MAX_BYTES {
        return Err(ToolsError::TooLarge);
    }
    parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_addresses_become_tiles() {
        let body = br#"{"launchables":[
            {"name":"Dienstplan","href":"https://praxis-a.example/id/launch/abc"},
            {"name":"Boese","href":"javascript:alert(1)"},
            {"name":"Daten","href":"data:text/html,x"},
            {"name":"Relativ","href":"/id/launch/x"},
            {"name":"Nutzer","href":"https://a:b@evil.example/"},
            {"name":"  ","href":"https://ok.example/"},
            {"name":"Zeit\nerfassung","href":"http://praxis-a.localhost:8080/id/launch/z?a=1&b=\"2\""}
        ]}"#;
        let tools = parse(body).unwrap();
        assert_eq!(
            tools,
            vec![
                Tool {
                    name: "Dienstplan".into(),
                    href: "https://praxis-a.example/id/launch/abc".into()
                },
                Tool {
                    name: "Zeit erfassung".into(),
                    href: "http://praxis-a.localhost:8080/id/launch/z?a=1&b=%222%22".into()
                },
            ]
        );
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"other":1}"#).is_err());
    }
}
