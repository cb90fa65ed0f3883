-- Second factors. Times are Unix milliseconds.
CREATE TABLE totp_authenticators (
    user_id       BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret BLOB NOT NULL,      -- AES-256-GCM under a sub-key of the server secret
    created_at    INTEGER NOT NULL,
    confirmed_at  INTEGER,
    last_step     INTEGER             -- last accepted RFC 6238 time step
);

CREATE TABLE recovery_codes (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BLOB NOT NULL,         -- SHA-256
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash    BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    attempts_left INTEGER NOT NULL,
    consumed_at   INTEGER
);
CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id);
