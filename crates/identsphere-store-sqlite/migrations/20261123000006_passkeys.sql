-- Passkeys (WebAuthn credentials) and running ceremonies. Times are Unix milliseconds.
CREATE TABLE passkeys (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BLOB NOT NULL,
    credential    TEXT NOT NULL,      -- public key, counter and flags (webauthn-rs JSON); no secret
    name          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE UNIQUE INDEX passkeys_credential ON passkeys (credential_id);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- The server half of a registration or login between its start and finish.
CREATE TABLE webauthn_ceremonies (
    id         BLOB PRIMARY KEY,
    kind       TEXT NOT NULL,
    user_id    BLOB REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
