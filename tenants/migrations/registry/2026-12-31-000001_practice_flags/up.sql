-- Flags a practice's apps set so that node-wide work can tell cheaply which practices to
-- open (e.g. "mail the members when the node receives something"): a name the owning app chooses, never content, never
-- anything about members. A practice without a row has no flag set.
CREATE TABLE practice_flags (
    slug TEXT NOT NULL REFERENCES practices(slug) ON DELETE CASCADE,
    flag TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    PRIMARY KEY (slug, flag)
);
