ALTER TABLE members DROP COLUMN deactivated_at;
