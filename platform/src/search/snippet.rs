//! Snippets of hits: a window of the text around the first match, escaped, with every
//! match in `<mark>`.

use tantivy::snippet::SnippetGenerator;

/// Characters of a snippet.
const SNIPPET_CHARS: usize = 160;

/// A snippet of `body` as HTML: every character escaped, the words `generator` (made from
/// the query) matches in `<mark>`. Short texts are shown whole; of long ones, a window
/// around the first match.
pub fn html(generator: Option<&SnippetGenerator>, body: &str) -> String {
    let marks: Vec<std::ops::Range<usize>> = match generator {
        Some(g) => {
            // The generator sees the whole body as one fragment, so it marks every match.
            let s = g.snippet(body);
            let base = s.fragment_range().start;
            s.highlighted()
                .iter()
                .map(|h| h.start + base..h.end + base)
                .collect()
        }
        None => Vec::new(),
    };
    let (from, to) = window(body, marks.first().map_or(0, |r| r.start));
    let shifted: Vec<_> = marks
        .iter()
        .filter(|r| r.start >= from && r.end <= to)
        .map(|r| r.start - from..r.end - from)
        .collect();
    let mut html = String::new();
    if from > 0 {
        html.push('…');
    }
    html.push_str(&highlight(&body[from..to], &shifted));
    if to < body.len() {
        html.push('…');
    }
    html
}

/// Byte bounds of at most [`SNIPPET_CHARS`] characters of `body` around `at`: some context
/// before it, cut at spaces where one is near.
fn window(body: &str, at: usize) -> (usize, usize) {
    if body.chars().count() <= SNIPPET_CHARS {
        return (0, body.len());
    }
    let at = if body.is_char_boundary(at) { at } else { 0 };
    const BEFORE: usize = 50;
    let mut from = body[..at]
        .char_indices()
        .rev()
        .nth(BEFORE - 1)
        .map_or(0, |(i, _)| i);
    if from > 0
        && let Some(sp) = body[from..at].find(char::is_whitespace)
        && sp < 20
    {
        from += sp + 1;
        while !body.is_char_boundary(from) {
            from += 1;
        }
    }
    let mut to = body[from..]
        .char_indices()
        .nth(SNIPPET_CHARS)
        .map_or(body.len(), |(i, _)| from + i);
    if to < body.len()
        && let Some(sp) = body[from..to].rfind(char::is_whitespace)
        && from + sp > at
        && to - (from + sp) < 20
    {
        to = from + sp;
    }
    (from, to)
}

/// HTML-escapes `s` completely (text and attribute safe).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `fragment` escaped, with the byte `ranges` wrapped in `<mark>`.
fn highlight(fragment: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let mut ranges: Vec<_> = ranges
        .iter()
        .filter(|r| {
            r.start < r.end
                && r.end <= fragment.len()
                && fragment.is_char_boundary(r.start)
                && fragment.is_char_boundary(r.end)
        })
        .cloned()
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut out = String::new();
    let mut at = 0;
    for r in ranges {
        if r.start < at {
            continue; // overlapping ranges: keep the first
        }
        out.push_str(&escape(&fragment[at..r.start]));
        out.push_str("<mark>");
        out.push_str(&escape(&fragment[r.clone()]));
        out.push_str("</mark>");
        at = r.end;
    }
    out.push_str(&escape(&fragment[at..]));
    out
}
