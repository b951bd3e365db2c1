-- The name a member gives the device of one of their sessions ("Empfang-PC"), so that the
-- session list tells sessions apart. A session on an approved device shows the device's
-- name instead (kept on the device, so it survives the next sign-in there).
ALTER TABLE sessions ADD COLUMN device_name TEXT CHECK (device_name IS NULL OR length(device_name) <= 60);
