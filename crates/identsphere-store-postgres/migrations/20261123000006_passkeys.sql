-- Passkeys (WebAuthn credentials) and running ceremonies.
CREATE TABLE passkeys (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BYTEA NOT NULL,
    credential    TEXT NOT NULL,      -- public key, counter and flags (webauthn-rs JSON); no secret
    name          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX passkeys_credential ON passkeys (credential_id);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- The server half of a registration or login between its start and finish.
CREATE TABLE webauthn_ceremonies (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL,
    user_id    UUID REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
