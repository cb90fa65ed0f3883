-- Second factors.
CREATE TABLE totp_authenticators (
    user_id       UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret BYTEA NOT NULL,     -- AES-256-GCM under a sub-key of the server secret
    created_at    TIMESTAMPTZ NOT NULL,
    confirmed_at  TIMESTAMPTZ,
    last_step     BIGINT              -- last accepted RFC 6238 time step
);

CREATE TABLE recovery_codes (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BYTEA NOT NULL,        -- SHA-256
    created_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash    BYTEA PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    attempts_left INTEGER NOT NULL,
    consumed_at   TIMESTAMPTZ
);
CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id);
