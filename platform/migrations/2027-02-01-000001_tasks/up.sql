-- Tasks (issue 13): kanban boards, their sharing, columns, labels, cards with assignees,
-- checklists, comments and history. All times are Unix seconds (UTC).

CREATE TABLE task_boards (
    id INTEGER PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    archived_at INTEGER,
    created_by INTEGER REFERENCES members(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Who may see a board: the whole practice, members of a catalogue role, or one member, each
-- with view < edit < manage. A member's permission is the highest matching row; the
-- practice's admins manage every board; no matching row: the board does not exist for them.
CREATE TABLE task_board_access (
    id INTEGER PRIMARY KEY NOT NULL,
    board_id INTEGER NOT NULL REFERENCES task_boards(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('practice', 'role', 'member')),
    role TEXT,
    member_id INTEGER REFERENCES members(id) ON DELETE CASCADE,
    permission TEXT NOT NULL CHECK (permission IN ('view', 'edit', 'manage')),
    CHECK ((kind = 'practice' AND role IS NULL AND member_id IS NULL)
        OR (kind = 'role' AND role IS NOT NULL AND member_id IS NULL)
        OR (kind = 'member' AND role IS NULL AND member_id IS NOT NULL))
) STRICT;
CREATE INDEX task_board_access_board ON task_board_access(board_id);
CREATE INDEX task_board_access_member ON task_board_access(member_id) WHERE member_id IS NOT NULL;

CREATE TABLE task_columns (
    id INTEGER PRIMARY KEY NOT NULL,
    board_id INTEGER NOT NULL REFERENCES task_boards(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    position INTEGER NOT NULL,
    is_done INTEGER NOT NULL DEFAULT 0 CHECK (is_done IN (0, 1)),
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX task_columns_board ON task_columns(board_id, position);

CREATE TABLE task_labels (
    id INTEGER PRIMARY KEY NOT NULL,
    board_id INTEGER NOT NULL REFERENCES task_boards(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    color TEXT NOT NULL CHECK (color IN
        ('grau', 'rot', 'orange', 'gelb', 'gruen', 'tuerkis', 'blau', 'lila'))
) STRICT;
CREATE INDEX task_labels_board ON task_labels(board_id);

CREATE TABLE task_cards (
    id INTEGER PRIMARY KEY NOT NULL,
    board_id INTEGER NOT NULL REFERENCES task_boards(id) ON DELETE CASCADE,
    column_id INTEGER NOT NULL REFERENCES task_columns(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    due_at INTEGER,
    due_all_day INTEGER NOT NULL DEFAULT 0 CHECK (due_all_day IN (0, 1)),
    done_at INTEGER,
    archived_at INTEGER,
    created_by INTEGER REFERENCES members(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
-- Archived cards leave their column's order (position -1); live ones are dense 0..n-1.
CREATE INDEX task_cards_column ON task_cards(column_id, position);
CREATE INDEX task_cards_board ON task_cards(board_id);
CREATE INDEX task_cards_due ON task_cards(due_at) WHERE due_at IS NOT NULL AND archived_at IS NULL;

CREATE TABLE task_card_labels (
    card_id INTEGER NOT NULL REFERENCES task_cards(id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL REFERENCES task_labels(id) ON DELETE CASCADE,
    PRIMARY KEY (card_id, label_id)
) STRICT;

CREATE TABLE task_card_assignees (
    card_id INTEGER NOT NULL REFERENCES task_cards(id) ON DELETE CASCADE,
    member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    PRIMARY KEY (card_id, member_id)
) STRICT;
CREATE INDEX task_card_assignees_member ON task_card_assignees(member_id);

CREATE TABLE task_checklist_items (
    id INTEGER PRIMARY KEY NOT NULL,
    card_id INTEGER NOT NULL REFERENCES task_cards(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    done_at INTEGER,
    done_by INTEGER REFERENCES members(id) ON DELETE SET NULL
) STRICT;
CREATE INDEX task_checklist_items_card ON task_checklist_items(card_id, position);

CREATE TABLE task_comments (
    id INTEGER PRIMARY KEY NOT NULL,
    card_id INTEGER NOT NULL REFERENCES task_cards(id) ON DELETE CASCADE,
    author_id INTEGER REFERENCES members(id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    mentions TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    edited_at INTEGER,
    deleted_at INTEGER
) STRICT;
CREATE INDEX task_comments_card ON task_comments(card_id, id);

-- A card's history: `what` is a stable code (`created`, `moved`, `title`, `description`,
-- `due`, `assigned`, `unassigned`, `labels`, `checklist`, `done`, `archived`, `restored`,
-- `comment`), `detail` JSON rendered in German when shown.
CREATE TABLE task_card_events (
    id INTEGER PRIMARY KEY NOT NULL,
    card_id INTEGER NOT NULL REFERENCES task_cards(id) ON DELETE CASCADE,
    actor_id INTEGER REFERENCES members(id) ON DELETE SET NULL,
    what TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    at INTEGER NOT NULL
) STRICT;
CREATE INDEX task_card_events_card ON task_card_events(card_id, id);
