DROP INDEX login_states_created;
DROP INDEX login_states_client;
ALTER TABLE login_states DROP COLUMN client_key;
