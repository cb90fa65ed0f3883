//! Permissions and roles: one model for people, API keys and (later) machine clients.
use serde::{Deserialize, Serialize};
use std::{collections::BTreeSet, fmt};

/// The built-in permission catalogue (API.md §4).
pub const CATALOGUE: &[&str] = &[
    "org:read",
    "org:manage",
    "members:read",
    "members:manage",
    "invitations:manage",
    "roles:manage",
    "api_keys:manage",
    "audit:read",
    "webhooks:manage",
    "sso:manage",
];

/// A permission name: a catalogue entry, or `app:<name>` registered by the host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Permission(String);

impl Permission {
    /// Accepts catalogue names and `app:` names of `[a-z0-9_.:-]`, at most 64 bytes.
    ///
    /// # Errors
    /// A message for a `validation_failed` entry.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if CATALOGUE.contains(&raw) {
            return Ok(Self(raw.to_owned()));
        }
        let valid_app = raw.strip_prefix("app:").is_some_and(|rest| {
            !rest.is_empty()
                && raw.len() <= 64
                && rest
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.:-".contains(c))
        });
        if valid_app {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("unknown permission {raw:?}"))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A catalogue permission by name; for code that names permissions statically.
    pub fn builtin(name: &'static str) -> Self {
        debug_assert!(CATALOGUE.contains(&name), "{name} is not in the catalogue");
        Self(name.to_owned())
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role name, unique per organization: `[a-z0-9_-]`, 1–64 characters.
/// The character set keeps personal data (an `@`, spaces) out of role names,
/// which may therefore appear in audit metadata.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoleName(String);

impl RoleName {
    /// The built-in owner role.
    pub const OWNER: &'static str = "owner";
    /// The built-in admin role.
    pub const ADMIN: &'static str = "admin";
    /// The built-in member role.
    pub const MEMBER: &'static str = "member";

    /// Validates a role name.
    ///
    /// # Errors
    /// A message for a `validation_failed` entry.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be 1–64 characters of a-z, 0-9, _ and -".into())
        }
    }

    /// The built-in roles, most powerful first.
    pub const BUILT_IN: [&'static str; 3] = [Self::OWNER, Self::ADMIN, Self::MEMBER];

    /// Whether this is `owner`, `admin` or `member` (defined in code, not stored).
    pub fn is_builtin(&self) -> bool {
        Self::BUILT_IN.contains(&self.0.as_str())
    }

    /// A built-in role.
    pub fn builtin(name: &'static str) -> Self {
        Self(name.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of permissions.
pub type Permissions = BTreeSet<Permission>;

/// The permissions of a built-in role, given the host's `app:*` permissions.
/// `owner` has everything; `admin` too (deleting the organization and changing
/// owners are checked by role, not permission); `member` reads.
pub fn builtin_permissions(role: &RoleName, app: &[Permission]) -> Option<Permissions> {
    let all = || {
        CATALOGUE
            .iter()
            .map(|p| Permission::builtin(p))
            .chain(app.iter().cloned())
            .collect()
    };
    match role.as_str() {
        RoleName::OWNER | RoleName::ADMIN => Some(all()),
        RoleName::MEMBER => Some(
            [
                Permission::builtin("org:read"),
                Permission::builtin("members:read"),
            ]
            .into(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names() {
        for ok in [
            "org:read",
            "sso:manage",
            "app:invoices.read",
            "app:billing:write",
        ] {
            assert!(Permission::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "org:delete", "app:", "App:x", "app:a b", "*", "app:é"] {
            assert!(Permission::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_names_cannot_hold_personal_data() {
        assert!(RoleName::parse("billing-admin").is_ok());
        for bad in ["", "ann@example.com", "Ann", "a b", &"a".repeat(65)] {
            assert!(RoleName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builtin_roles() {
        let app = [Permission::parse("app:x").unwrap()];
        let owner = builtin_permissions(&RoleName::builtin("owner"), &app).unwrap();
        assert!(owner.contains(&Permission::builtin("org:manage")));
        assert!(owner.contains(&app[0]));
        let member = builtin_permissions(&RoleName::builtin("member"), &app).unwrap();
        assert_eq!(member.len(), 2);
        assert!(builtin_permissions(&RoleName::builtin("custom"), &app).is_none());
    }
}
