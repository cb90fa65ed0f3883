-- Machine clients, their machine users, and the tokens issued to those.
-- Deleting a client deletes its users; deleting a user deletes its tokens
-- (a token is valid only while its row exists).

CREATE TABLE clients (
    id             BLOB PRIMARY KEY,
    name           TEXT NOT NULL,
    key_prefix     TEXT NOT NULL,
    key_hash       BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    key_rotated_at INTEGER
);
CREATE UNIQUE INDEX clients_key_hash ON clients (key_hash);

CREATE TABLE client_users (
    id          BLOB PRIMARY KEY,
    client_id   BLOB NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    identifier  TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
-- Also the index for listing a client's users by id.
CREATE UNIQUE INDEX client_users_identifier ON client_users (client_id, identifier);
CREATE INDEX client_users_client ON client_users (client_id, id);

CREATE TABLE machine_tokens (
    id         BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES client_users (id) ON DELETE CASCADE,
    client_id  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX machine_tokens_user ON machine_tokens (user_id);
