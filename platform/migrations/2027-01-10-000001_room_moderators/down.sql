ALTER TABLE rooms DROP COLUMN is_default;
ALTER TABLE room_members DROP COLUMN moderator;
