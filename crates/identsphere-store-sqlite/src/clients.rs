//! Machine clients, machine users and machine tokens on SQLite. Deletions
//! cascade (client → users → tokens) through foreign keys.
use crate::{backend, rows::*, SqliteStore};
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
    created_at: i64,
    key_rotated_at: Option<i64>,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> StoreResult<Self> {
        Ok(Self {
            id: ClientId(r.id),
            name: r.name,
            key_prefix: r.key_prefix,
            created_at: time(r.created_at)?,
            key_rotated_at: r.key_rotated_at.map(time).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ClientUserRow {
    id: uuid::Uuid,
    client_id: uuid::Uuid,
    identifier: String,
    secret_hash: Vec<u8>,
    created_at: i64,
}

impl TryFrom<ClientUserRow> for ClientUser {
    type Error = StoreError;
    fn try_from(r: ClientUserRow) -> StoreResult<Self> {
        Ok(Self {
            id: ClientUserId(r.id),
            client_id: ClientId(r.client_id),
            identifier: r.identifier,
            secret_hash: hash(&r.secret_hash)?,
            created_at: time(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct MachineTokenRow {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    client_id: uuid::Uuid,
    identifier: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<MachineTokenRow> for MachineToken {
    type Error = StoreError;
    fn try_from(r: MachineTokenRow) -> StoreResult<Self> {
        Ok(Self {
            id: MachineTokenId(r.id),
            user_id: ClientUserId(r.user_id),
            client_id: ClientId(r.client_id),
            identifier: r.identifier,
            created_at: time(r.created_at)?,
            expires_at: time(r.expires_at)?,
            revoked_at: r.revoked_at.map(time).transpose()?,
        })
    }
}

const CLIENT_COLUMNS: &str = "id, name, key_prefix, created_at, key_rotated_at";

#[async_trait]
impl ClientStore for SqliteStore {
    async fn create_client(&self, c: &NewClient) -> StoreResult<Client> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "INSERT INTO clients (id, name, key_prefix, key_hash, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING {CLIENT_COLUMNS}"
        ))
        .bind(c.id.0)
        .bind(&c.name)
        .bind(&c.key_prefix)
        .bind(c.key_hash.as_bytes())
        .bind(millis(c.created_at))
        .fetch_one(&self.writer)
        .await
        .map_err(backend)?
        .try_into()
    }

    async fn get_client(&self, id: ClientId) -> StoreResult<Option<Client>> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?"
        ))
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn find_client_by_key(&self, key_hash: &TokenHash) -> StoreResult<Option<Client>> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE key_hash = ?"
        ))
        .bind(key_hash.as_bytes())
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn list_clients(&self, page: PageRequest<ClientId>) -> StoreResult<Vec<Client>> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE (? IS NULL OR id > ?) ORDER BY id LIMIT ?"
        ))
        .bind(page.after.map(|c| c.0))
        .bind(page.after.map(|c| c.0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.reader)
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
            "UPDATE clients SET key_prefix = ?, key_hash = ?, key_rotated_at = ?
             WHERE id = ? RETURNING {CLIENT_COLUMNS}"
        ))
        .bind(key_prefix)
        .bind(key_hash.as_bytes())
        .bind(millis(now))
        .bind(id.0)
        .fetch_optional(&self.writer)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn delete_client(&self, id: ClientId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id.0)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_client_user(&self, u: &NewClientUser) -> StoreResult<ClientUser> {
        sqlx::query_as::<_, ClientUserRow>(
            "INSERT INTO client_users (id, client_id, identifier, secret_hash, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(u.id.0)
        .bind(u.client_id.0)
        .bind(&u.identifier)
        .bind(u.secret_hash.as_bytes())
        .bind(millis(u.created_at))
        .fetch_one(&self.writer)
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
            "SELECT * FROM client_users WHERE client_id = ? AND identifier = ?",
        )
        .bind(client.0)
        .bind(identifier)
        .fetch_optional(&self.reader)
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
            "SELECT * FROM client_users WHERE client_id = ? AND (? IS NULL OR id > ?)
             ORDER BY id LIMIT ?",
        )
        .bind(client.0)
        .bind(page.after.map(|u| u.0))
        .bind(page.after.map(|u| u.0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn delete_client_user(&self, client: ClientId, id: ClientUserId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM client_users WHERE id = ? AND client_id = ?")
            .bind(id.0)
            .bind(client.0)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_machine_token(&self, t: &NewMachineToken) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO machine_tokens (id, user_id, client_id, created_at, expires_at)
             SELECT ?, id, client_id, ?, ? FROM client_users WHERE id = ? AND client_id = ?",
        )
        .bind(t.id.0)
        .bind(millis(t.created_at))
        .bind(millis(t.expires_at))
        .bind(t.user_id.0)
        .bind(t.client_id.0)
        .execute(&self.writer)
        .await;
        match done {
            Ok(done) => Ok(done.rows_affected() > 0),
            // Not expected with one writer; kept in step with PostgreSQL,
            // where a deletion can commit between the SELECT and the check.
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_machine_token(&self, id: MachineTokenId) -> StoreResult<Option<MachineToken>> {
        sqlx::query_as::<_, MachineTokenRow>(
            "SELECT t.id, t.user_id, t.client_id, u.identifier, t.created_at, t.expires_at, t.revoked_at
             FROM machine_tokens t JOIN client_users u ON u.id = t.user_id WHERE t.id = ?",
        )
        .bind(id.0)
        .fetch_optional(&self.reader)
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
            "UPDATE machine_tokens SET revoked_at = ?
             WHERE id = ? AND client_id = ? AND revoked_at IS NULL",
        )
        .bind(millis(now))
        .bind(id.0)
        .bind(client.0)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}
