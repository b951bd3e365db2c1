-- Pending sign-ins are counted per client address (IPv4, or the /64 of IPv6), so that
-- anonymous `GET /auth/login` requests from one address cannot pile up rows: a new one
-- beyond the bound pushes out that address's oldest. Rows from before count for nobody.
ALTER TABLE login_states ADD COLUMN client_key TEXT NOT NULL DEFAULT '';
CREATE INDEX login_states_client ON login_states(client_key, created_at);
CREATE INDEX login_states_created ON login_states(created_at);
