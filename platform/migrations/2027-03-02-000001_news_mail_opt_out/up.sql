-- "Neuigkeiten per E-Mail": the members who asked for no notices although their practice
-- announces news by mail. A member without a row gets them (while the practice's setting
-- is on).
CREATE TABLE news_mail_opt_out (
    member_id INTEGER PRIMARY KEY NOT NULL REFERENCES members(id),
    since INTEGER NOT NULL
);
