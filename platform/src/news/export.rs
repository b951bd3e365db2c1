//! The news app's part of a practice export: what a member did with which message, as the
//! practice's `platform.sqlite` keeps it (`news_state`: read, hidden), per member. The
//! messages themselves are the operator's and stay out; only their titles are named, from
//! the node's store when the export has it at hand (a message it no longer holds, withdrawn
//! or never known, is named by its id alone). The members who declined the mail notices
//! are listed too (`news_mail_opt_out`).

use std::collections::HashMap;

use diesel::prelude::*;
use kollegium_tenants::broadcast::NodeFeed;
use kollegium_tenants::provision::BoxError;
use serde_json::json;

use super::APP;
use crate::app::AppExport;
use crate::schema::{members, news_mail_opt_out, news_state};

/// One member's mark on one message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mark {
    pub member: String,
    pub message_id: String,
    pub title: Option<String>,
    pub read: bool,
    pub read_at: Option<i64>,
    pub hidden: bool,
    pub hidden_at: Option<i64>,
}

/// Every member's marks, by member name then message id; titles from `feed` if given.
pub fn marks(conn: &mut SqliteConnection, feed: Option<&NodeFeed>) -> Result<Vec<Mark>, BoxError> {
    let titles: HashMap<String, String> = match feed {
        Some(f) => f
            .all()?
            .into_iter()
            .map(|m| (m.id.as_str().to_owned(), m.title))
            .collect(),
        None => HashMap::new(),
    };
    let names: HashMap<i64, String> = members::table
        .select((members::id, members::username))
        .load(conn)?
        .into_iter()
        .collect();
    let rows: Vec<(i64, String, Option<i64>, Option<i64>)> = news_state::table
        .select((
            news_state::member_id,
            news_state::message_id,
            news_state::read_at,
            news_state::dismissed_at,
        ))
        .load(conn)?;
    let mut marks: Vec<Mark> = rows
        .into_iter()
        .map(|(member, message_id, read_at, hidden_at)| Mark {
            title: titles.get(&message_id).cloned(),
            member: names
                .get(&member)
                .cloned()
                .unwrap_or_else(|| format!("#{member}")),
            message_id,
            read: read_at.is_some(),
            read_at,
            hidden: hidden_at.is_some(),
            hidden_at,
        })
        .collect();
    marks.sort_by(|a, b| (&a.member, &a.message_id).cmp(&(&b.member, &b.message_id)));
    Ok(marks)
}

/// The members who declined the mail notices, by name, with since when.
pub fn declined(conn: &mut SqliteConnection) -> Result<Vec<(String, i64)>, BoxError> {
    let mut rows: Vec<(String, i64)> = news_mail_opt_out::table
        .inner_join(members::table.on(members::id.eq(news_mail_opt_out::member_id)))
        .select((members::username, news_mail_opt_out::since))
        .load(conn)?;
    rows.sort();
    Ok(rows)
}

/// The export (JSON and readable text); `None` when no member marked anything or declined
/// the notices.
pub fn export(
    conn: &mut SqliteConnection,
    feed: Option<&NodeFeed>,
) -> Result<Option<AppExport>, BoxError> {
    let marks = marks(conn, feed)?;
    let declined = declined(conn)?;
    if marks.is_empty() && declined.is_empty() {
        return Ok(None);
    }
    let mut text =
        String::from("Neuigkeiten (gelesen/ausgeblendet)\n==================================\n");
    let mut last: Option<&str> = None;
    for m in &marks {
        if last != Some(m.member.as_str()) {
            text.push_str(&format!("\n## {}\n", m.member));
            last = Some(m.member.as_str());
        }
        let name = m.title.as_deref().unwrap_or(m.message_id.as_str());
        let mut state = Vec::new();
        if m.read {
            state.push("gelesen");
        }
        if m.hidden {
            state.push("ausgeblendet");
        }
        if state.is_empty() {
            state.push("ungelesen");
        }
        text.push_str(&format!(
            "- {name} [{}]: {}\n",
            m.message_id,
            state.join(", ")
        ));
    }
    if !declined.is_empty() {
        text.push_str("\nKeine E-Mail-Hinweise gewünscht:\n");
        for (member, _) in &declined {
            text.push_str(&format!("- {member}\n"));
        }
    }
    let declined: Vec<_> = declined
        .into_iter()
        .map(|(member, since)| json!({ "member": member, "since": since }))
        .collect();
    Ok(Some(AppExport {
        app: APP,
        json: json!({ "marks": marks, "mail_declined": declined }),
        readable: text,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::news::{Action, record};
    use crate::test_support::{db, member};

    #[test]
    fn the_export_lists_each_members_marks_and_nothing_else() {
        let (_dir, mut c) = db();
        assert!(export(&mut c, None).unwrap().is_none(), "nothing marked");
        let (anna, bernd) = (member(&mut c, "anna"), member(&mut c, "bernd"));
        let (x, y) = (
            "0123456789abcdef0123456789abcdef",
            "fedcba9876543210fedcba9876543210",
        );
        record(&mut c, anna, x, Action::Read, 10).unwrap();
        record(&mut c, anna, y, Action::Hide, 20).unwrap();
        record(&mut c, bernd, x, Action::Hide, 30).unwrap();
        record(&mut c, bernd, x, Action::Restore, 40).unwrap();
        let part = export(&mut c, None).unwrap().unwrap();
        assert_eq!(part.app, "news");
        let got: Vec<(String, String, bool, bool)> = part.json["marks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["member"].as_str().unwrap().to_owned(),
                    m["message_id"].as_str().unwrap().to_owned(),
                    m["read"].as_bool().unwrap(),
                    m["hidden"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("anna".into(), x.into(), true, false),
                ("anna".into(), y.into(), true, true),
                ("bernd".into(), x.into(), true, false),
            ]
        );
        assert!(part.readable.contains("## anna\n"));
        assert!(
            part.readable
                .contains(&format!("- {y} [{y}]: gelesen, ausgeblendet"))
        );
    }
}
