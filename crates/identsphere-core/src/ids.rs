//! Opaque identifiers. UUIDv7 so that ids sort by creation time (cursor pagination).
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a user account.
    UserId
);
id_type!(
    /// Identifies a session: one sign-in on one device.
    SessionId
);
id_type!(
    /// Identifies one refresh token of a session's rotation chain.
    RefreshTokenId
);
id_type!(
    /// Identifies a one-time emailed token (verification, reset, email change).
    OneTimeTokenId
);
id_type!(
    /// Identifies an organization.
    OrgId
);
id_type!(
    /// Identifies an audit event.
    AuditEventId
);
id_type!(
    /// Identifies an invitation to an organization.
    InvitationId
);
id_type!(
    /// Identifies an API key.
    ApiKeyId
);
id_type!(
    /// Identifies a passkey.
    PasskeyId
);
id_type!(
    /// Identifies a started WebAuthn ceremony (registration or login).
    CeremonyId
);
id_type!(
    /// Identifies a machine client: an application that manages machine users
    /// through the client API with its own key.
    ClientId
);
id_type!(
    /// Identifies a machine user of a client (the `sub` of its tokens).
    ClientUserId
);
id_type!(
    /// Identifies a stored machine token (its `jti`).
    MachineTokenId
);
id_type!(
    /// Identifies a durable background job.
    JobId
);
id_type!(
    /// Identifies one claim of a job: only the holder of the current lease
    /// may complete or fail it, so a worker whose lease ran out cannot undo
    /// the work of the one that took the job over.
    LeaseId
);
