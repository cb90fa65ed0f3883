-- Machine clients, their machine users, and the tokens issued to those.
-- Deleting a client deletes its users; deleting a user deletes its tokens
-- (a token is valid only while its row exists).

CREATE TABLE clients (
    id             UUID PRIMARY KEY,
    name           TEXT NOT NULL,
    key_prefix     TEXT NOT NULL,
    key_hash       BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    key_rotated_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX clients_key_hash ON clients (key_hash);

CREATE TABLE client_users (
    id          UUID PRIMARY KEY,
    client_id   UUID NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    identifier  TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX client_users_identifier ON client_users (client_id, identifier);
CREATE INDEX client_users_client ON client_users (client_id, id);

CREATE TABLE machine_tokens (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES client_users (id) ON DELETE CASCADE,
    client_id  UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX machine_tokens_user ON machine_tokens (user_id);
