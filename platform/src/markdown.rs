//! The safe Markdown subset of chat messages: bold, italic, code, links, lists, quotes and
//! line breaks. Raw HTML is shown as text, images become plain text, only `http`, `https`
//! and `mailto` links survive (with `rel="noopener noreferrer"`), and `@name`/`@alle`
//! mentions are highlighted. Output is built from events, never by passing input through.

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};

/// Whether `c` is a bidirectional embedding, override or isolate control (U+202A–U+202E,
/// U+2066–U+2069). They are not `char::is_control`, yet they reorder the text around them
/// (`Befunde\u{202E}fdp.exe` shows as `Befundeexe.pdf`), so they could disguise names and
/// links.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text with every bidirectional control replaced by U+FFFD, a visible mark that something
/// was there. The one rule for user text shown to others: message bodies (at rendering),
/// room names and topics (on input) and display names (when taken from the IdP's claims).
pub fn neutralize_bidi(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(is_bidi_control) {
        s.chars()
            .map(|c| if is_bidi_control(c) { '\u{FFFD}' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Bidirectional overrides and isolates could disguise text: show them inert.
            c if is_bidi_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn safe_href(url: &str) -> Option<String> {
    let trimmed: String = url
        .trim()
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")
    {
        Some(trimmed)
    } else {
        None
    }
}

/// Writes text, wrapping `@word` mentions that `is_mention` accepts.
fn text_with_mentions(text: &str, is_mention: &dyn Fn(&str) -> bool, out: &mut String) {
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let (before, from_at) = rest.split_at(at);
        escape(before, out);
        let word_len = from_at[1..]
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '.' || *c == '-' || *c == '_'))
            .map_or(from_at.len() - 1, |(i, _)| i);
        let word = from_at[1..1 + word_len].trim_end_matches('.');
        let preceded_by_word = before.chars().last().is_some_and(|c| c.is_alphanumeric());
        if !word.is_empty() && !preceded_by_word && is_mention(word) {
            out.push_str("<span class=\"mention\">@");
            escape(word, out);
            out.push_str("</span>");
            rest = &from_at[1 + word.len()..];
        } else {
            out.push('@');
            rest = &from_at[1..];
        }
    }
    escape(rest, out);
}

/// Renders a message body to HTML.
pub fn render(src: &str, is_mention: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(src.len() + 32);
    let options = Options::ENABLE_STRIKETHROUGH;
    // Inside an image the alt text is shown as text; inside a refused link, as text too.
    let mut image_depth = 0usize;
    let mut open_links: Vec<bool> = Vec::new();
    for event in Parser::new_ext(src, options) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Paragraph => out.push_str("<p>"),
                Tag::Heading { .. } => out.push_str("<p><strong>"),
                Tag::BlockQuote(_) => out.push_str("<blockquote>"),
                Tag::CodeBlock(_) => out.push_str("<pre><code>"),
                Tag::List(Some(start)) => {
                    if start == 1 {
                        out.push_str("<ol>");
                    } else {
                        out.push_str(&format!("<ol start=\"{start}\">"));
                    }
                }
                Tag::List(None) => out.push_str("<ul>"),
                Tag::Item => out.push_str("<li>"),
                Tag::Emphasis => out.push_str("<em>"),
                Tag::Strong => out.push_str("<strong>"),
                Tag::Strikethrough => out.push_str("<del>"),
                Tag::Link {
                    link_type,
                    dest_url,
                    ..
                } => {
                    let href = if matches!(link_type, LinkType::Email) {
                        Some(format!("mailto:{dest_url}"))
                    } else {
                        safe_href(&dest_url)
                    };
                    match href {
                        Some(h) if image_depth == 0 => {
                            out.push_str("<a href=\"");
                            escape(&h, &mut out);
                            out.push_str(
                                "\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">",
                            );
                            open_links.push(true);
                        }
                        _ => open_links.push(false),
                    }
                }
                Tag::Image { .. } => {
                    image_depth += 1;
                    out.push_str("[Bild: ");
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Paragraph => out.push_str("</p>"),
                TagEnd::Heading(_) => out.push_str("</strong></p>"),
                TagEnd::BlockQuote(_) => out.push_str("</blockquote>"),
                TagEnd::CodeBlock => out.push_str("</code></pre>"),
                TagEnd::List(true) => out.push_str("</ol>"),
                TagEnd::List(false) => out.push_str("</ul>"),
                TagEnd::Item => out.push_str("</li>"),
                TagEnd::Emphasis => out.push_str("</em>"),
                TagEnd::Strong => out.push_str("</strong>"),
                TagEnd::Strikethrough => out.push_str("</del>"),
                TagEnd::Link if open_links.pop() == Some(true) => out.push_str("</a>"),
                TagEnd::Image => {
                    image_depth = image_depth.saturating_sub(1);
                    out.push(']');
                }
                _ => {}
            },
            Event::Text(t) => text_with_mentions(&t, is_mention, &mut out),
            Event::Code(c) => {
                out.push_str("<code>");
                escape(&c, &mut out);
                out.push_str("</code>");
            }
            // Raw HTML is never interpreted: it is shown as the text it is.
            Event::Html(h) | Event::InlineHtml(h) => escape(&h, &mut out),
            Event::SoftBreak => out.push('\n'),
            Event::HardBreak => out.push_str("<br>"),
            Event::Rule => out.push_str("<hr>"),
            Event::FootnoteReference(f) => escape(&f, &mut out),
            Event::TaskListMarker(done) => out.push_str(if done { "[x] " } else { "[ ] " }),
            Event::InlineMath(m) | Event::DisplayMath(m) => escape(&m, &mut out),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        render(s, &|w| w == "anna" || w == "alle")
    }

    #[test]
    fn formats_the_subset() {
        assert_eq!(
            r("**fett** und *kursiv*"),
            "<p><strong>fett</strong> und <em>kursiv</em></p>"
        );
        assert_eq!(r("`code`"), "<p><code>code</code></p>");
        assert_eq!(
            r("- a\n- b"),
            "<ul>\n<li>a</li>\n<li>b</li>\n</ul>".replace('\n', "")
        );
        assert_eq!(r("> zitat"), "<blockquote><p>zitat</p></blockquote>");
        assert_eq!(
            r("[Leitlinie](https://example.org/a?b=1&c=2)"),
            "<p><a href=\"https://example.org/a?b=1&amp;c=2\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">Leitlinie</a></p>"
        );
    }

    #[test]
    fn mentions_are_highlighted_only_for_known_names() {
        assert_eq!(
            r("Hallo @anna und @alle!"),
            "<p>Hallo <span class=\"mention\">@anna</span> und <span class=\"mention\">@alle</span>!</p>"
        );
        assert_eq!(r("mail an x@anna.de"), "<p>mail an x@anna.de</p>");
        assert_eq!(r("@unbekannt"), "<p>@unbekannt</p>");
    }

    #[test]
    fn bidi_controls_become_visible_marks() {
        assert_eq!(neutralize_bidi("Labor"), "Labor");
        assert!(matches!(
            neutralize_bidi("Labor"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            neutralize_bidi("a\u{202A}b\u{202E}c\u{2066}d\u{2069}e\u{200F}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e\u{200F}"
        );
        assert_eq!(r("x\u{2067}y"), "<p>x\u{FFFD}y</p>");
    }

    #[test]
    fn xss_corpus_is_inert() {
        let corpus = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "![x](javascript:alert(1))",
            "![x\" onerror=\"alert(1)](https://example.org/x.png)",
            "[klick](javascript:alert(1))",
            "[klick](JaVaScRiPt:alert(1))",
            "[klick]( javascript:alert(1))",
            "[klick](data:text/html,<script>alert(1)</script>)",
            "[klick](vbscript:msgbox)",
            "<svg onload=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "<iframe src=https://evil.example>",
            "\u{202E}gpj.exe",
            "[a](https://x.example \"t\\\" onmouseover=alert(1)\")",
            "<style>body{display:none}</style>",
        ];
        for input in corpus {
            let html = r(input);
            assert!(!html.contains('\u{202E}'), "{input:?}");
            // Every tag is one of the subset, with only harmless attributes.
            for tag in html.split('<').skip(1) {
                let inner = tag.split('>').next().unwrap();
                let name: String = inner
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                assert!(
                    [
                        "p",
                        "strong",
                        "em",
                        "code",
                        "pre",
                        "ul",
                        "ol",
                        "li",
                        "blockquote",
                        "a",
                        "br",
                        "hr",
                        "del",
                        "span"
                    ]
                    .contains(&name.as_str()),
                    "{input:?} produced tag {name:?}: {html}"
                );
                let attrs = inner.trim_start_matches('/')[name.len()..].trim();
                if name == "a" && !inner.starts_with('/') {
                    let href = attrs
                        .strip_prefix("href=\"")
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap()
                        .to_ascii_lowercase();
                    assert!(
                        href.starts_with("https://")
                            || href.starts_with("http://")
                            || href.starts_with("mailto:"),
                        "{input:?}: {href}"
                    );
                    assert!(
                        attrs.ends_with("rel=\"noopener noreferrer nofollow\" target=\"_blank\""),
                        "{input:?}: {attrs}"
                    );
                } else if name == "span" && !inner.starts_with('/') {
                    assert_eq!(attrs, "class=\"mention\"");
                } else if name != "ol" {
                    assert!(attrs.is_empty(), "{input:?}: <{inner}>");
                }
            }
        }
    }
}
