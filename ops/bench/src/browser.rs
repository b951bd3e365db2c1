//! One simulated browser (or a relying party's back end) talking to one practice: its own
//! keep-alive connection to 127.0.0.1 with `Host: <slug>.localhost:<port>`, and a minimal
//! cookie jar (name → value; the practice's cookies are host-only with path `/`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, HOST, LOCATION, SET_COOKIE};
use reqwest::{RequestBuilder, StatusCode};

/// An answer, timed until the whole body was read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
    pub took: Duration,
}

pub struct Browser {
    client: reqwest::Client,
    base: String,
    host: String,
    jar: BTreeMap<String, String>,
}

impl Browser {
    /// A browser for practice `slug` on the server listening on `addr`.
    pub fn new(addr: SocketAddr, slug: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            client,
            base: format!("http://{addr}"),
            host: format!("{slug}.localhost:{}", addr.port()),
            jar: BTreeMap::new(),
        })
    }

    /// A cookie the practice set and did not remove.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    /// Forgets every cookie (a fresh browser profile), keeping the connection.
    pub fn clear_cookies(&mut self) {
        self.jar.clear();
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        let rb = self.client.get(format!("{}{path}", self.base));
        self.send(rb, true).await
    }

    /// A form post with the browser's cookies.
    pub async fn post_form(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let rb = self
            .client
            .post(format!("{}{path}", self.base))
            .form(fields);
        self.send(rb, true).await
    }

    /// A back-channel form post without cookies, authenticated with `client_secret_basic`
    /// (id and secret are URL-safe base64, so they need no form-encoding first).
    pub async fn post_basic(
        &mut self,
        path: &str,
        user: &str,
        secret: &str,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let rb = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(user, Some(secret))
            .form(fields);
        self.send(rb, false).await
    }

    async fn send(&mut self, rb: RequestBuilder, cookies: bool) -> anyhow::Result<Answer> {
        let mut rb = rb.header(HOST, &self.host);
        if cookies && !self.jar.is_empty() {
            let header: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            rb = rb.header(COOKIE, header.join("; "));
        }
        let started = Instant::now();
        let resp = rb.send().await?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if cookies {
            for v in resp.headers().get_all(SET_COOKIE) {
                if let Ok(v) = v.to_str() {
                    absorb(&mut self.jar, v);
                }
            }
        }
        let body = resp.text().await?;
        Ok(Answer {
            status,
            location,
            body,
            took: started.elapsed(),
        })
    }
}

/// Applies one `Set-Cookie` header: stores `name=value`, or removes the cookie when the
/// value is empty or it expires at once (`Max-Age=0`).
fn absorb(jar: &mut BTreeMap<String, String>, header: &str) {
    let mut parts = header.split(';');
    let Some((name, value)) = parts.next().and_then(|kv| kv.split_once('=')) else {
        return;
    };
    let (name, value) = (name.trim(), value.trim());
    let removed = value.is_empty() || parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
    if removed {
        jar.remove(name);
    } else {
        jar.insert(name.to_owned(), value.to_owned());
    }
}

/// The value of the `csrf_token` hidden field of the first form on a page.
pub fn form_csrf(html: &str) -> Option<&str> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    let len = html[start..].find('"')?;
    Some(&html[start..start + len]).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_jar_sets_and_removes() {
        let mut jar = BTreeMap::new();
        absorb(&mut jar, "kollegium-id=abc; Path=/; HttpOnly; SameSite=Lax");
        absorb(&mut jar, "kollegium-csrf=xyz; Path=/");
        assert_eq!(jar.get("kollegium-id").map(String::as_str), Some("abc"));
        absorb(&mut jar, "kollegium-id=; Path=/; Max-Age=0");
        assert!(!jar.contains_key("kollegium-id"));
        absorb(&mut jar, "kollegium-csrf=new; Path=/; max-age=0");
        assert!(jar.is_empty());
        absorb(&mut jar, "garbage");
        assert!(jar.is_empty());
    }

    #[test]
    fn finds_the_form_token() {
        let html =
            r#"<form><input type="hidden" name="csrf_token" value="a-b_c"><input name="x"></form>"#;
        assert_eq!(form_csrf(html), Some("a-b_c"));
        assert_eq!(form_csrf("<form></form>"), None);
        assert_eq!(form_csrf(r#"name="csrf_token" value="""#), None);
    }
}
