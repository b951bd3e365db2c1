-- Who may rename or archive a room: its creator (`rooms.created_by`), the members it names
-- as moderators, and the practice's admins. The practice's general room ("Allgemein", the
-- default open room) may be archived by admins only.
ALTER TABLE room_members ADD COLUMN moderator INTEGER NOT NULL DEFAULT 0 CHECK (moderator IN (0, 1));
ALTER TABLE rooms ADD COLUMN is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1));
UPDATE rooms SET is_default = 1 WHERE id = (
  SELECT min(id) FROM rooms WHERE kind = 'group' AND visibility = 'open' AND name = 'Allgemein'
);
