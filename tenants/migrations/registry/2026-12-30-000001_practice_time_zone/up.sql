-- The practice's time zone (an IANA name): every time shown to its users is in it. Stored
-- times stay Unix seconds (UTC). Set with `kollegium practice set-time-zone`.
ALTER TABLE practices ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'Europe/Berlin';
