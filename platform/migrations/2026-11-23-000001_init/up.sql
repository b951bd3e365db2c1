-- Practice-wide settings of the workspace (retention, edit windows, ...).
CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
