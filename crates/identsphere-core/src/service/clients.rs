//! Machine clients (API.md "API keys and machine clients").
//!
//! The platform operator, with the master credentials, registers *clients*:
//! applications that get a client key (`isck_…`). A client creates *machine
//! users* (an identifier and a secret, `iscs_…`, shown once) and exchanges a
//! user's identifier and secret for a *machine token*: a JWT whose `jti`
//! names a stored record. The token is accepted only while that record
//! exists and is neither revoked nor expired, checked on every use (SECURITY
//! rule 9), so deleting a user or a client, or revoking the token, ends it at
//! once on every instance.
//!
//! Keys and secrets are 256-bit random tokens: the store keeps their SHA-256
//! (a slow password hash adds nothing to a secret that cannot be guessed).
//! Issuing a token writes its record, which is the durable trace of the
//! issue; refusals and revocations go to the audit log.
use super::{limits::by_ip, Identity, RequestMeta};
use crate::{
    audit::{AuditAction, AuditMetadata, AuditValue},
    error::{CoreError, Result},
    ids::{ClientId, ClientUserId, MachineTokenId},
    rate_limit::LimitKind,
    secret::{random_token, shown_prefix, TokenHash},
    store::{
        Client, ClientUser, MachineToken, NewClient, NewClientUser, NewMachineToken, PageRequest,
        StoreError,
    },
    text::label,
    tokens::MachineClaims,
};
use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};

/// Client keys start with this (told apart from `isk_` API keys, and found
/// by leak scanners).
pub const CLIENT_KEY_PREFIX: &str = "isck_";

/// Machine-user secrets start with this.
pub const CLIENT_SECRET_PREFIX: &str = "iscs_";

/// Lifetime of a machine token when the request names none, and the longest allowed.
pub const MACHINE_TOKEN_TTL: Duration = Duration::days(30);

/// The shortest machine-token lifetime a request may ask for.
const MACHINE_TOKEN_MIN_SECS: i64 = 60;

/// The HTTP Basic credentials of the client API.
#[derive(Clone)]
pub struct MasterCredentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: SecretString,
}

impl std::fmt::Debug for MasterCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A token just issued: its record and the signed token, shown once.
#[derive(Debug, Clone)]
pub struct IssuedMachineToken {
    /// The record.
    pub token: MachineToken,
    /// The JWT to present as `Authorization: Bearer`.
    pub access_token: String,
}

impl Identity {
    /// Checks the master credentials (`None` when the request carried none).
    /// Wrong guesses count against the caller's address
    /// (`master_failures_ip`) and are audited.
    ///
    /// # Errors
    /// `NotConfigured` when the client API is off, `RateLimited`, `Unauthorized`.
    pub async fn authenticate_master(
        &self,
        credentials: Option<(&str, &str)>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let Some(master) = &self.config.master else {
            return Err(CoreError::NotConfigured(
                "the client API is off: set IDENTSPHERE_MASTER_USERNAME and IDENTSPHERE_MASTER_PASSWORD".into(),
            ));
        };
        let Some((username, password)) = credentials else {
            return Err(CoreError::Unauthorized);
        };
        // Counted before the comparison, given back when it matched: guesses
        // sent together cannot all pass the check.
        let budget: Vec<_> = by_ip(meta)
            .map(|ip| (LimitKind::MasterFailuresIp, ip))
            .into_iter()
            .collect();
        let reservation = self.reserve(&budget, None, meta).await?;
        // Fixed-length digests compared in constant time, both of them always,
        // so neither the length nor which half was wrong shows in the timing.
        let user_ok = TokenHash::of(username).ct_eq(&TokenHash::of(&master.username));
        let pass_ok =
            TokenHash::of(password).ct_eq(&TokenHash::of(master.password.expose_secret()));
        if user_ok & pass_ok {
            self.release(reservation).await;
            return Ok(());
        }
        tracing::warn!("master credentials refused");
        self.audit(
            AuditAction::MasterAuthFailed,
            None,
            None,
            meta,
            AuditMetadata::default(),
        )
        .await;
        Err(CoreError::Unauthorized)
    }

    /// Registers a client; returns it with its key, which is never shown again.
    ///
    /// # Errors
    /// `Validation` (name).
    pub async fn create_client(&self, name: &str, meta: &RequestMeta) -> Result<(Client, String)> {
        let name = label("name", name, 100)?;
        let key = random_token(CLIENT_KEY_PREFIX);
        let client = self
            .store
            .create_client(&NewClient {
                id: ClientId::new(),
                name,
                key_prefix: shown_prefix(&key, CLIENT_KEY_PREFIX),
                key_hash: TokenHash::of(&key),
                created_at: self.clock.now(),
            })
            .await?;
        tracing::info!(client.id = %client.id, "client created");
        self.audit(
            AuditAction::ClientCreated,
            None,
            Some(AuditValue::Client(client.id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok((client, key))
    }

    /// Clients by ascending id.
    ///
    /// # Errors
    /// Store failures only.
    pub async fn list_clients(&self, page: PageRequest<ClientId>) -> Result<Vec<Client>> {
        Ok(self.store.list_clients(page).await?)
    }

    /// Gives a client a new key; the old one stops working at once.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn rotate_client_key(
        &self,
        id: ClientId,
        meta: &RequestMeta,
    ) -> Result<(Client, String)> {
        let key = random_token(CLIENT_KEY_PREFIX);
        let client = self
            .store
            .replace_client_key(
                id,
                &shown_prefix(&key, CLIENT_KEY_PREFIX),
                &TokenHash::of(&key),
                self.clock.now(),
            )
            .await?
            .ok_or(CoreError::NotFound)?;
        tracing::info!(client.id = %id, "client key rotated");
        self.audit(
            AuditAction::ClientKeyRotated,
            None,
            Some(AuditValue::Client(id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok((client, key))
    }

    /// Deletes a client, its machine users and their tokens.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn delete_client(&self, id: ClientId, meta: &RequestMeta) -> Result<()> {
        if !self.store.delete_client(id).await? {
            return Err(CoreError::NotFound);
        }
        tracing::info!(client.id = %id, "client deleted");
        self.audit(
            AuditAction::ClientDeleted,
            None,
            Some(AuditValue::Client(id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(())
    }

    /// The client a key belongs to.
    ///
    /// # Errors
    /// `Unauthorized`.
    pub async fn authenticate_client(&self, key: &str) -> Result<Client> {
        if !key.starts_with(CLIENT_KEY_PREFIX) || key.len() > 128 {
            return Err(CoreError::Unauthorized);
        }
        self.store
            .find_client_by_key(&TokenHash::of(key))
            .await?
            .ok_or(CoreError::Unauthorized)
    }

    /// Creates a machine user of `client`; returns it with its secret, which
    /// is never shown again. Without an identifier, its id is its identifier.
    ///
    /// # Errors
    /// `Validation` (identifier), `Conflict` (identifier taken in this client).
    pub async fn create_client_user(
        &self,
        client: &Client,
        identifier: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(ClientUser, String)> {
        let id = ClientUserId::new();
        let identifier = match identifier {
            Some(raw) => parse_identifier(raw)?,
            None => id.to_string(),
        };
        let secret = random_token(CLIENT_SECRET_PREFIX);
        let user = self
            .store
            .create_client_user(&NewClientUser {
                id,
                client_id: client.id,
                identifier,
                secret_hash: TokenHash::of(&secret),
                created_at: self.clock.now(),
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => {
                    CoreError::Conflict("this client has a user with that identifier".into())
                }
                e => e.into(),
            })?;
        tracing::info!(client.id = %client.id, client_user.id = %user.id, "machine user created");
        self.audit(
            AuditAction::ClientUserCreated,
            None,
            Some(AuditValue::ClientUser(user.id)),
            meta,
            client_metadata(client.id),
        )
        .await;
        Ok((user, secret))
    }

    /// `client`'s machine users by ascending id.
    ///
    /// # Errors
    /// Store failures only.
    pub async fn list_client_users(
        &self,
        client: &Client,
        page: PageRequest<ClientUserId>,
    ) -> Result<Vec<ClientUser>> {
        Ok(self.store.list_client_users(client.id, page).await?)
    }

    /// Deletes one of `client`'s machine users and every token issued to it.
    ///
    /// # Errors
    /// `NotFound`, also for another client's user.
    pub async fn delete_client_user(
        &self,
        client: &Client,
        id: ClientUserId,
        meta: &RequestMeta,
    ) -> Result<()> {
        if !self.store.delete_client_user(client.id, id).await? {
            return Err(CoreError::NotFound);
        }
        tracing::info!(client.id = %client.id, client_user.id = %id, "machine user deleted");
        self.audit(
            AuditAction::ClientUserDeleted,
            None,
            Some(AuditValue::ClientUser(id)),
            meta,
            client_metadata(client.id),
        )
        .await;
        Ok(())
    }

    /// Exchanges one of `client`'s machine users' identifier and secret for a
    /// token valid `expires_in` seconds (default and most: 30 days).
    ///
    /// # Errors
    /// `Validation` (`expires_in`), `InvalidCredentials` (unknown identifier
    /// or wrong secret, never saying which).
    pub async fn issue_machine_token(
        &self,
        client: &Client,
        identifier: &str,
        secret: &str,
        expires_in: Option<i64>,
        meta: &RequestMeta,
    ) -> Result<IssuedMachineToken> {
        let ttl = match expires_in {
            None => MACHINE_TOKEN_TTL,
            Some(s) if (MACHINE_TOKEN_MIN_SECS..=MACHINE_TOKEN_TTL.num_seconds()).contains(&s) => {
                Duration::seconds(s)
            }
            Some(_) => {
                return Err(CoreError::field(
                    "expires_in",
                    format!(
                        "must be {MACHINE_TOKEN_MIN_SECS}–{} seconds",
                        MACHINE_TOKEN_TTL.num_seconds()
                    ),
                ))
            }
        };
        // An identifier that could never have been created is not looked up:
        // the store is not asked about text it cannot hold (a NUL is refused
        // by PostgreSQL), and the answer is the same as for an unknown one.
        let user = if identifier.len() <= 128 && !identifier.chars().any(char::is_control) {
            self.store.find_client_user(client.id, identifier).await?
        } else {
            None
        };
        // An unknown identifier costs the same comparison as a wrong secret.
        let presented = TokenHash::of(secret);
        let known = user.as_ref().map_or(TokenHash([0; 32]), |u| u.secret_hash);
        let user = match user {
            Some(user) if presented.ct_eq(&known) => user,
            other => {
                self.refuse_machine_token(client, other.map(|u| u.id), meta)
                    .await;
                return Err(CoreError::InvalidCredentials);
            }
        };
        let now = self.clock.now();
        let token = MachineToken {
            id: MachineTokenId::new(),
            user_id: user.id,
            client_id: client.id,
            identifier: user.identifier,
            created_at: now,
            expires_at: now + ttl,
            revoked_at: None,
        };
        let stored = self
            .store
            .create_machine_token(&NewMachineToken {
                id: token.id,
                user_id: token.user_id,
                client_id: token.client_id,
                created_at: token.created_at,
                expires_at: token.expires_at,
            })
            .await?;
        if !stored {
            // Deleted while its secret was being checked.
            self.refuse_machine_token(client, Some(user.id), meta).await;
            return Err(CoreError::InvalidCredentials);
        }
        self.refresh_keys_if_stale().await;
        let access_token = self
            .sign(MachineClaims {
                iss: self.config.issuer(),
                sub: token.user_id.to_string(),
                aud: self.config.audience.clone(),
                exp: token.expires_at.timestamp(),
                iat: token.created_at.timestamp(),
                jti: token.id.to_string(),
                client_id: token.client_id.to_string(),
            })
            .await?;
        Ok(IssuedMachineToken {
            token,
            access_token,
        })
    }

    async fn refuse_machine_token(
        &self,
        client: &Client,
        user: Option<ClientUserId>,
        meta: &RequestMeta,
    ) {
        tracing::info!(client.id = %client.id, "machine token refused");
        self.audit(
            AuditAction::MachineTokenRefused,
            None,
            user.map(AuditValue::ClientUser),
            meta,
            client_metadata(client.id),
        )
        .await;
    }

    /// Checks a machine token: signature, algorithm, `iss`, `aud`, expiry,
    /// and that its record exists, unrevoked and unexpired (a store read on
    /// every call).
    ///
    /// # Errors
    /// `Unauthorized` for any invalid, expired, revoked or deleted token.
    pub async fn authenticate_machine(&self, token: &str) -> Result<MachineToken> {
        let claims: MachineClaims = self.verify_signature(token).await?;
        let id: MachineTokenId = claims.jti.parse().map_err(|_| CoreError::Unauthorized)?;
        let now = self.clock.now();
        let record = self
            .store
            .get_machine_token(id)
            .await?
            .filter(|t| t.is_active(now))
            .ok_or(CoreError::Unauthorized)?;
        // The signature already binds these; a mismatch means a broken store, not a client.
        if record.user_id.to_string() != claims.sub
            || record.client_id.to_string() != claims.client_id
        {
            return Err(CoreError::Unauthorized);
        }
        Ok(record)
    }

    /// What `client` may learn of a token (RFC 7662 style): its record
    /// when the token is active and issued to one of its users, else `None`,
    /// without saying why.
    ///
    /// # Errors
    /// Store failures only.
    pub async fn introspect_machine_token(
        &self,
        client: &Client,
        token: &str,
    ) -> Result<Option<MachineToken>> {
        match self.authenticate_machine(token).await {
            Ok(t) if t.client_id == client.id => Ok(Some(t)),
            Ok(_) | Err(CoreError::Unauthorized) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Revokes one of `client`'s tokens, at once on every instance.
    ///
    /// # Errors
    /// `NotFound`, also for another client's token or a revoked one.
    pub async fn revoke_machine_token(
        &self,
        client: &Client,
        id: MachineTokenId,
        meta: &RequestMeta,
    ) -> Result<()> {
        if !self
            .store
            .revoke_machine_token(client.id, id, self.clock.now())
            .await?
        {
            return Err(CoreError::NotFound);
        }
        tracing::info!(client.id = %client.id, machine_token.id = %id, "machine token revoked");
        self.audit(
            AuditAction::MachineTokenRevoked,
            None,
            Some(AuditValue::MachineToken(id)),
            meta,
            client_metadata(client.id),
        )
        .await;
        Ok(())
    }
}

fn client_metadata(client: ClientId) -> AuditMetadata {
    AuditMetadata::default().with("client_id", AuditValue::Client(client))
}

/// 1–128 characters, none of them whitespace nor refused by
/// [`crate::text::check`] (controls, NUL, bidi and invisible characters),
/// kept as given: identifiers are the client's names for its machines and are
/// compared exactly, never folded.
fn parse_identifier(raw: &str) -> Result<String> {
    if raw.is_empty() || raw.chars().count() > 128 {
        return Err(CoreError::field("identifier", "must be 1–128 characters"));
    }
    if raw.chars().any(char::is_whitespace) {
        return Err(CoreError::field("identifier", "must not contain spaces"));
    }
    crate::text::check(raw).map_err(|m| CoreError::field("identifier", m))?;
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_bounded_and_without_spaces() {
        assert_eq!(
            parse_identifier("device-42@fleet").unwrap(),
            "device-42@fleet"
        );
        assert!(parse_identifier("").is_err());
        assert!(parse_identifier("a b").is_err());
        assert!(parse_identifier("a\u{7}").is_err());
        for c in ['\u{0}', '\u{202E}', '\u{200B}', '\u{2060}', '\u{FEFF}'] {
            assert!(parse_identifier(&format!("sensor{c}1")).is_err(), "{c:?}");
        }
        assert!(parse_identifier(&"x".repeat(129)).is_err());
        assert!(parse_identifier(&"é".repeat(128)).is_ok());
    }
}
