//! One behaviour suite for every IdentSphere store.
//!
//! A backend's `tests/conformance.rs` calls [`conformance_tests!`] with an async
//! factory returning `Option<Arc<dyn Store>>` (a fresh, migrated, empty store per
//! test, or `None` to skip a backend that is not configured); each case becomes a
//! `#[tokio::test]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cases;

/// Expands every case into a test against the stores made by `$factory`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@cases $factory;
            users_create_find_update,
            users_email_is_unique,
            sessions_list_and_revoke_are_scoped_by_user,
            revoked_since_lists_recent_revocations,
            rotation_then_grace_then_reuse,
            rotation_refuses_dead_tokens_and_sessions,
            concurrent_rotation_with_grace_rotates_once,
            concurrent_rotation_without_grace_lets_one_win,
            racer_with_an_earlier_clock_is_reuse_without_grace,
            one_time_tokens_are_consumed_once,
            concurrent_one_time_consumption_has_one_winner,
            signing_keys_lifecycle,
            audit_events_filter_page_and_outlive_their_actors,
            revocation_feed_announces_revocations
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                match $factory().await {
                    Some(store) => $crate::cases::$case(store).await,
                    None => eprintln!("skipped: backend not configured"),
                }
            }
        )*
    };
}
