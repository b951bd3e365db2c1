ALTER TABLE practices DROP COLUMN time_zone;
