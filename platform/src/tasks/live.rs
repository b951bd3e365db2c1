//! Tasks' live events on the workspace's one live channel: addressed to a board's topic
//! (`Topic { app: "tasks", id: board }`) and to the members who may read the board now
//! ([`super::boards::readers`]). A move carries where the card went, so open board pages
//! apply it without a request; any other change says which card changed and the page
//! reloads its columns. Events are built after the change committed; rendering touches no
//! database.

use diesel::SqliteConnection;
use diesel::result::QueryResult;

use super::{APP, BoardId, boards};
use crate::app::AppContext;
use crate::live::{Audience, Payload, Topic};

/// The live topic of a board.
pub fn topic(board: BoardId) -> Topic {
    Topic {
        app: APP,
        id: board.0,
    }
}

/// What changed on a board.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Change {
    /// A card went to `position` of `column`.
    Moved {
        card: i64,
        column: i64,
        position: i64,
    },
    /// A card was created, edited, archived or restored.
    Card { card: i64 },
    /// The board itself (title, columns, labels, sharing) changed.
    Board,
}

/// An event ready to publish: the board, who may read it, what changed, who did it.
#[derive(Debug, Clone)]
pub struct Event {
    pub board: BoardId,
    pub audience: Vec<i64>,
    pub change: Change,
    pub by: i64,
}

impl Event {
    /// The event of `change` on `board` for its current readers (read in the change's
    /// transaction or right after it).
    pub fn new(
        conn: &mut SqliteConnection,
        board: BoardId,
        change: Change,
        by: i64,
    ) -> QueryResult<Self> {
        let audience = boards::readers(conn, board)?
            .into_iter()
            .map(|m| m.0)
            .collect();
        Ok(Self {
            board,
            audience,
            change,
            by,
        })
    }

    /// Hands the event to the live channel.
    pub fn publish(self, shared: &AppContext, slug: &str) {
        let payload = Frame {
            board: self.board.0,
            change: self.change,
            by: self.by,
        };
        shared.live.publish(
            slug,
            topic(self.board),
            Audience::Members(self.audience),
            payload,
        );
    }
}

/// The frame readers receive: `{"type":"tasks.board","board":1,"what":"moved",...}`.
#[derive(Debug, Clone, serde::Serialize)]
struct Frame {
    board: i64,
    #[serde(flatten)]
    change: Change,
    by: i64,
}

impl Payload for Frame {
    fn render(&self, _topic: Topic, _reader: i64) -> Option<String> {
        let mut v = serde_json::to_value(self).ok()?;
        v.as_object_mut()?
            .insert("type".into(), serde_json::Value::from("tasks.board"));
        serde_json::to_string(&v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_renders_as_one_flat_frame() {
        let f = Frame {
            board: 3,
            change: Change::Moved {
                card: 7,
                column: 2,
                position: 0,
            },
            by: 1,
        };
        let v: serde_json::Value =
            serde_json::from_str(&f.render(topic(BoardId(3)), 1).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "tasks.board", "board": 3, "what": "moved", "card": 7,
                "column": 2, "position": 0, "by": 1})
        );
    }
}
