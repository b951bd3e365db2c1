-- Per-client token signing algorithm: RS256 (default, what every OIDC client supports) or
-- ES256 (one P-256 signature instead of RSA-2048) for the client's ID, access and
-- back-channel logout tokens.
ALTER TABLE clients ADD COLUMN signing_alg TEXT NOT NULL DEFAULT 'RS256'
    CHECK (signing_alg IN ('RS256', 'ES256'));
