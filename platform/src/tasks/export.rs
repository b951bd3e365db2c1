//! Tasks' part of a practice export: every board with its sharing, columns, labels and
//! cards (assignees, labels, checklist, comments, attachments, history) as JSON, and as
//! plain text. Attachments are listed (name, size, hash); their bytes are the practice's
//! `files/` blobs of those hashes.

use std::collections::HashMap;

use diesel::prelude::*;
use kollegium_tenants::provision::BoxError;
use serde_json::json;

use super::boards::{self, Grantee};
use super::{APP, BoardId, CardId, columns, details};
use crate::app::AppExport;
use crate::schema::{
    members, task_boards, task_card_assignees, task_card_events, task_card_labels, task_cards,
};

/// The export of every board.
pub fn export(conn: &mut SqliteConnection) -> Result<AppExport, BoxError> {
    let names: HashMap<i64, String> = members::table
        .select((members::id, members::display_name))
        .load(conn)?
        .into_iter()
        .collect();
    let name = |id: i64| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
    let board_ids: Vec<i64> = task_boards::table
        .order(task_boards::id)
        .select(task_boards::id)
        .load(conn)?;
    let mut out = Vec::new();
    let mut text = String::from("Aufgaben\n========\n");
    for id in board_ids {
        let Some(b) = boards::by_id(conn, BoardId(id))? else {
            continue;
        };
        let access: Vec<serde_json::Value> = boards::access(conn, BoardId(id))?
            .into_iter()
            .map(|a| {
                let who = match a.grantee {
                    Grantee::Practice => "Ganze Praxis".to_owned(),
                    Grantee::Role(r) => format!("Rolle {r}"),
                    Grantee::Member(m) => name(m.0),
                };
                json!({"who": who, "permission": a.permission.as_str()})
            })
            .collect();
        let cols = columns::of_board(conn, BoardId(id))?;
        let labels = details::labels(conn, BoardId(id))?;
        text.push_str(&format!("\n## {}", b.title));
        if b.is_archived() {
            text.push_str(" (archiviert)");
        }
        text.push('\n');
        let mut cards_json = Vec::new();
        let cards: Vec<super::cards::Card> = task_cards::table
            .filter(task_cards::board_id.eq(id))
            .order((task_cards::column_id, task_cards::position, task_cards::id))
            .select(super::cards::Card::as_select())
            .load(conn)?;
        for c in cards {
            let assignees: Vec<String> = task_card_assignees::table
                .filter(task_card_assignees::card_id.eq(c.id))
                .select(task_card_assignees::member_id)
                .load::<i64>(conn)?
                .into_iter()
                .map(name)
                .collect();
            let label_ids: Vec<i64> = task_card_labels::table
                .filter(task_card_labels::card_id.eq(c.id))
                .select(task_card_labels::label_id)
                .load(conn)?;
            let card_labels: Vec<String> = labels
                .iter()
                .filter(|l| label_ids.contains(&l.id))
                .map(|l| l.name.clone())
                .collect();
            let items = details::checklist(conn, CardId(c.id))?;
            let comments = details::comments(conn, CardId(c.id))?;
            let files = super::attachments::list_for_export(conn, CardId(c.id))?;
            let history: Vec<(Option<i64>, String, String, i64)> = task_card_events::table
                .filter(task_card_events::card_id.eq(c.id))
                .order(task_card_events::id)
                .select((
                    task_card_events::actor_id,
                    task_card_events::what,
                    task_card_events::detail,
                    task_card_events::at,
                ))
                .load(conn)?;
            let column = cols
                .iter()
                .find(|x| x.id == c.column_id)
                .map(|x| x.title.clone())
                .unwrap_or_default();
            text.push_str(&format!("- [{column}] {}", c.title));
            if c.archived_at.is_some() {
                text.push_str(" (archiviert)");
            }
            if let Some(d) = c.due_at {
                text.push_str(&format!(
                    ", fällig {}",
                    kollegium_tenants::clock::format_utc(d)
                ));
            }
            if !assignees.is_empty() {
                text.push_str(&format!(", zuständig: {}", assignees.join(", ")));
            }
            text.push('\n');
            if !c.description.is_empty() {
                for line in c.description.lines() {
                    text.push_str(&format!("    {line}\n"));
                }
            }
            for it in &items {
                let mark = if it.done_at.is_some() { "x" } else { " " };
                text.push_str(&format!("    [{mark}] {}\n", it.text));
            }
            for cm in comments.iter().filter(|c| !c.deleted) {
                text.push_str(&format!("    {}: {}\n", cm.author, cm.body));
            }
            for f in &files {
                text.push_str(&format!(
                    "    Anhang: {} ({} Bytes, SHA-256 {})\n",
                    f.name, f.size, f.blob_hash
                ));
            }
            cards_json.push(json!({
                "id": c.id,
                "column": column,
                "position": c.position,
                "title": c.title,
                "description": c.description,
                "due_at": c.due_at,
                "due_all_day": c.due_all_day,
                "done_at": c.done_at,
                "archived_at": c.archived_at,
                "created_by": c.created_by.map(name),
                "created_at": c.created_at,
                "assignees": assignees,
                "labels": card_labels,
                "checklist": items.iter().map(|i| json!({"text": i.text, "done_at": i.done_at})).collect::<Vec<_>>(),
                "comments": comments.iter().filter(|c| !c.deleted).map(|c| json!({"author": c.author, "body": c.body, "created_at": c.created_at})).collect::<Vec<_>>(),
                "attachments": files.iter().map(|f| json!({"name": f.name, "size": f.size, "sha256": f.blob_hash, "content_type": f.content_type, "uploaded_by": f.uploaded_by.map(name), "created_at": f.created_at})).collect::<Vec<_>>(),
                "history": history.into_iter().map(|(a, w, d, at)| json!({"actor": a.map(name), "what": w, "detail": serde_json::from_str::<serde_json::Value>(&d).unwrap_or_default(), "at": at})).collect::<Vec<_>>(),
            }));
        }
        out.push(json!({
            "id": b.id,
            "title": b.title,
            "description": b.description,
            "archived_at": b.archived_at,
            "created_at": b.created_at,
            "access": access,
            "columns": cols.iter().map(|c| json!({"title": c.title, "is_done": c.is_done})).collect::<Vec<_>>(),
            "labels": labels.iter().map(|l| json!({"name": l.name, "color": l.color})).collect::<Vec<_>>(),
            "cards": cards_json,
        }));
    }
    Ok(AppExport {
        app: APP,
        json: json!({ "boards": out }),
        readable: text,
    })
}
