//! Storage as traits, split by capability and gathered under [`Store`].
//!
//! Backends live in other crates. Each one-time consumption (refresh rotation,
//! link tokens) is a single atomic method here, never a read followed by a write
//! in the caller, so that concurrent requests cannot both win.
mod jobs;
mod records;

pub use jobs::*;
pub use records::*;

use crate::{
    audit::{AuditEvent, AuditFilter, NewAuditEvent},
    ids::*,
    permissions::{Permissions, RoleName},
    secret::TokenHash,
    Email,
};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use futures::stream::BoxStream;

/// Result with [`StoreError`].
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// What a store can report; driver errors are translated, never leaked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the operation needs does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The rule, e.g. `users_email`.
        constraint: String,
    },
    /// The database failed or is unreachable.
    #[error("backend: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// User accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user. `Conflict { constraint: "users_email" }` when the email is taken.
    async fn create_user(&self, user: &NewUser) -> StoreResult<User>;
    /// A user by id.
    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// A user by (normalised) email.
    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;
    /// Up to `limit` users, in id order after `after`, whose stored address
    /// may predate the current folding rules of [`Email::parse`]: it holds a
    /// non-ASCII character or a `"`. (Every other address the old rule, trim
    /// and lower case, accepted is already in its folded form.) For the
    /// refold that [`crate::addresses::refold_stored`] runs at start-up.
    async fn users_with_unfolded_email(
        &self,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;
    /// Applies a profile change and returns the updated user.
    async fn update_user(
        &self,
        id: UserId,
        patch: &UserPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<User>;
    /// Replaces the password hash only if it is still `expected`; `false` when
    /// it has changed meanwhile (or the user is gone). Rehashing at login uses
    /// it, so an upgrade never overwrites a password changed during the login.
    async fn replace_password_hash(
        &self,
        id: UserId,
        expected: &str,
        new_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// Sessions and their refresh-token chains.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session together with its first refresh token, atomically.
    async fn create_session(
        &self,
        session: &NewSession,
        refresh: &NewRefreshToken,
    ) -> StoreResult<Session>;
    /// A session by id, revoked or not.
    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>>;
    /// The session a refresh token (live or retired) belongs to.
    async fn find_session_by_refresh_token(&self, hash: &TokenHash)
        -> StoreResult<Option<Session>>;
    /// The user's live sessions (not revoked, not expired), newest first.
    async fn list_active_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Session>>;
    /// Revokes the sessions of `user` selected by `which`; returns the ids it revoked.
    async fn revoke_sessions(
        &self,
        user: UserId,
        which: SessionSelector,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>>;
    /// Ids of sessions revoked at or after `since` (to rebuild a revocation cache).
    async fn revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<SessionId>>;
    /// Rotates a refresh token in one atomic step; see [`RotateOutcome`].
    ///
    /// `successor` is inserted only when this call retires `presented`; `grace`
    /// is how long a retired token may be presented again.
    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        successor: &NewRefreshToken,
        grace: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<RotateOutcome>;
    /// Sets a live session's active organization and adds `refresh` to it,
    /// leaving its other refresh tokens valid (tabs that refresh concurrently
    /// must not look like reuse). `None` when the session is revoked or expired.
    async fn switch_session_org(
        &self,
        session: SessionId,
        org: Option<OrgId>,
        refresh: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>>;
    /// Records a fresh authentication on a live session: sets `auth_time`
    /// and `amr` and adds `refresh`, leaving its other refresh tokens valid.
    /// `None` when the session is revoked or expired.
    async fn reauthenticate_session(
        &self,
        session: SessionId,
        auth_time: DateTime<Utc>,
        amr: &[String],
        refresh: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>>;
}

/// One-time tokens sent by email.
#[async_trait]
pub trait OneTimeTokenStore: Send + Sync {
    /// Stores a token (its hash) and drops the user's earlier unused tokens of the same purpose.
    async fn replace_one_time_token(&self, token: &NewOneTimeToken) -> StoreResult<()>;
    /// Atomically consumes a live token of `purpose`; `None` when unknown, used or expired.
    async fn consume_one_time_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConsumedToken>>;
    /// A live token of `purpose` by its hash, without consuming it.
    async fn find_one_time_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingLink>>;
    /// The user's live link of `purpose` (there is at most one).
    async fn pending_link(
        &self,
        user: UserId,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingLink>>;
    /// Ends the user's unused links: of `purpose`, or of every purpose.
    /// Returns how many were live.
    async fn end_one_time_tokens(
        &self,
        user: UserId,
        purpose: Option<TokenPurpose>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
}

/// Signing keys for asymmetric access tokens.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// All keys, newest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Adds a key.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// Marks every key but `keep` retired at `now` (they stay published until pruned).
    async fn retire_signing_keys_except(&self, keep: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Deletes keys retired before `before`.
    async fn delete_signing_keys_retired_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// A page request: at most `limit` items past the `after` cursor, in the list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<C> {
    /// Exclusive bound: the last item of the previous page.
    pub after: Option<C>,
    /// Most items to return.
    pub limit: u32,
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event.
    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()>;
    /// Events matching `filter`, newest first, older than the `after` cursor.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest<AuditEventId>,
    ) -> StoreResult<Vec<AuditEvent>>;
}

/// Organizations, their memberships and their custom roles.
///
/// Changes to one organization's memberships are serialised by the store, so
/// that the last-owner rule holds under concurrent demotions and removals.
#[async_trait]
pub trait OrgStore: Send + Sync {
    /// Inserts an organization with `owner` as its first member (role `owner`), atomically.
    async fn create_org(&self, org: &NewOrganization, owner: UserId) -> StoreResult<Organization>;
    /// An organization by id.
    async fn get_org(&self, id: OrgId) -> StoreResult<Option<Organization>>;
    /// Applies a settings change and returns the organization before and
    /// after it, read in one transaction; `NotFound` when it does not exist.
    async fn update_org(
        &self,
        id: OrgId,
        patch: &OrgPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<UpdatedOrg>;
    /// Deletes an organization with its memberships, roles, invitations and keys;
    /// sessions that had it active lose it. `false` when it did not exist.
    async fn delete_org(&self, id: OrgId) -> StoreResult<bool>;
    /// The organizations `user` belongs to, by ascending id after the cursor.
    async fn list_user_orgs(
        &self,
        user: UserId,
        page: PageRequest<OrgId>,
    ) -> StoreResult<Vec<OrgMembership>>;
    /// One membership, with its custom role's permissions and the
    /// organization's MFA requirement.
    async fn get_membership(&self, org: OrgId, user: UserId) -> StoreResult<Option<Membership>>;
    /// Members by ascending user id after the cursor.
    async fn list_members(&self, org: OrgId, page: PageRequest<UserId>)
        -> StoreResult<Vec<Member>>;
    /// Adds a member. `Conflict` when the user already is one.
    async fn add_member(
        &self,
        org: OrgId,
        user: UserId,
        role: &RoleName,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Gives a member another role; refuses to demote the last owner and to
    /// assign a custom role the organization does not have.
    async fn change_member_role(
        &self,
        org: OrgId,
        user: UserId,
        role: &RoleName,
    ) -> StoreResult<MemberChange>;
    /// Removes a member; refuses to remove the last owner.
    async fn remove_member(&self, org: OrgId, user: UserId) -> StoreResult<MemberChange>;
    /// The organization's custom roles, by name.
    async fn list_roles(&self, org: OrgId) -> StoreResult<Vec<Role>>;
    /// One custom role.
    async fn get_role(&self, org: OrgId, name: &RoleName) -> StoreResult<Option<Role>>;
    /// Adds a custom role. `Conflict` when the name is taken.
    async fn create_role(&self, org: OrgId, role: &Role) -> StoreResult<()>;
    /// Replaces a custom role's permissions; `None` when there is no such role.
    async fn update_role(
        &self,
        org: OrgId,
        name: &RoleName,
        permissions: &Permissions,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Role>>;
    /// Deletes a custom role that no member or pending invitation holds.
    async fn delete_role(&self, org: OrgId, name: &RoleName) -> StoreResult<RoleDeletion>;
}

/// Invitations to organizations.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores an invitation, revoking earlier pending ones for the same email
    /// and organization (only the newest link works).
    async fn create_invitation(&self, inv: &NewInvitation) -> StoreResult<Invitation>;
    /// Pending and expired (not accepted, not revoked) invitations, by ascending id after the cursor.
    async fn list_invitations(
        &self,
        org: OrgId,
        page: PageRequest<InvitationId>,
    ) -> StoreResult<Vec<Invitation>>;
    /// The invitation a token belongs to, whatever its state.
    async fn find_invitation(&self, hash: &TokenHash) -> StoreResult<Option<Invitation>>;
    /// Revokes every pending invitation to `email`, in any organization
    /// (the address left its account); returns them as they were.
    async fn revoke_invitations_to(
        &self,
        email: &Email,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>>;
    /// Revokes a pending invitation of `org`; `false` when there is none with that id.
    async fn revoke_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Accepts a pending invitation for `email` in one transaction: marks it
    /// accepted, creates the account for [`InvitationAcceptor::New`], and adds
    /// the membership (an existing membership is kept as it is). `None` when
    /// the token is unknown, used, revoked, expired or for another email.
    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        email: &Email,
        acceptor: &InvitationAcceptor,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Invitation, UserId)>>;
}

/// API keys.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a key.
    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<ApiKey>;
    /// A key by the hash of its secret, whatever its state.
    async fn find_api_key(&self, hash: &TokenHash) -> StoreResult<Option<ApiKey>>;
    /// A key by id, whatever its state.
    async fn get_api_key(&self, id: ApiKeyId) -> StoreResult<Option<ApiKey>>;
    /// Unrevoked keys of `owner`, by ascending id after the cursor.
    async fn list_api_keys(
        &self,
        owner: ApiKeyOwner,
        page: PageRequest<ApiKeyId>,
    ) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; `false` when it was already revoked or does not exist.
    async fn revoke_api_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Records a use of the key.
    async fn touch_api_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> StoreResult<()>;
}

/// Second factors: TOTP authenticators, recovery codes and pending MFA logins.
///
/// Every acceptance of a code is one conditional write, so that a code (a
/// TOTP time step, a recovery code, a challenge) is accepted at most once
/// even when requests race.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// Starts (or restarts) an enrollment with a new sealed secret; `false`
    /// (and nothing changed) when the user already has a confirmed authenticator.
    async fn begin_totp_enrollment(
        &self,
        user: UserId,
        sealed_secret: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The user's authenticator, confirmed or not.
    async fn get_totp(&self, user: UserId) -> StoreResult<Option<TotpRecord>>;
    /// Confirms a pending enrollment whose code matched `step` and stores the
    /// recovery codes, atomically; `false` when there is no pending enrollment.
    async fn confirm_totp(
        &self,
        user: UserId,
        step: i64,
        recovery_codes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Accepts a code of `step` for a confirmed authenticator: `true` only when
    /// `step` is newer than every step accepted before (no code is accepted twice).
    async fn use_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool>;
    /// Replaces the user's recovery codes.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Marks an unused recovery code of `user` used; `false` when there is none.
    async fn consume_recovery_code(
        &self,
        user: UserId,
        code: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Unused recovery codes of `user`.
    async fn count_recovery_codes(&self, user: UserId) -> StoreResult<u32>;
    /// Removes the user's authenticator, recovery codes and pending MFA
    /// logins; `true` when a confirmed authenticator was removed.
    async fn delete_mfa(&self, user: UserId) -> StoreResult<bool>;
    /// Ends the user's pending MFA logins (after a password change: a
    /// password that was just replaced must not finish a sign-in); returns
    /// how many were live.
    async fn end_mfa_challenges(&self, user: UserId, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Stores a pending MFA login, and drops expired ones.
    async fn create_mfa_challenge(&self, challenge: &NewMfaChallenge) -> StoreResult<()>;
    /// A live (unexpired, unconsumed, attempts left) MFA login.
    async fn find_mfa_challenge(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<MfaChallenge>>;
    /// Charges one attempt to a live challenge *before* its code is checked
    /// (one conditional decrement), so that racing guesses cannot together
    /// try more codes than it has attempts; `false` when none is left.
    async fn charge_mfa_attempt(&self, hash: &TokenHash, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Consumes an unexpired, unconsumed challenge (its last attempt may
    /// have been the one that succeeded); `false` when there is none.
    async fn consume_mfa_challenge(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// Passkeys (WebAuthn credentials) and the server state of running ceremonies.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Stores a passkey; `Conflict` when the credential id is registered
    /// already (to anyone).
    async fn create_passkey(&self, passkey: &NewPasskey) -> StoreResult<PasskeyRecord>;
    /// The user's passkeys, oldest first.
    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyRecord>>;
    /// A passkey by credential id.
    async fn find_passkey_by_credential(
        &self,
        credential_id: &[u8],
    ) -> StoreResult<Option<PasskeyRecord>>;
    /// Renames one of the user's passkeys; `None` when the user has no such passkey.
    async fn rename_passkey(
        &self,
        user: UserId,
        id: PasskeyId,
        name: &str,
    ) -> StoreResult<Option<PasskeyRecord>>;
    /// Deletes one of the user's passkeys; `false` when there is no such passkey.
    async fn delete_passkey(&self, user: UserId, id: PasskeyId) -> StoreResult<bool>;
    /// Records a login with the passkey, storing its updated credential
    /// (signature counter, backup flags) when it changed.
    async fn record_passkey_use(
        &self,
        id: PasskeyId,
        credential: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Stores the state of a started ceremony, and drops expired ones.
    async fn create_webauthn_ceremony(&self, ceremony: &NewWebauthnCeremony) -> StoreResult<()>;
    /// Removes and returns a live ceremony of `kind`: the state is used at
    /// most once, whatever the number of racing finishes.
    async fn take_webauthn_ceremony(
        &self,
        id: CeremonyId,
        kind: CeremonyKind,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WebauthnCeremony>>;
}

/// Machine clients, their machine users and the tokens issued to those.
///
/// Deleting a client deletes its users, and deleting a user deletes its
/// tokens: a token is valid only while its record exists.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Stores a client.
    async fn create_client(&self, client: &NewClient) -> StoreResult<Client>;
    /// A client by id.
    async fn get_client(&self, id: ClientId) -> StoreResult<Option<Client>>;
    /// The client whose current key has this hash.
    async fn find_client_by_key(&self, key_hash: &TokenHash) -> StoreResult<Option<Client>>;
    /// Clients by ascending id after the cursor.
    async fn list_clients(&self, page: PageRequest<ClientId>) -> StoreResult<Vec<Client>>;
    /// Replaces a client's key (the old one stops working at once); `None`
    /// when there is no such client.
    async fn replace_client_key(
        &self,
        id: ClientId,
        key_prefix: &str,
        key_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Client>>;
    /// Deletes a client with its users and their tokens; `false` when it did not exist.
    async fn delete_client(&self, id: ClientId) -> StoreResult<bool>;
    /// Stores a machine user. `Conflict { constraint: "client_users_identifier" }`
    /// when the client has a user with that identifier.
    async fn create_client_user(&self, user: &NewClientUser) -> StoreResult<ClientUser>;
    /// One of `client`'s users by identifier.
    async fn find_client_user(
        &self,
        client: ClientId,
        identifier: &str,
    ) -> StoreResult<Option<ClientUser>>;
    /// `client`'s users by ascending id after the cursor.
    async fn list_client_users(
        &self,
        client: ClientId,
        page: PageRequest<ClientUserId>,
    ) -> StoreResult<Vec<ClientUser>>;
    /// Deletes one of `client`'s users with its tokens; `false` when it has no such user.
    async fn delete_client_user(&self, client: ClientId, id: ClientUserId) -> StoreResult<bool>;
    /// Stores a token for a user of `token.client_id`; `false` (nothing
    /// stored) when that user no longer exists, for instance deleted while
    /// its secret was being checked.
    async fn create_machine_token(&self, token: &NewMachineToken) -> StoreResult<bool>;
    /// A token by id, whatever its state.
    async fn get_machine_token(&self, id: MachineTokenId) -> StoreResult<Option<MachineToken>>;
    /// Revokes one of `client`'s tokens; `false` when it has no such unrevoked token.
    async fn revoke_machine_token(
        &self,
        client: ClientId,
        id: MachineTokenId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// Everything IdentSphere stores.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + OneTimeTokenStore
    + KeyStore
    + AuditStore
    + OrgStore
    + InvitationStore
    + ApiKeyStore
    + MfaStore
    + PasskeyStore
    + ClientStore
    + std::fmt::Debug
{
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Durable background jobs.
    fn jobs(&self) -> &dyn JobStore;
    /// A stream of the changes *any* process makes on this database that
    /// caches must hear about, or `None` when the backend has no such feed (a
    /// single-process store, whose own process makes every change).
    ///
    /// Every committed change is announced, and none that rolled back. The
    /// stream ends when the feed is interrupted; what changed while it was down
    /// must be re-read ([`SessionStore::revoked_since`]) or forgotten.
    async fn change_feed(&self) -> StoreResult<Option<BoxStream<'static, Change>>>;
}

/// A change announced by [`Store::change_feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A session was revoked.
    SessionRevoked(SessionId),
    /// A user row was updated or deleted.
    UserChanged(UserId),
}
