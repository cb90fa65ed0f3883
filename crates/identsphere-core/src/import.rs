//! Bulk import of users from another system, with the password hashes they
//! already have (bcrypt, scrypt, PBKDF2-SHA256 or Argon2). The hashes are
//! stored as they are and replaced by Argon2id at each user's next login.
//!
//! The import is idempotent and resumable: an address that already has an
//! account is skipped and counted, so running the same file again (after an
//! interruption, say) changes nothing that was already imported.
use crate::{
    clock::{check_client_time, truncate_millis, Clock},
    error::Result,
    ids::UserId,
    password::identify,
    service::clean_name,
    store::{NewUser, Store, StoreError},
    Email,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line of the import file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    password_hash: String,
    #[serde(default)]
    id: Option<UserId>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

/// A line that was not imported, and why (never with its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Users created.
    pub imported: u64,
    /// Lines whose address already had an account (left untouched).
    pub skipped_existing: u64,
    /// Lines refused, in file order.
    pub invalid: Vec<InvalidLine>,
}

/// Imports users from JSON lines:
/// `{"email":…, "name"?:…, "email_verified"?:bool, "password_hash":…, "id"?:uuid, "created_at"?:RFC 3339}`.
/// Blank lines are ignored; `email_verified` defaults to `false`, `id` to a new
/// one, `created_at` to now.
///
/// # Errors
/// Only for a failing reader or store; a bad line is reported in the summary and skipped.
pub async fn import_users<R: AsyncBufRead + Unpin>(
    store: &dyn Store,
    clock: &dyn Clock,
    reader: R,
) -> Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    let mut lines = reader.lines();
    let mut number = 0;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| crate::CoreError::Internal(format!("reading the import file: {e}")))?
    {
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let new = match parse_line(&line, clock) {
            Ok(new) => new,
            Err(reason) => {
                summary.invalid.push(InvalidLine {
                    line: number,
                    reason,
                });
                continue;
            }
        };
        if store.find_user_by_email(&new.email).await?.is_some() {
            summary.skipped_existing += 1;
            continue;
        }
        match store.create_user(&new).await {
            Ok(_) => summary.imported += 1,
            // Taken by a concurrent sign-up since the lookup, or the id is another user's.
            Err(StoreError::Conflict { .. }) => {
                if store.find_user_by_email(&new.email).await?.is_some() {
                    summary.skipped_existing += 1;
                } else {
                    summary.invalid.push(InvalidLine {
                        line: number,
                        reason: "id: already belongs to another user".into(),
                    });
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(summary)
}

fn parse_line(line: &str, clock: &dyn Clock) -> std::result::Result<NewUser, String> {
    let de = &mut serde_json::Deserializer::from_str(line);
    let parsed: ImportLine = serde_path_to_error::deserialize(de).map_err(|e| {
        // serde's messages may quote the offending value, which could be a hash
        // in the wrong field: report where, and what kind of problem, only.
        let path = e.path().to_string();
        let inner = e.into_inner();
        let text = inner.to_string();
        if text.starts_with("missing field") || text.starts_with("unknown field") {
            text.split(" at line ").next().unwrap_or("").to_owned()
        } else if inner.is_data() && path != "." {
            format!("{path}: wrong type or value")
        } else {
            format!("not a JSON object (column {})", inner.column())
        }
    })?;
    let email = Email::parse(&parsed.email).map_err(|m| format!("email: {m}"))?;
    let name = clean_name(parsed.name).map_err(|e| match e {
        crate::CoreError::Validation(list) => list.first().map_or_else(
            || "name: invalid".into(),
            |f| format!("name: {}", f.message),
        ),
        other => other.to_string(),
    })?;
    identify(&parsed.password_hash).map_err(|reason| format!("password_hash: {reason}"))?;
    if let Some(t) = parsed.created_at {
        if check_client_time("created_at", t).is_err() {
            return Err("created_at: must be in the years 1970–9999".into());
        }
    }
    Ok(NewUser {
        id: parsed.id.unwrap_or_default(),
        email,
        name,
        email_verified: parsed.email_verified.unwrap_or(false),
        password_hash: Some(parsed.password_hash),
        created_at: truncate_millis(parsed.created_at.unwrap_or_else(|| clock.now())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn parse(line: &str) -> std::result::Result<NewUser, String> {
        parse_line(line, &ManualClock::new(Utc::now()))
    }

    const BCRYPT: &str = "$2b$04$ayYakpr31rlJxT7O3OkvsOLnfVyKP/gNd8xEeqLRCAwD38NPIULvK";

    #[test]
    fn a_full_line() {
        let id = UserId::new();
        let line = serde_json::json!({
            "email": " Ann@Example.com ", "name": "Ann", "email_verified": true,
            "password_hash": BCRYPT, "id": id, "created_at": "2020-01-02T03:04:05.678Z"
        })
        .to_string();
        let u = parse(&line).unwrap();
        assert_eq!(u.email.as_str(), "ann@example.com");
        assert_eq!(u.name.as_deref(), Some("Ann"));
        assert!(u.email_verified);
        assert_eq!(u.id, id);
        assert_eq!(u.password_hash.as_deref(), Some(BCRYPT));
        assert_eq!(u.created_at.to_rfc3339(), "2020-01-02T03:04:05.678+00:00");
    }

    #[test]
    fn reasons_name_the_problem_and_never_the_hash() {
        let cases = [
            ("not json", "not a JSON object"),
            (
                r#"{"email":"a@example.com"}"#,
                "missing field `password_hash`",
            ),
            (
                &format!(r#"{{"email":"a@example.com","password_hash":"{BCRYPT}","role":"x"}}"#),
                "unknown field `role`",
            ),
            (
                &format!(
                    r#"{{"email":"a@example.com","password_hash":"x","email_verified":"{BCRYPT}"}}"#
                ),
                "email_verified: wrong type or value",
            ),
            (
                &format!(r#"{{"email":"nope","password_hash":"{BCRYPT}"}}"#),
                "email: is not a valid email address",
            ),
            (
                r#"{"email":"a@example.com","password_hash":"md5$abc$def"}"#,
                "password_hash: unrecognised hash format",
            ),
            (
                &format!(
                    r#"{{"email":"a@example.com","password_hash":"{BCRYPT}","created_at":"-4714-11-23T00:00:00Z"}}"#
                ),
                "created_at: must be in the years 1970–9999",
            ),
            (
                &format!(r#"{{"email":"a\u0000@example.com","password_hash":"{BCRYPT}"}}"#),
                "email: ",
            ),
            (
                &format!(r#"{{"email":"\"a\"@example.com","password_hash":"{BCRYPT}"}}"#),
                "email: must not have a quoted local part",
            ),
        ];
        for (line, expected) in cases {
            let reason = parse(line).unwrap_err();
            assert!(reason.starts_with(expected), "{line}: {reason}");
            assert!(!reason.contains("ayYakpr"), "{reason}");
        }
    }
}
