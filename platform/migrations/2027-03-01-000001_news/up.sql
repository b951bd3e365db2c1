-- Neuigkeiten: what each member did with the node's broadcasts. The messages themselves
-- live once per node (data/broadcasts.sqlite); only this practice's members' read and
-- dismissed state lives here, and nowhere else.
CREATE TABLE news_state (
    member_id INTEGER NOT NULL REFERENCES members(id),
    message_id TEXT NOT NULL,
    read_at INTEGER,
    dismissed_at INTEGER,
    PRIMARY KEY (member_id, message_id)
) WITHOUT ROWID;
