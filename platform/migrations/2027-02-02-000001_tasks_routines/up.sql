-- Recurring practice routines (issue 13): series of cards by rule, card and checklist
-- templates, due-date reminder settings. Times are Unix seconds (UTC).

-- A series creates its cards one at a time: the next instance when the previous one is
-- done (`on_done`) or when its due time passes (`on_due`). `rule` is the recurrence's
-- stable JSON form (`tasks::routines::rule::Recurrence`), `time_of_day` local `HH:MM` in
-- the practice's time zone; `checklist`, `assignees` (member ids) and `labels` (label ids
-- of the board) are JSON lists copied into each new instance.
CREATE TABLE task_series (
    id INTEGER PRIMARY KEY NOT NULL,
    board_id INTEGER NOT NULL REFERENCES task_boards(id) ON DELETE CASCADE,
    column_id INTEGER REFERENCES task_columns(id) ON DELETE SET NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    checklist TEXT NOT NULL DEFAULT '[]',
    assignees TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '[]',
    rule TEXT NOT NULL,
    time_of_day TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('on_done', 'on_due')),
    paused_at INTEGER,
    ended_at INTEGER,
    next_due_at INTEGER,
    created_by INTEGER REFERENCES members(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX task_series_board ON task_series(board_id);

ALTER TABLE task_cards ADD COLUMN series_id INTEGER REFERENCES task_series(id) ON DELETE SET NULL;
CREATE INDEX task_cards_series ON task_cards(series_id) WHERE series_id IS NOT NULL;

-- Templates of a board: a card template (title, description, checklist, labels) or a
-- checklist template (name and items only).
CREATE TABLE task_templates (
    id INTEGER PRIMARY KEY NOT NULL,
    board_id INTEGER NOT NULL REFERENCES task_boards(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('card', 'checklist')),
    name TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    checklist TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '[]',
    created_by INTEGER REFERENCES members(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX task_templates_board ON task_templates(board_id, kind);

-- A member's due-date reminders by mail: off unless switched on; `lead_minutes` before the
-- due time (0 = at the due time).
CREATE TABLE task_reminder_settings (
    member_id INTEGER PRIMARY KEY NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    lead_minutes INTEGER NOT NULL DEFAULT 0 CHECK (lead_minutes BETWEEN 0 AND 10080),
    updated_at INTEGER NOT NULL
) STRICT;
