//! API keys: long-lived credentials for scripts and servers, shown once and
//! stored as hashes. A key acts for its owner, narrowed to its scopes; an
//! organization key reaches its organization only. Every request reads the
//! key from the store, so a revocation takes effect at once on every instance.
use super::{Caller, Identity, Principal, RequestMeta};
use crate::{
    audit::{AuditAction, AuditValue},
    clock::check_client_time,
    error::{CoreError, Result},
    ids::{ApiKeyId, OrgId},
    permissions::{Permission, Permissions, CATALOGUE},
    secret::{random_token, shown_prefix, TokenHash},
    store::{ApiKey, ApiKeyOwner, NewApiKey, PageRequest},
    text::label,
    FieldError,
};
use chrono::{DateTime, Duration, Utc};

/// API keys start with this, so that they are recognisable in logs, leak
/// scanners and support tickets (and told apart from JWTs in `Authorization`).
pub const API_KEY_PREFIX: &str = "isk_";

/// Scopes that are not organization permissions.
const ACCOUNT_SCOPES: &[&str] = &["users:read", "users:write", "scim"];

/// `last_used_at` is written at most this often per key, not on every request.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// Input of [`Identity::create_api_key`].
#[derive(Debug)]
pub struct NewApiKeyRequest {
    /// Label.
    pub name: String,
    /// Permission names the key may use (non-empty).
    pub scopes: Vec<String>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// For an organization key, its organization.
    pub org_id: Option<OrgId>,
}

impl Identity {
    fn parse_scopes(&self, raw: &[String]) -> Result<Vec<String>> {
        if raw.is_empty() {
            return Err(CoreError::field("scopes", "must list at least one scope"));
        }
        if raw.len() > 64 {
            return Err(CoreError::field("scopes", "at most 64 scopes"));
        }
        let mut errors = Vec::new();
        let mut scopes: Vec<String> = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let known = CATALOGUE.contains(&s.as_str())
                || ACCOUNT_SCOPES.contains(&s.as_str())
                || Permission::parse(s).is_ok_and(|p| self.config.app_permissions.contains(&p));
            if s == "*" && !self.config.allow_wildcard_api_key_scope {
                errors.push(FieldError::new(
                    format!("scopes[{i}]"),
                    "\"*\" is not allowed on this server; list the scopes the key needs",
                ));
            } else if s != "*" && !known {
                errors.push(FieldError::new(
                    format!("scopes[{i}]"),
                    format!("unknown scope {s:?}"),
                ));
            } else if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        if errors.is_empty() {
            Ok(scopes)
        } else {
            Err(CoreError::Validation(errors))
        }
    }

    /// Creates a key and returns it with its secret, which is never shown
    /// again. Organization keys need `api_keys:manage` there, and no key gets
    /// a permission its creator lacks. Keys cannot create keys. Needs a
    /// recent authentication (step-up).
    ///
    /// # Errors
    /// `StepUpRequired`, `Validation`, `NotFound` (organization), `Forbidden`.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        req: NewApiKeyRequest,
        meta: &RequestMeta,
    ) -> Result<(ApiKey, String)> {
        let principal = caller.session()?;
        self.require_recent_auth(principal).await?;
        let name = label("name", &req.name, 100)?;
        let scopes = self.parse_scopes(&req.scopes)?;
        let now = self.clock.now();
        if let Some(expires_at) = req.expires_at {
            check_client_time("expires_at", expires_at)?;
        }
        if req.expires_at.is_some_and(|e| e <= now) {
            return Err(CoreError::field("expires_at", "must be in the future"));
        }
        if let Some(org) = req.org_id {
            let access = self.authorize(caller, org, "api_keys:manage").await?;
            let wanted: Permissions = scopes
                .iter()
                .filter_map(|s| Permission::parse(s).ok())
                .collect();
            access.require_all(&wanted)?;
        }
        let secret = random_token(API_KEY_PREFIX);
        let key = self
            .store
            .create_api_key(&NewApiKey {
                id: ApiKeyId::new(),
                user_id: principal.user_id,
                org_id: req.org_id,
                name,
                prefix: shown_prefix(&secret, API_KEY_PREFIX),
                hash: TokenHash::of(&secret),
                scopes,
                created_at: now,
                expires_at: req.expires_at,
            })
            .await?;
        tracing::info!(user.id = %principal.user_id, api_key.id = %key.id, "API key created");
        self.audit_in(
            key.org_id,
            AuditAction::ApiKeyCreated,
            Some(principal.user_id),
            Some(AuditValue::ApiKey(key.id)),
            meta,
            Default::default(),
        )
        .await;
        Ok((key, secret))
    }

    /// The caller's personal keys, or an organization's keys (`api_keys:manage`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`.
    pub async fn list_api_keys(
        &self,
        caller: &Caller,
        org: Option<OrgId>,
        page: PageRequest<ApiKeyId>,
    ) -> Result<Vec<ApiKey>> {
        let principal = caller.session()?;
        let owner = match org {
            Some(org) => {
                self.authorize(caller, org, "api_keys:manage").await?;
                ApiKeyOwner::Org(org)
            }
            None => ApiKeyOwner::User(principal.user_id),
        };
        Ok(self.store.list_api_keys(owner, page).await?)
    }

    /// Revokes a key: one's own personal key, or an organization key with
    /// `api_keys:manage` there. Anything else answers `NotFound`.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`.
    pub async fn revoke_api_key(
        &self,
        caller: &Caller,
        id: ApiKeyId,
        meta: &RequestMeta,
    ) -> Result<()> {
        let principal: &Principal = caller.session()?;
        let key = self
            .store
            .get_api_key(id)
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or(CoreError::NotFound)?;
        match key.org_id {
            Some(org) => {
                self.authorize(caller, org, "api_keys:manage").await?;
            }
            None if key.user_id == principal.user_id => {}
            None => return Err(CoreError::NotFound),
        }
        if !self.store.revoke_api_key(id, self.clock.now()).await? {
            return Err(CoreError::NotFound);
        }
        tracing::info!(user.id = %principal.user_id, api_key.id = %id, "API key revoked");
        self.audit_in(
            key.org_id,
            AuditAction::ApiKeyRevoked,
            Some(principal.user_id),
            Some(AuditValue::ApiKey(id)),
            meta,
            Default::default(),
        )
        .await;
        Ok(())
    }

    /// Recognises an API key: it must exist, be unrevoked and unexpired.
    ///
    /// # Errors
    /// `Unauthorized`.
    pub async fn authenticate_api_key(&self, presented: &str) -> Result<ApiKey> {
        if !presented.starts_with(API_KEY_PREFIX) || presented.len() > 128 {
            return Err(CoreError::Unauthorized);
        }
        let now = self.clock.now();
        let key = self
            .store
            .find_api_key(&TokenHash::of(presented))
            .await?
            .filter(|k| k.is_active(now))
            .ok_or(CoreError::Unauthorized)?;
        if key
            .last_used_at
            .is_none_or(|t| now - t >= Duration::seconds(TOUCH_INTERVAL_SECS))
        {
            // A lost update only makes `last_used_at` a little older.
            if let Err(e) = self.store.touch_api_key(key.id, now).await {
                tracing::warn!(api_key.id = %key.id, error = %e, "recording an API key's use failed");
            }
        }
        Ok(key)
    }

    /// Authenticates whatever credential a request carried: an API key by its
    /// prefix, otherwise an access token.
    ///
    /// # Errors
    /// `Unauthorized`.
    pub async fn authenticate_caller(&self, credential: &str) -> Result<Caller> {
        if credential.starts_with(API_KEY_PREFIX) {
            Ok(Caller::ApiKey(self.authenticate_api_key(credential).await?))
        } else {
            Ok(Caller::Session(self.authenticate(credential).await?))
        }
    }
}
