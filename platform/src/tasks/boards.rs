//! Boards and who may see them: create, rename, archive and restore, the access rows
//! (sharing), a member's [`Permission`], the list of a member's boards with their counts,
//! and the members who may read a board (the audience of its live events).

use std::collections::HashMap;

use diesel::prelude::*;
use kollegium_tenants::{UnixTime, catalog};

use super::{BoardId, Permission, TaskError, check_text, check_title};
use crate::members::MemberId;
use crate::schema::{members, task_board_access, task_boards, task_cards, task_columns};

/// A board row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task_boards)]
pub struct Board {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub archived_at: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Board {
    pub fn board_id(&self) -> BoardId {
        BoardId(self.id)
    }
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

/// Whom an access row grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// Every member of the practice.
    Practice,
    /// Members holding a catalogue role (`kollegium_tenants::catalog::ROLES` id).
    Role(String),
    /// One member.
    Member(MemberId),
}

/// One access row: a grantee and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub grantee: Grantee,
    pub permission: Permission,
}

impl Access {
    pub fn new(grantee: Grantee, permission: Permission) -> Self {
        Self {
            grantee,
            permission,
        }
    }
}

/// What a member is, as far as board access goes.
#[derive(Debug, Clone)]
struct Who {
    id: i64,
    roles: Vec<String>,
    is_admin: bool,
}

fn who(conn: &mut SqliteConnection, member: MemberId) -> QueryResult<Option<Who>> {
    let row: Option<(i64, String, bool)> = members::table
        .find(member.0)
        .filter(members::deactivated_at.is_null())
        .select((members::id, members::roles, members::is_admin))
        .first(conn)
        .optional()?;
    Ok(row.map(|(id, roles, is_admin)| Who {
        id,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        is_admin,
    }))
}

type AccessRow = (i64, String, Option<String>, Option<i64>, String);

fn permission_of(who: &Who, rows: &[AccessRow]) -> Option<Permission> {
    if who.is_admin {
        return Some(Permission::Manage);
    }
    rows.iter()
        .filter(|(_, kind, role, member, _)| match kind.as_str() {
            "practice" => true,
            "role" => role.as_ref().is_some_and(|r| who.roles.contains(r)),
            "member" => *member == Some(who.id),
            _ => false,
        })
        .filter_map(|(.., p)| Permission::parse(p))
        .max()
}

fn access_rows(conn: &mut SqliteConnection, boards: &[i64]) -> QueryResult<Vec<AccessRow>> {
    task_board_access::table
        .filter(task_board_access::board_id.eq_any(boards))
        .select((
            task_board_access::board_id,
            task_board_access::kind,
            task_board_access::role,
            task_board_access::member_id,
            task_board_access::permission,
        ))
        .load(conn)
}

/// `member`'s permission on `board`: the highest matching access row, `Manage` for the
/// practice's admins, `None` if the board does not exist, the member is deactivated or no
/// row matches them (then the board does not exist for them).
pub fn permission(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
) -> QueryResult<Option<Permission>> {
    let exists: Option<i64> = task_boards::table
        .find(board.0)
        .select(task_boards::id)
        .first(conn)
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    let Some(w) = who(conn, member)? else {
        return Ok(None);
    };
    Ok(permission_of(&w, &access_rows(conn, &[board.0])?))
}

/// The board and `member`'s permission, if they may read it ([`TaskError::BoardNotFound`]
/// otherwise).
pub fn readable(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
) -> Result<(Board, Permission), TaskError> {
    let perm = permission(conn, board, member)?.ok_or(TaskError::BoardNotFound)?;
    let b = by_id(conn, board)?.ok_or(TaskError::BoardNotFound)?;
    Ok((b, perm))
}

/// Like [`readable`], but the member needs at least `need` and the board must not be
/// archived (a card change on an archived board is refused).
pub fn writable(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
    need: Permission,
) -> Result<(Board, Permission), TaskError> {
    let (b, perm) = readable(conn, board, member)?;
    if perm < need {
        return Err(if need == Permission::Manage {
            TaskError::NotManager
        } else {
            TaskError::ReadOnly
        });
    }
    if b.is_archived() {
        return Err(TaskError::Archived);
    }
    Ok((b, perm))
}

pub fn by_id(conn: &mut SqliteConnection, board: BoardId) -> QueryResult<Option<Board>> {
    task_boards::table
        .find(board.0)
        .select(Board::as_select())
        .first(conn)
        .optional()
}

/// The board ids `member` may read, with their permission (archived boards included).
pub fn readable_boards(
    conn: &mut SqliteConnection,
    member: MemberId,
) -> QueryResult<Vec<(i64, Permission)>> {
    let Some(w) = who(conn, member)? else {
        return Ok(Vec::new());
    };
    let ids: Vec<i64> = task_boards::table
        .order(task_boards::id)
        .select(task_boards::id)
        .load(conn)?;
    let rows = access_rows(conn, &ids)?;
    let mut by_board: HashMap<i64, Vec<AccessRow>> = HashMap::new();
    for r in rows {
        by_board.entry(r.0).or_default().push(r);
    }
    Ok(ids
        .into_iter()
        .filter_map(|id| {
            let rows = by_board.get(&id).map_or(&[][..], |v| v.as_slice());
            permission_of(&w, rows).map(|p| (id, p))
        })
        .collect())
}

/// The active members who may read `board` (the audience of its live events).
pub fn readers(conn: &mut SqliteConnection, board: BoardId) -> QueryResult<Vec<MemberId>> {
    let rows = access_rows(conn, &[board.0])?;
    let all: Vec<(i64, String, bool)> = members::table
        .filter(members::deactivated_at.is_null())
        .select((members::id, members::roles, members::is_admin))
        .load(conn)?;
    Ok(all
        .into_iter()
        .filter(|(id, roles, is_admin)| {
            let w = Who {
                id: *id,
                roles: serde_json::from_str(roles).unwrap_or_default(),
                is_admin: *is_admin,
            };
            permission_of(&w, &rows).is_some()
        })
        .map(|(id, ..)| MemberId(id))
        .collect())
}

/// The access rows of a board, practice first, then roles, then members.
pub fn access(conn: &mut SqliteConnection, board: BoardId) -> QueryResult<Vec<Access>> {
    let mut out: Vec<Access> = access_rows(conn, &[board.0])?
        .into_iter()
        .filter_map(|(_, kind, role, member, p)| {
            let grantee = match (kind.as_str(), role, member) {
                ("practice", _, _) => Grantee::Practice,
                ("role", Some(r), _) => Grantee::Role(r),
                ("member", _, Some(m)) => Grantee::Member(MemberId(m)),
                _ => return None,
            };
            Some(Access::new(grantee, Permission::parse(&p)?))
        })
        .collect();
    out.sort_by_key(|a| match &a.grantee {
        Grantee::Practice => (0, String::new(), 0),
        Grantee::Role(r) => (1, r.clone(), 0),
        Grantee::Member(m) => (2, String::new(), m.0),
    });
    Ok(out)
}

/// Checks a sharing list: known roles, existing members, each grantee once.
fn check_access(conn: &mut SqliteConnection, list: &[Access]) -> Result<(), TaskError> {
    if list.len() > 500 {
        return Err(TaskError::TooMany);
    }
    let mut seen: Vec<&Grantee> = Vec::new();
    for a in list {
        if seen.contains(&&a.grantee) {
            return Err(TaskError::Invalid(
                "Jede Person und Rolle nur einmal freigeben.",
            ));
        }
        seen.push(&a.grantee);
        match &a.grantee {
            Grantee::Practice => {}
            Grantee::Role(r) => {
                if !catalog::ROLES.iter().any(|e| e.id == r) {
                    return Err(TaskError::Invalid("Unbekannte Rolle."));
                }
            }
            Grantee::Member(m) => {
                let n: i64 = members::table
                    .filter(members::id.eq(m.0))
                    .filter(members::deactivated_at.is_null())
                    .count()
                    .get_result(conn)?;
                if n == 0 {
                    return Err(TaskError::Invalid("Unbekannte Person."));
                }
            }
        }
    }
    Ok(())
}

/// Replaces the access rows of `board` (no permission check: the caller checked `Manage`).
pub fn set_access(
    conn: &mut SqliteConnection,
    board: BoardId,
    list: &[Access],
) -> Result<(), TaskError> {
    check_access(conn, list)?;
    diesel::delete(task_board_access::table.filter(task_board_access::board_id.eq(board.0)))
        .execute(conn)?;
    for a in list {
        let (kind, role, member) = match &a.grantee {
            Grantee::Practice => ("practice", None, None),
            Grantee::Role(r) => ("role", Some(r.as_str()), None),
            Grantee::Member(m) => ("member", None, Some(m.0)),
        };
        diesel::insert_into(task_board_access::table)
            .values((
                task_board_access::board_id.eq(board.0),
                task_board_access::kind.eq(kind),
                task_board_access::role.eq(role),
                task_board_access::member_id.eq(member),
                task_board_access::permission.eq(a.permission.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Default columns of a new board.
pub const DEFAULT_COLUMNS: &[(&str, bool)] =
    &[("Offen", false), ("In Arbeit", false), ("Erledigt", true)];

/// Creates a board with `columns` (title, is done) and its sharing. The creator always
/// manages it (a member row is added unless the list already gives them `Manage`).
pub fn create_board(
    conn: &mut SqliteConnection,
    creator: MemberId,
    title: &str,
    description: &str,
    columns: &[(&str, bool)],
    access: &[Access],
    now: UnixTime,
) -> Result<BoardId, TaskError> {
    let title = check_title(title)?;
    let description = check_text(description, super::MAX_DESCRIPTION_CHARS, false)?;
    let id: i64 = diesel::insert_into(task_boards::table)
        .values((
            task_boards::title.eq(&title),
            task_boards::description.eq(&description),
            task_boards::created_by.eq(creator.0),
            task_boards::created_at.eq(now),
            task_boards::updated_at.eq(now),
        ))
        .returning(task_boards::id)
        .get_result(conn)?;
    let mut list: Vec<Access> = access
        .iter()
        .filter(|a| a.grantee != Grantee::Member(creator))
        .cloned()
        .collect();
    list.push(Access::new(Grantee::Member(creator), Permission::Manage));
    set_access(conn, BoardId(id), &list)?;
    for (i, (t, done)) in columns.iter().enumerate() {
        diesel::insert_into(task_columns::table)
            .values((
                task_columns::board_id.eq(id),
                task_columns::title.eq(check_title(t)?),
                task_columns::position.eq(i as i64),
                task_columns::is_done.eq(*done),
                task_columns::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(BoardId(id))
}

/// Renames a board and sets its description (`Manage`, not archived).
pub fn update_board(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
    title: &str,
    description: &str,
    now: UnixTime,
) -> Result<(), TaskError> {
    writable(conn, board, member, Permission::Manage)?;
    let title = check_title(title)?;
    let description = check_text(description, super::MAX_DESCRIPTION_CHARS, false)?;
    diesel::update(task_boards::table.find(board.0))
        .set((
            task_boards::title.eq(title),
            task_boards::description.eq(description),
            task_boards::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Replaces a board's sharing (`Manage`). The acting member keeps `Manage` (they cannot
/// lock themselves out by mistake; an admin manages every board anyway).
pub fn share(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
    list: &[Access],
    now: UnixTime,
) -> Result<(), TaskError> {
    writable(conn, board, member, Permission::Manage)?;
    let mut list: Vec<Access> = list.to_vec();
    if !list
        .iter()
        .any(|a| a.grantee == Grantee::Member(member) && a.permission == Permission::Manage)
    {
        list.retain(|a| a.grantee != Grantee::Member(member));
        list.push(Access::new(Grantee::Member(member), Permission::Manage));
    }
    set_access(conn, board, &list)?;
    diesel::update(task_boards::table.find(board.0))
        .set(task_boards::updated_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Archives (`archived`) or restores a board (`Manage`).
pub fn set_archived(
    conn: &mut SqliteConnection,
    board: BoardId,
    member: MemberId,
    archived: bool,
    now: UnixTime,
) -> Result<(), TaskError> {
    let (b, perm) = readable(conn, board, member)?;
    if perm < Permission::Manage {
        return Err(TaskError::NotManager);
    }
    if b.is_archived() == archived {
        return Ok(());
    }
    diesel::update(task_boards::table.find(board.0))
        .set((
            task_boards::archived_at.eq(archived.then_some(now)),
            task_boards::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A board in the list, with its counts.
#[derive(Debug, Clone)]
pub struct Listed {
    pub board: Board,
    pub permission: Permission,
    /// Cards neither archived nor done.
    pub open: i64,
    /// Open cards whose due time has passed.
    pub overdue: i64,
}

/// The boards `member` may read, by title, with counts: three queries, however many boards.
pub fn list_for(
    conn: &mut SqliteConnection,
    member: MemberId,
    now: UnixTime,
) -> QueryResult<Vec<Listed>> {
    let perms: HashMap<i64, Permission> = readable_boards(conn, member)?.into_iter().collect();
    let ids: Vec<i64> = perms.keys().copied().collect();
    let boards: Vec<Board> = task_boards::table
        .filter(task_boards::id.eq_any(&ids))
        .order((task_boards::title, task_boards::id))
        .select(Board::as_select())
        .load(conn)?;
    let open: Vec<(i64, Option<i64>, bool)> = task_cards::table
        .filter(task_cards::board_id.eq_any(&ids))
        .filter(task_cards::archived_at.is_null())
        .filter(task_cards::done_at.is_null())
        .select((
            task_cards::board_id,
            task_cards::due_at,
            task_cards::due_all_day,
        ))
        .load(conn)?;
    let mut counts: HashMap<i64, (i64, i64)> = HashMap::new();
    for (b, due, all_day) in open {
        let c = counts.entry(b).or_default();
        c.0 += 1;
        if due.is_some_and(|d| super::time::is_overdue(d, all_day, now)) {
            c.1 += 1;
        }
    }
    Ok(boards
        .into_iter()
        .filter_map(|b| {
            let permission = *perms.get(&b.id)?;
            let (open, overdue) = counts.get(&b.id).copied().unwrap_or_default();
            Some(Listed {
                board: b,
                permission,
                open,
                overdue,
            })
        })
        .collect())
}
