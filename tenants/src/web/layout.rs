//! What every page's base layout needs.

use super::assets;

/// Data for `templates/base.html`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub lang: &'static str,
    pub css_href: &'static str,
    pub favicon_href: &'static str,
    /// Scripts (hashed asset paths) the page needs; empty for pages that work without JS.
    pub scripts: Vec<&'static str>,
    /// Shown in the top bar; `None` outside a practice.
    pub practice_name: Option<String>,
    /// Navigation entries: (label, href, active).
    pub nav: Vec<NavItem>,
    /// The signed-in user's display name, when there is one.
    pub user_name: Option<String>,
    /// Logout form target for the user menu.
    pub logout_href: Option<String>,
    pub account_href: Option<String>,
    pub csrf_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NavItem {
    pub label: String,
    pub href: String,
    pub active: bool,
}

impl Layout {
    /// A layout for pages outside any practice (node pages, error pages).
    pub fn plain() -> Self {
        Self {
            lang: "de",
            css_href: assets::href("app.css"),
            favicon_href: assets::href("favicon.svg"),
            scripts: Vec::new(),
            practice_name: None,
            nav: Vec::new(),
            user_name: None,
            logout_href: None,
            account_href: None,
            csrf_token: None,
        }
    }

    /// A layout inside a practice.
    pub fn practice(name: &str) -> Self {
        Self {
            practice_name: Some(name.to_owned()),
            ..Self::plain()
        }
    }

    /// First letter of the user's name for the avatar.
    pub fn user_initial(&self) -> String {
        self.user_name
            .as_deref()
            .and_then(|n| n.chars().next())
            .map(|c| c.to_uppercase().collect())
            .unwrap_or_default()
    }

    pub fn with_script(mut self, name: &str) -> Self {
        self.scripts.push(assets::href(name));
        self
    }
}
