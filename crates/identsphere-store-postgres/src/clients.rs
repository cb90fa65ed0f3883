//! Machine clients, machine users and machine tokens on PostgreSQL. Deletions
//! cascade (client → users → tokens) through foreign keys.
use crate::{backend, PostgresStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use identsphere_core::{ids::*, secret::TokenHash, store::*};

fn hash(bytes: &[u8]) -> StoreResult<TokenHash> {
    <[u8; 32]>::try_from(bytes)
        .map(TokenHash)
        .map_err(|_| StoreError::Backend("a stored hash is not 32 bytes".into()))
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: uuid::Uuid,
    name: String,
    key_prefix: String,
    created_at: DateTime<Utc>,
    key_rotated_at: Option<DateTime<Utc>>,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> StoreResult<Self> {
        Ok(Self {
            id: ClientId(r.id),
            name: r.name,
            key_prefix: r.key_prefix,
            created_at: r.created_at,
            key_rotated_at: r.key_rotated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ClientUserRow {
    id: uuid::Uuid,
    client_id: uuid::Uuid,
    identifier: String,
    secret_hash: Vec<u8>,
    created_at: DateTime<Utc>,
}

impl TryFrom<ClientUserRow> for ClientUser {
    type Error = StoreError;
    fn try_from(r: ClientUserRow) -> StoreResult<Self> {
        Ok(Self {
            id: ClientUserId(r.id),
            client_id: ClientId(r.client_id),
            identifier: r.identifier,
            secret_hash: hash(&r.secret_hash)?,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct MachineTokenRow {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    client_id: uuid::Uuid,
    identifier: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<MachineTokenRow> for MachineToken {
    type Error = StoreError;
    fn try_from(r: MachineTokenRow) -> StoreResult<Self> {
        Ok(Self {
            id: MachineTokenId(r.id),
            user_id: ClientUserId(r.user_id),
            client_id: ClientId(r.client_id),
            identifier: r.identifier,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

const CLIENT_COLUMNS: &str = "id, name, key_prefix, created_at, key_rotated_at";

#[async_trait]
impl ClientStore for PostgresStore {
    async fn create_client(&self, c: &NewClient) -> StoreResult<Client> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "INSERT INTO clients (id, name, key_prefix, key_hash, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING {CLIENT_COLUMNS}"
        ))
        .bind(c.id.0)
        .bind(&c.name)
        .bind(&c.key_prefix)
        .bind(c.key_hash.as_bytes())
        .bind(c.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?
        .try_into()
    }

    async fn get_client(&self, id: ClientId) -> StoreResult<Option<Client>> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn find_client_by_key(&self, key_hash: &TokenHash) -> StoreResult<Option<Client>> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE key_hash = $1"
        ))
        .bind(key_hash.as_bytes())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn list_clients(&self, page: PageRequest<ClientId>) -> StoreResult<Vec<Client>> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(page.after.map(|c| c.0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn replace_client_key(
        &self,
        id: ClientId,
        key_prefix: &str,
        key_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Client>> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "UPDATE clients SET key_prefix = $1, key_hash = $2, key_rotated_at = $3
             WHERE id = $4 RETURNING {CLIENT_COLUMNS}"
        ))
        .bind(key_prefix)
        .bind(key_hash.as_bytes())
        .bind(now)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn delete_client(&self, id: ClientId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_client_user(&self, u: &NewClientUser) -> StoreResult<ClientUser> {
        sqlx::query_as::<_, ClientUserRow>(
            "INSERT INTO client_users (id, client_id, identifier, secret_hash, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING *",
        )
        .bind(u.id.0)
        .bind(u.client_id.0)
        .bind(&u.identifier)
        .bind(u.secret_hash.as_bytes())
        .bind(u.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?
        .try_into()
    }

    async fn find_client_user(
        &self,
        client: ClientId,
        identifier: &str,
    ) -> StoreResult<Option<ClientUser>> {
        sqlx::query_as::<_, ClientUserRow>(
            "SELECT * FROM client_users WHERE client_id = $1 AND identifier = $2",
        )
        .bind(client.0)
        .bind(identifier)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn list_client_users(
        &self,
        client: ClientId,
        page: PageRequest<ClientUserId>,
    ) -> StoreResult<Vec<ClientUser>> {
        sqlx::query_as::<_, ClientUserRow>(
            "SELECT * FROM client_users WHERE client_id = $1 AND ($2::uuid IS NULL OR id > $2)
             ORDER BY id LIMIT $3",
        )
        .bind(client.0)
        .bind(page.after.map(|u| u.0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn delete_client_user(&self, client: ClientId, id: ClientUserId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM client_users WHERE id = $1 AND client_id = $2")
            .bind(id.0)
            .bind(client.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_machine_token(&self, t: &NewMachineToken) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO machine_tokens (id, user_id, client_id, created_at, expires_at)
             SELECT $1, id, client_id, $2, $3 FROM client_users WHERE id = $4 AND client_id = $5",
        )
        .bind(t.id.0)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.user_id.0)
        .bind(t.client_id.0)
        .execute(&self.pool)
        .await;
        match done {
            Ok(done) => Ok(done.rows_affected() > 0),
            // The user was deleted after the SELECT saw it (the foreign-key
            // check then finds it gone): nothing was stored.
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_machine_token(&self, id: MachineTokenId) -> StoreResult<Option<MachineToken>> {
        sqlx::query_as::<_, MachineTokenRow>(
            "SELECT t.id, t.user_id, t.client_id, u.identifier, t.created_at, t.expires_at, t.revoked_at
             FROM machine_tokens t JOIN client_users u ON u.id = t.user_id WHERE t.id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn revoke_machine_token(
        &self,
        client: ClientId,
        id: MachineTokenId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE machine_tokens SET revoked_at = $1
             WHERE id = $2 AND client_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id.0)
        .bind(client.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}
