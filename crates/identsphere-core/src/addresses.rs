//! Re-folds addresses stored before the current rules of [`Email::parse`].
//!
//! Addresses used to be stored trimmed and lower-cased only. Under that rule
//! `ａｎｎ@example.com`, `"ann"@example.com` and `ann@bücher.example` were
//! kept as typed, and the new rule would no longer find them: their owners
//! could not sign in. The folding needs NFKC and IDNA, which SQL cannot do,
//! so it runs here, at start-up (and in `identsphere migrate`), over the
//! few rows that can differ (a non-ASCII character or a `"`, see
//! [`crate::store::UserStore::users_with_unfolded_email`]). It is idempotent
//! and safe to run from several instances at once.
//!
//! Two accounts whose addresses fold to one mailbox cannot both keep it: the
//! one already holding the folded form keeps it, the other is left as it is
//! and reported (by id, never by address) for an operator to merge or
//! delete. An address the new rules refuse (a quoted local part) is left
//! too, and reported: its owner signs in again once an operator changes it.
use crate::{
    error::Result,
    ids::UserId,
    store::{Store, StoreError, UserPatch},
    Clock, Email,
};

/// Rows read per query.
const BATCH: u32 = 500;

/// What a refold did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefoldSummary {
    /// Addresses rewritten to their folded form.
    pub refolded: u64,
    /// Users whose folded address belongs to another account already.
    pub conflicts: Vec<UserId>,
    /// Users whose stored address the current rules refuse.
    pub refused: Vec<UserId>,
}

/// Rewrites every stored address that is not in its folded form.
///
/// # Errors
/// Store failures only; conflicts and refused addresses are in the summary
/// and logged as warnings.
pub async fn refold_stored(store: &dyn Store, clock: &dyn Clock) -> Result<RefoldSummary> {
    let mut summary = RefoldSummary::default();
    let mut after = None;
    loop {
        let users = store.users_with_unfolded_email(after, BATCH).await?;
        let Some(last) = users.last() else { break };
        after = Some(last.id);
        for user in users {
            let folded = match Email::parse(user.email.as_str()) {
                Ok(folded) if folded == user.email => continue,
                Ok(folded) => folded,
                Err(_) => {
                    summary.refused.push(user.id);
                    continue;
                }
            };
            let patch = UserPatch {
                email: Some(folded),
                ..Default::default()
            };
            match store.update_user(user.id, &patch, clock.now()).await {
                Ok(_) => summary.refolded += 1,
                Err(StoreError::Conflict { .. }) => summary.conflicts.push(user.id),
                // Deleted meanwhile: nothing left to fold.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if summary.refolded > 0 {
        tracing::info!(
            refolded = summary.refolded,
            "stored addresses folded by the current rules"
        );
    }
    for id in &summary.conflicts {
        tracing::warn!(user.id = %id, "address folds to another account's; left unchanged");
    }
    for id in &summary.refused {
        tracing::warn!(user.id = %id, "stored address is refused by the current rules; left unchanged");
    }
    Ok(summary)
}
