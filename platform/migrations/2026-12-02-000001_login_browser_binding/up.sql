-- Pending sign-ins are bound to the browser that started them (login CSRF): the SHA-256
-- of the random value in its `kollegium-login` cookie. Pending sign-ins from before have
-- no binding and could never complete; they live minutes only, so they simply go.
DELETE FROM login_states;
ALTER TABLE login_states ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';
CREATE INDEX login_states_browser ON login_states(browser_hash);
