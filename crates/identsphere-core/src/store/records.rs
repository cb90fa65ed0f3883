//! What stores keep and return. Secrets appear only as hashes.
use crate::{
    ids::*,
    permissions::{Permissions, RoleName},
    secret::TokenHash,
    Email,
};
use chrono::{DateTime, Utc};

/// A user account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Normalised email.
    pub email: Email,
    /// Display name.
    pub name: Option<String>,
    /// Whether the email has been verified.
    pub email_verified: bool,
    /// Argon2id PHC string; `None` for accounts without a password.
    pub password_hash: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Id.
    pub id: UserId,
    /// Normalised email.
    pub email: Email,
    /// Display name.
    pub name: Option<String>,
    /// Whether the email is already verified.
    pub email_verified: bool,
    /// Argon2id PHC string.
    pub password_hash: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A change to a user; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New email.
    pub email: Option<Email>,
    /// New verification state.
    pub email_verified: Option<bool>,
    /// New password hash.
    pub password_hash: Option<String>,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last refresh or sign-in.
    pub last_seen_at: DateTime<Utc>,
    /// When the session ends unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// Time of the last full authentication.
    pub auth_time: DateTime<Utc>,
    /// Authentication methods used (RFC 8176 values).
    pub amr: Vec<String>,
    /// The active organization, chosen with switch-organization.
    pub org_id: Option<OrgId>,
}

impl Session {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A session to insert.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Expiry unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Time of authentication.
    pub auth_time: DateTime<Utc>,
    /// Methods used.
    pub amr: Vec<String>,
}

/// A refresh token to insert (its hash only); the store links it to its session.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// Id.
    pub id: RefreshTokenId,
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Which of a user's sessions to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSelector {
    /// Exactly this one.
    One(SessionId),
    /// All of them but this one ("log out everywhere else").
    AllExcept(SessionId),
    /// All of them.
    All,
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// This call retired the token and stored the successor.
    Rotated(Session),
    /// The token was retired moments ago (within the grace): the caller may hand
    /// out the same successor again.
    WithinGrace(Session),
    /// The token was retired before the grace: the session has been revoked.
    Reused {
        /// The revoked session.
        session_id: SessionId,
        /// Its owner.
        user_id: UserId,
    },
    /// Unknown or expired token, or its session is revoked or expired.
    Invalid,
}

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Proves control of the account's email.
    VerifyEmail,
    /// Sets a new password.
    ResetPassword,
    /// Confirms a new email address.
    ChangeEmail,
}

impl TokenPurpose {
    /// Stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
        }
    }
}

/// A one-time token to store.
#[derive(Debug, Clone)]
pub struct NewOneTimeToken {
    /// Id.
    pub id: OneTimeTokenId,
    /// Whose it is.
    pub user_id: UserId,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// For [`TokenPurpose::ChangeEmail`]: the address being confirmed.
    pub new_email: Option<Email>,
    /// For [`TokenPurpose::VerifyEmail`] of a sign-up: the hash of the
    /// secret kept by the browser that signed up. Only that browser may
    /// finish the verification without choosing the password anew.
    pub proof: Option<TokenHash>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A live (unused, unexpired) one-time link, as lists and checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLink {
    /// Whose it is.
    pub user_id: UserId,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// For email changes: the address being confirmed.
    pub new_email: Option<Email>,
    /// For sign-up verifications: the hash of the signing-up browser's secret.
    pub proof: Option<TokenHash>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A token that has just been consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedToken {
    /// Whose it was.
    pub user_id: UserId,
    /// The address it confirms, for email changes.
    pub new_email: Option<Email>,
}

/// An asymmetric signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (`kid`).
    pub kid: String,
    /// `RS256` or `EdDSA`.
    pub alg: String,
    /// Private key, DER (PKCS#1 for RSA, PKCS#8 for Ed25519).
    pub private_der: Vec<u8>,
    /// Public JWK as JSON.
    pub public_jwk: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stopped signing; published until tokens it signed have expired.
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// An organization (a tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Id.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// Whether members must be signed in with a second factor (session
    /// `amr` holding `mfa`) to act in it.
    pub require_mfa: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A change to an organization's settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgPatch {
    /// New display name.
    pub name: Option<String>,
    /// New MFA requirement.
    pub require_mfa: Option<bool>,
}

impl OrgPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.require_mfa.is_none()
    }
}

/// An organization as it was before an update and as it is after it, read in
/// the update's transaction (so that the audit log records real changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatedOrg {
    /// Before the update.
    pub previous: Organization,
    /// After the update.
    pub current: Organization,
}

/// An organization to insert (new organizations do not require MFA).
#[derive(Debug, Clone)]
pub struct NewOrganization {
    /// Id.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A user's membership of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The organization.
    pub org_id: OrgId,
    /// The member.
    pub user_id: UserId,
    /// The role's name.
    pub role: RoleName,
    /// When the user joined.
    pub joined_at: DateTime<Utc>,
    /// The stored permissions of a custom role, read with the membership; `None`
    /// for built-in roles and for a custom role that no longer exists.
    pub role_permissions: Option<Permissions>,
    /// The organization's [`Organization::require_mfa`], read with the
    /// membership: every authorization needs it, and one read serves both.
    pub org_require_mfa: bool,
}

/// A member as listed: the membership with the user's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// The user's email.
    pub email: Email,
    /// The user's name.
    pub name: Option<String>,
    /// The role's name.
    pub role: RoleName,
    /// When the user joined.
    pub joined_at: DateTime<Utc>,
}

/// One of a user's organizations, with the user's role in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgMembership {
    /// The organization.
    pub org: Organization,
    /// The user's role.
    pub role: RoleName,
    /// When the user joined.
    pub joined_at: DateTime<Utc>,
}

/// A custom role of an organization (built-in roles are not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Name, unique in the organization.
    pub name: RoleName,
    /// What it allows.
    pub permissions: Permissions,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The outcome of changing or removing a membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Done; the member's role before the change.
    Done {
        /// The role the member had.
        previous: RoleName,
    },
    /// The user is not a member of the organization.
    NotMember,
    /// Refused: the member is the organization's last owner.
    LastOwner,
    /// Refused: the new role is neither built in nor defined in the organization.
    UnknownRole,
}

/// The outcome of deleting a custom role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleDeletion {
    /// Deleted.
    Deleted,
    /// No such role in the organization.
    NotFound,
    /// Refused: members or pending invitations hold the role.
    InUse,
}

/// An invitation to insert; the token itself is mailed, only its hash kept.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// Id.
    pub id: InvitationId,
    /// The organization.
    pub org_id: OrgId,
    /// Who is invited.
    pub email: Email,
    /// The role they will get.
    pub role: RoleName,
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// Who invited them.
    pub invited_by: UserId,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// An invitation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Id.
    pub id: InvitationId,
    /// The organization.
    pub org_id: OrgId,
    /// Who is invited.
    pub email: Email,
    /// The role they will get.
    pub role: RoleName,
    /// Who invited them (the user may since have been deleted).
    pub invited_by: Option<UserId>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was revoked (or replaced by a newer invitation).
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invitation {
    /// Neither accepted, revoked nor expired at `now`.
    pub fn is_pending(&self, now: DateTime<Utc>) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Who accepts an invitation.
#[derive(Debug, Clone)]
pub enum InvitationAcceptor {
    /// An existing account, signed in as the invited email.
    Existing(UserId),
    /// A new account, created in the same transaction.
    New(NewUser),
}

/// An API key to insert; the key itself is shown once, only its hash kept.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// The user the key acts for.
    pub user_id: UserId,
    /// For organization keys, the only organization the key reaches.
    pub org_id: Option<OrgId>,
    /// Label.
    pub name: String,
    /// The first characters of the key, shown in lists to tell keys apart.
    pub prefix: String,
    /// SHA-256 of the key.
    pub hash: TokenHash,
    /// Permission names the key may use.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// The user the key acts for.
    pub user_id: UserId,
    /// For organization keys, the only organization the key reaches.
    pub org_id: Option<OrgId>,
    /// Label.
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    /// Permission names the key may use.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// Whose API keys to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyOwner {
    /// A user's personal keys (not tied to an organization).
    User(UserId),
    /// An organization's keys.
    Org(OrgId),
    /// Every key a user created: personal ones and those of organizations.
    Creator(UserId),
}

/// A user's TOTP authenticator.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// Owner.
    pub user_id: UserId,
    /// The secret, sealed with the server's TOTP key (see [`crate::mfa::SecretBox`]).
    pub sealed_secret: Vec<u8>,
    /// Enrollment start.
    pub created_at: DateTime<Utc>,
    /// When a first code confirmed it; until then it does not guard logins.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The last time step whose code was accepted.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("user_id", &self.user_id)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// A pending second-factor login, handed to the client as an opaque token.
#[derive(Debug, Clone)]
pub struct NewMfaChallenge {
    /// Hash of the token.
    pub hash: TokenHash,
    /// Who passed the first factor.
    pub user_id: UserId,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes it survives.
    pub attempts_left: u32,
}

/// A live MFA challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// Who passed the first factor.
    pub user_id: UserId,
    /// Wrong codes it still survives.
    pub attempts_left: u32,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A passkey to store.
#[derive(Debug, Clone)]
pub struct NewPasskey {
    /// Its id.
    pub id: PasskeyId,
    /// Whose it is.
    pub user_id: UserId,
    /// The WebAuthn credential id.
    pub credential_id: Vec<u8>,
    /// The credential (public key, counter, flags) as `webauthn-rs` serialises it.
    pub credential: String,
    /// A label the user chose.
    pub name: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

/// A stored passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// Its id.
    pub id: PasskeyId,
    /// Whose it is.
    pub user_id: UserId,
    /// The WebAuthn credential id.
    pub credential_id: Vec<u8>,
    /// The credential as `webauthn-rs` serialises it.
    pub credential: String,
    /// A label the user chose.
    pub name: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last login with it.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What a WebAuthn ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Adding a passkey to a signed-in account.
    Registration,
    /// Signing in with a passkey.
    Login,
}

impl CeremonyKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Login => "login",
        }
    }
}

/// The server half of a started ceremony.
#[derive(Debug, Clone)]
pub struct NewWebauthnCeremony {
    /// Its id, handed to the client.
    pub id: CeremonyId,
    /// What it is for.
    pub kind: CeremonyKind,
    /// The registering user (none for a login: the passkey names the user).
    pub user_id: Option<UserId>,
    /// The `webauthn-rs` state (challenge, policy), serialised.
    pub state: String,
    /// Start time.
    pub created_at: DateTime<Utc>,
    /// When it can no longer finish.
    pub expires_at: DateTime<Utc>,
}

/// A live ceremony, taken from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnCeremony {
    /// The registering user, if any.
    pub user_id: Option<UserId>,
    /// The `webauthn-rs` state.
    pub state: String,
}

/// A machine client to insert.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Id.
    pub id: ClientId,
    /// Label.
    pub name: String,
    /// The first characters of its key, to tell keys apart in lists.
    pub key_prefix: String,
    /// SHA-256 of its key.
    pub key_hash: TokenHash,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A machine client as stored (its key only as a hash, which is not returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Id.
    pub id: ClientId,
    /// Label.
    pub name: String,
    /// The first characters of its current key.
    pub key_prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When its key was last replaced.
    pub key_rotated_at: Option<DateTime<Utc>>,
}

/// A machine user to insert.
#[derive(Debug, Clone)]
pub struct NewClientUser {
    /// Id.
    pub id: ClientUserId,
    /// Its client.
    pub client_id: ClientId,
    /// The name it signs in with, unique within its client.
    pub identifier: String,
    /// SHA-256 of its secret (a 256-bit random token, so a fast hash suffices).
    pub secret_hash: TokenHash,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A machine user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUser {
    /// Id.
    pub id: ClientUserId,
    /// Its client.
    pub client_id: ClientId,
    /// The name it signs in with.
    pub identifier: String,
    /// SHA-256 of its secret.
    pub secret_hash: TokenHash,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A machine token to insert for a client user.
#[derive(Debug, Clone)]
pub struct NewMachineToken {
    /// Id (the token's `jti`).
    pub id: MachineTokenId,
    /// The machine user it is issued to.
    pub user_id: ClientUserId,
    /// The user's client.
    pub client_id: ClientId,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A machine token as stored: the server's record of a signed token, which
/// is valid only while this record exists, is unrevoked and unexpired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineToken {
    /// Id (the token's `jti`).
    pub id: MachineTokenId,
    /// The machine user it was issued to.
    pub user_id: ClientUserId,
    /// The user's client.
    pub client_id: ClientId,
    /// The user's identifier.
    pub identifier: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl MachineToken {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}
