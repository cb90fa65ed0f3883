//! Durable jobs: due order, leases, retries, dead letters and racing claimers.
use crate::cases::{now, S};
use chrono::{DateTime, Duration, Utc};
use identsphere_core::{ids::*, store::*};
use serde_json::json;
use std::collections::HashSet;

async fn enqueue(s: &S, kind: &str, n: u32, run_at: DateTime<Utc>) -> JobId {
    let id = JobId::new();
    s.jobs()
        .enqueue_job(&NewJob {
            id,
            kind: kind.into(),
            payload: json!({ "n": n, "email": "ann@example.com" }),
            run_at,
            created_at: now(),
        })
        .await
        .unwrap();
    id
}

async fn claim(s: &S, at: DateTime<Utc>, limit: u32) -> Vec<ClaimedJob> {
    s.jobs()
        .claim_jobs(LeaseId::new(), at, at + Duration::seconds(30), limit)
        .await
        .unwrap()
}

/// Due jobs come oldest first with their payload and one attempt; a job
/// scheduled later waits, a leased one is not handed out again, and only
/// the lease holder completes (deletes) it.
pub async fn jobs_are_claimed_when_due_and_completed_by_their_lease(s: S) {
    let t = now();
    let later = enqueue(&s, "test.later", 3, t + Duration::minutes(5)).await;
    let second = enqueue(&s, "test.due", 2, t - Duration::seconds(1)).await;
    let first = enqueue(&s, "test.due", 1, t - Duration::seconds(2)).await;

    let claimed = claim(&s, t, 10).await;
    let ids: Vec<JobId> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![first, second]);
    assert_eq!(claimed[0].kind, "test.due");
    assert_eq!(
        claimed[0].payload,
        json!({ "n": 1, "email": "ann@example.com" })
    );
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(claimed[0].locked_until, t + Duration::seconds(30));
    assert_eq!(claimed[0].lease, claimed[1].lease, "one claim, one lease");
    assert!(claim(&s, t, 10).await.is_empty(), "leased jobs are not due");

    let counts = s.jobs().count_jobs().await.unwrap();
    let pending: Vec<(&str, u64, u64)> = counts
        .iter()
        .map(|c| (c.kind.as_str(), c.pending, c.dead))
        .collect();
    assert_eq!(pending, vec![("test.due", 2, 0), ("test.later", 1, 0)]);

    let job = &claimed[0];
    assert!(!s.jobs().complete_job(job.id, LeaseId::new()).await.unwrap());
    assert!(s.jobs().complete_job(job.id, job.lease).await.unwrap());
    assert!(!s.jobs().complete_job(job.id, job.lease).await.unwrap());

    // Five minutes on, the lease of the second has run out too.
    let at_five = claim(&s, t + Duration::minutes(5), 10).await;
    assert_eq!(
        at_five.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![second, later]
    );
}

/// A failure reschedules the job without a lease; with no retry time it is
/// dead-lettered: kept, counted, listed, never claimed, purged later.
pub async fn failed_jobs_are_retried_then_dead_lettered(s: S) {
    let t = now();
    let id = enqueue(&s, "test.flaky", 1, t).await;
    let job = claim(&s, t, 1).await.remove(0);
    let retry = t + Duration::seconds(4);
    assert!(!s
        .jobs()
        .fail_job(id, LeaseId::new(), "not mine", Some(retry), t)
        .await
        .unwrap());
    assert!(s
        .jobs()
        .fail_job(id, job.lease, "smtp down", Some(retry), t)
        .await
        .unwrap());
    assert!(claim(&s, t + Duration::seconds(3), 1).await.is_empty());
    let again = claim(&s, retry, 1).await.remove(0);
    assert_eq!((again.id, again.attempts), (id, 2));
    assert_ne!(again.lease, job.lease);
    // The first claimer's lease is over: it can no longer touch the job.
    assert!(!s.jobs().complete_job(id, job.lease).await.unwrap());

    assert!(s
        .jobs()
        .fail_job(id, again.lease, "still down", None, retry)
        .await
        .unwrap());
    assert!(claim(&s, t + Duration::days(1), 10).await.is_empty());
    let counts = s.jobs().count_jobs().await.unwrap();
    assert_eq!(
        counts,
        vec![JobCounts {
            kind: "test.flaky".into(),
            pending: 0,
            dead: 1
        }]
    );
    let dead = s.jobs().list_dead_jobs(10).await.unwrap();
    assert_eq!(
        dead,
        vec![DeadJob {
            id,
            kind: "test.flaky".into(),
            attempts: 2,
            last_error: Some("still down".into()),
            dead_at: retry,
        }]
    );
    assert_eq!(s.jobs().purge_dead_jobs(retry).await.unwrap(), 0);
    assert_eq!(
        s.jobs()
            .purge_dead_jobs(retry + Duration::milliseconds(1))
            .await
            .unwrap(),
        1
    );
    assert!(s.jobs().count_jobs().await.unwrap().is_empty());
}

/// A job whose lease ran out (its instance died) is due again, with one
/// more attempt, and the old lease can neither complete nor fail it.
pub async fn expired_leases_make_jobs_due_again(s: S) {
    let t = now();
    let id = enqueue(&s, "test.crash", 1, t).await;
    let first = claim(&s, t, 1).await.remove(0);
    assert!(claim(&s, t + Duration::seconds(29), 1).await.is_empty());
    let second = claim(&s, t + Duration::seconds(30), 1).await.remove(0);
    assert_eq!((second.id, second.attempts), (id, 2));
    assert!(!s
        .jobs()
        .fail_job(id, first.lease, "late", Some(t), t)
        .await
        .unwrap());
    assert!(!s.jobs().complete_job(id, first.lease).await.unwrap());
    assert!(s.jobs().complete_job(id, second.lease).await.unwrap());
    assert!(s.jobs().count_jobs().await.unwrap().is_empty());
}

/// Claimers racing over the same due jobs never get the same one, and
/// together get every one.
pub async fn concurrent_claims_never_share_a_job(s: S) {
    let t = now();
    let mut all = HashSet::new();
    for n in 0..60 {
        all.insert(enqueue(&s, "test.race", n, t).await);
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = claim(&s, t, 3).await;
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|j| j.id));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for task in futures::future::join_all(tasks).await {
        for id in task.unwrap() {
            total += 1;
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(total, 60);
    assert_eq!(seen, all);
}
