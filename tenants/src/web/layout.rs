//! What every page's base layout needs. The shell's parts (navigation, search field, user
//! menu) are filled in by [`super::shell::Shell::layout`]; pages outside the shell (sign-in,
//! error pages) keep the minimal bar of [`Layout::practice`] or [`Layout::plain`].

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
    /// Where the brand in the top bar leads (the practice's start page).
    pub home_href: String,
    /// Navigation entries: (label, href, active).
    pub nav: Vec<NavItem>,
    /// The search field of the top bar, when the page has the shell.
    pub search: Option<SearchField>,
    /// The signed-in user's display name, when there is one.
    pub user_name: Option<String>,
    /// The signed-in user's role labels, shown in the user menu (`Praxisleitung · Ärzt:in`).
    pub user_roles: Option<String>,
    /// Links of the user menu (e.g. "Mein Konto"), above "Abmelden".
    pub menu: Vec<NavItem>,
    /// Logout form target for the user menu.
    pub logout_href: Option<String>,
    /// The sections of the page's area (e.g. the administration's pages), shown above the
    /// content.
    pub subnav: Option<SubNav>,
    pub csrf_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NavItem {
    pub label: String,
    pub href: String,
    pub active: bool,
}

/// A GET form in the top bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchField {
    /// The form's target, e.g. `/search`.
    pub action: String,
    /// The query parameter, e.g. `q`.
    pub name: String,
    /// The field's label (visible as placeholder, announced as label), e.g. "Suche".
    pub label: String,
}

/// A secondary navigation inside one area of the shell.
#[derive(Debug, Clone)]
pub struct SubNav {
    /// Its accessible name, e.g. "Verwaltung".
    pub label: String,
    pub items: Vec<NavItem>,
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
            home_href: "/".into(),
            nav: Vec::new(),
            search: None,
            user_name: None,
            user_roles: None,
            menu: Vec::new(),
            logout_href: None,
            subnav: None,
            csrf_token: None,
        }
    }

    /// A layout inside a practice, without the shell's navigation (sign-in pages).
    pub fn practice(name: &str) -> Self {
        Self {
            practice_name: Some(name.to_owned()),
            ..Self::plain()
        }
    }

    /// The user's initials for the avatar ([`initials`]), empty without a user.
    pub fn user_initial(&self) -> String {
        self.user_name.as_deref().map(initials).unwrap_or_default()
    }

    pub fn with_script(mut self, name: &str) -> Self {
        self.scripts.push(assets::href(name));
        self
    }
}

/// Initials for an avatar: the first letters of the first and the last word ("Dr. Ines
/// Inhaber" → "II"; titles ending in a dot are skipped), `?` for a name without letters.
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name
        .split_whitespace()
        .filter(|w| !w.ends_with('.'))
        .collect();
    let first = |w: &&str| w.chars().find(|c| c.is_alphanumeric());
    let mut out = String::new();
    if let Some(c) = words.first().and_then(first) {
        out.extend(c.to_uppercase());
    }
    if words.len() > 1
        && let Some(c) = words.last().and_then(first)
    {
        out.extend(c.to_uppercase());
    }
    if out.is_empty() {
        out.push('?');
    }
    out
}
