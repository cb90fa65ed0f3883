//! One behaviour suite for every IdentSphere store.
//!
//! A backend's `tests/conformance.rs` calls [`conformance_tests!`] with an async
//! factory returning `Option<Arc<dyn Store>>` (a fresh, migrated, empty store per
//! test, or `None` to skip a backend that is not configured); each case becomes a
//! `#[tokio::test]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cases;
pub mod client_cases;
pub mod job_cases;
pub mod mfa_cases;
pub mod org_cases;
pub mod passkey_cases;

/// Expands every case into a test against the stores made by `$factory`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@in cases $factory;
            users_create_find_update,
            users_email_is_unique,
            stored_addresses_are_refolded,
            password_hash_is_replaced_only_if_unchanged,
            sessions_list_and_revoke_are_scoped_by_user,
            revoked_since_lists_recent_revocations,
            rotation_then_grace_then_reuse,
            rotation_refuses_dead_tokens_and_sessions,
            concurrent_rotation_with_grace_rotates_once,
            concurrent_rotation_without_grace_lets_one_win,
            racer_with_an_earlier_clock_is_reuse_without_grace,
            one_time_tokens_are_consumed_once,
            concurrent_one_time_consumption_has_one_winner,
            pending_links_are_found_and_ended,
            signing_keys_lifecycle,
            audit_events_filter_page_and_outlive_their_actors,
            change_feed_announces_revocations_and_user_changes
        );
        $crate::conformance_tests!(@in org_cases $factory;
            orgs_create_get_update_delete,
            org_mfa_requirement_is_stored_and_read_with_memberships,
            user_orgs_page_by_ascending_id,
            memberships_read_and_list,
            member_role_changes_stay_in_their_org,
            last_owner_cannot_leave,
            concurrent_owner_changes_never_leave_no_owner,
            removing_a_member_clears_their_active_org,
            custom_roles_lifecycle,
            deleting_an_org_cascades,
            invitations_replace_list_and_revoke,
            accepting_an_invitation,
            failed_acceptance_leaves_the_invitation_pending,
            concurrent_acceptance_has_one_winner,
            switching_org_keeps_other_refresh_tokens,
            api_keys_lifecycle,
            invitations_to_an_address_are_revoked_everywhere,
            api_keys_are_listed_by_creator
        );
        $crate::conformance_tests!(@in mfa_cases $factory;
            totp_enrollment_confirmation_and_steps,
            concurrent_totp_step_has_one_winner,
            recovery_codes_are_used_once_even_concurrently,
            mfa_challenges_expire_count_attempts_and_are_consumed_once,
            reauthentication_sets_auth_time_and_keeps_refresh_tokens,
            mfa_challenges_of_a_user_are_ended
        );
        $crate::conformance_tests!(@in passkey_cases $factory;
            passkeys_lifecycle_is_scoped_by_user,
            ceremonies_are_taken_once_by_kind_before_expiry,
            concurrent_ceremony_takes_have_one_winner
        );
        $crate::conformance_tests!(@in client_cases $factory;
            clients_are_found_by_key_listed_and_rotated,
            client_users_are_unique_per_client_and_scoped,
            machine_tokens_live_while_their_user_and_client_do,
            tokens_racing_a_user_deletion_are_never_orphaned
        );
        $crate::conformance_tests!(@in job_cases $factory;
            jobs_are_claimed_when_due_and_completed_by_their_lease,
            failed_jobs_are_retried_then_dead_lettered,
            expired_leases_make_jobs_due_again,
            concurrent_claims_never_share_a_job
        );
    };
    (@in $module:ident $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                match $factory().await {
                    Some(store) => $crate::$module::$case(store).await,
                    None => eprintln!("skipped: backend not configured"),
                }
            }
        )*
    };
}
