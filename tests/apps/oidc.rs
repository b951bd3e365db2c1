//! A third-party tool's steps against the practice IdP (authorization request, login,
//! consent, tokens, refresh, introspection) and the page readers those tests share.

use serde_json::Value;

use crate::harness::{TestApp, form_csrf};
use crate::oidc_support::*;

pub const CB: &str = "https://tool.example/cb";

/// Form fields of a request.
pub type Fields = Vec<(&'static str, &'static str)>;

/// The value of an HTML attribute as the browser reads it.
pub fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').unwrap();
        let ch = match &tail[1..end] {
            "amp" => '&',
            "quot" => '"',
            "lt" => '<',
            "gt" => '>',
            e => {
                let n = e.trim_start_matches('#');
                let code = match n.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
                    None => n.parse().unwrap(),
                };
                char::from_u32(code).unwrap()
            }
        };
        out.push(ch);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The (unescaped) value of the input `name` of the page's main form.
pub fn input(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no {name}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    tag.split("value=\"")
        .nth(1)
        .map(|v| unescape(v.split('"').next().unwrap()))
        .unwrap_or_default()
}

/// Hidden inputs of the consent form, unescaped.
pub fn consent_fields(html: &str) -> Vec<(String, String)> {
    let html = &html[html.find("action=\"/id/authorize/consent\"").unwrap()..];
    let html = &html[..html.find("</form>").unwrap()];
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|part| {
            let name = part.split('"').next().unwrap().to_owned();
            let value = part.split("value=\"").nth(1).unwrap().split('"').next();
            (name, unescape(value.unwrap()))
        })
        .collect()
}

/// The body rows of the page's table (the filters above it list names too).
pub fn tbody(html: &str) -> &str {
    let start = html.find("<tbody>").unwrap();
    &html[start..start + html[start..].find("</tbody>").unwrap()]
}

pub fn auth_params<'a>(client_id: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("scope", scope),
        ("state", "st"),
    ]
}

/// Answers the login form at `login_path` (where `/id/authorize` sent the browser) and
/// follows the way back to the authorization endpoint; returns its final response.
pub async fn login_through(
    app: &TestApp,
    c: &reqwest::Client,
    login_path: &str,
    user: &str,
    pw: &str,
) -> reqwest::Response {
    let html = c
        .get(app.url("praxis-a", login_path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let next = input(&html, "next");
    assert!(next.starts_with("/id/authorize?"), "{next}");
    let r = c
        .post(app.url("praxis-a", "/id/login"))
        .form(&[
            ("csrf_token", form_csrf(&html).as_str()),
            ("login", user),
            ("password", pw),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "login as {user}");
    assert_eq!(location(&r), next, "the login returns to the request");
    c.get(app.url("praxis-a", &next)).send().await.unwrap()
}

/// Tokens of a code flow with `scope`.
pub async fn tokens(
    app: &TestApp,
    c: &reqwest::Client,
    creds: (&str, &str),
    scope: &str,
    extra: &[(&str, &str)],
) -> Value {
    let mut p = vec![("scope", scope)];
    p.extend_from_slice(extra);
    let code = code_for(app, c, "praxis-a", creds.0, &p).await;
    let (s, t) = exchange(app, "praxis-a", creds, &code, None).await;
    assert_eq!(s, 200, "{t}");
    t
}

pub async fn refresh(app: &TestApp, creds: (&str, &str), token: &Value) -> (u16, Value) {
    let (s, b, _) = post_form(
        app,
        "praxis-a",
        "/id/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token["refresh_token"].as_str().unwrap()),
        ],
        Some(creds),
    )
    .await;
    (s, b)
}

pub fn assert_invalid_grant((s, b): (u16, Value), what: &str) {
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{what}: {b}"
    );
}

pub async fn introspect(app: &TestApp, creds: (&str, &str), token: &str) -> Value {
    let (s, b, _) = post_form(
        app,
        "praxis-a",
        "/id/introspect",
        &[("token", token)],
        Some(creds),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b
}

pub fn creds(c: &kollegium_idp::oidc::clients::Created) -> (&str, &str) {
    (c.client_id.as_str(), c.secret.as_deref().unwrap())
}
