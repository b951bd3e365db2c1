DROP TABLE security_events; DROP TABLE mail_queue; DROP TABLE backchannel_queue;
DROP TABLE session_clients; DROP TABLE consents; DROP TABLE access_tokens;
DROP TABLE refresh_tokens; DROP TABLE auth_codes; DROP TABLE grants; DROP TABLE signing_keys;
DROP TABLE clients; DROP TABLE throttle; DROP TABLE sessions; DROP TABLE devices;
DROP TABLE action_tokens; DROP TABLE recovery_codes; DROP TABLE users;
