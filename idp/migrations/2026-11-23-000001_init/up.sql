-- Practice-wide settings of the identity provider (policies, owner bootstrap).
CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
