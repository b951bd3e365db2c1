DROP INDEX login_states_browser;
ALTER TABLE login_states DROP COLUMN browser_hash;
