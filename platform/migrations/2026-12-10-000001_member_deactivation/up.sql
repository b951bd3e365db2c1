-- When the practice's IdP last said that this member's account is disabled or gone (the
-- member directory, `GET /id/api/members`); NULL while the account is active. A
-- deactivated member is no longer in any room's audience, gets no mention mails and is
-- not offered in member lists; their messages keep their name.
ALTER TABLE members ADD COLUMN deactivated_at INTEGER;
