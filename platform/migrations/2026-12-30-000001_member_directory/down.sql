ALTER TABLE members DROP COLUMN listed_at;
