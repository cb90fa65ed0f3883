//! The job worker on a real store: retries, dead letters, panics, wake-ups,
//! clean shutdown, and what `/readyz` says. The app's own worker is shut
//! down first, so that only the test's worker, with the test's handler,
//! claims the jobs.
use crate::support::{both_stores, Backend, TestApp};
use identsphere::core::{
    jobs::{JobError, JobHandler, JobQueue, JobSettings, JobWorker, WorkerState},
    store::JobCounts,
    SystemClock,
};
use serde_json::{json, Value};
use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

/// Fails (or panics) its first calls as told, then succeeds; records what it saw.
#[derive(Default)]
struct Scripted {
    calls: AtomicU32,
    failures: Mutex<Vec<JobError>>,
    panics: AtomicU32,
    slow: Option<Duration>,
    seen: Mutex<Vec<Value>>,
}

#[async_trait::async_trait]
impl JobHandler for Scripted {
    async fn run(&self, _kind: &str, payload: &Value) -> Result<(), JobError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(d) = self.slow {
            tokio::time::sleep(d).await;
        }
        if self.panics.load(Ordering::SeqCst) > 0 {
            self.panics.fetch_sub(1, Ordering::SeqCst);
            panic!("scripted panic");
        }
        if let Some(e) = self.failures.lock().unwrap().pop() {
            return Err(e);
        }
        self.seen.lock().unwrap().push(payload.clone());
        Ok(())
    }
}

fn fast() -> JobSettings {
    JobSettings {
        poll_interval: Duration::from_millis(50),
        backoff_base: chrono::Duration::milliseconds(20),
        max_attempts: 3,
        ..JobSettings::default()
    }
}

async fn quiet_app(backend: Backend) -> Option<(TestApp, JobQueue)> {
    let app = TestApp::spawn(backend).await?;
    app.service.shutdown().await;
    let store = app.service.state().identity().store().clone();
    let queue = JobQueue::new(store, Arc::new(SystemClock));
    Some((app, queue))
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not within 5 s");
}

async fn counts(queue: &JobQueue) -> Vec<JobCounts> {
    queue.store().jobs().count_jobs().await.unwrap()
}

async fn failed_jobs_are_retried_until_they_succeed(backend: Backend) {
    let Some((_app, queue)) = quiet_app(backend).await else {
        return;
    };
    let handler = Arc::new(Scripted {
        failures: Mutex::new(vec![
            JobError::Retry("second failure".into()),
            JobError::Retry("first failure".into()),
        ]),
        ..Default::default()
    });
    let worker = JobWorker::start(queue.clone(), handler.clone(), fast());
    queue
        .enqueue("test.flaky", &json!({ "n": 1 }))
        .await
        .unwrap();
    eventually("the third attempt", || {
        handler.seen.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(handler.calls.load(Ordering::SeqCst), 3);
    assert_eq!(handler.seen.lock().unwrap()[0], json!({ "n": 1 }));
    worker.shutdown().await;
    assert!(counts(&queue).await.is_empty(), "a finished job is deleted");
}

async fn jobs_are_dead_lettered_after_the_limit_or_at_once_when_permanent(backend: Backend) {
    let Some((_app, queue)) = quiet_app(backend).await else {
        return;
    };
    let failures = (0..4)
        .map(|i| JobError::Retry(format!("failure {i}")))
        .chain([JobError::Permanent("bad payload".into())])
        .collect();
    let handler = Arc::new(Scripted {
        failures: Mutex::new(failures),
        ..Default::default()
    });
    let worker = JobWorker::start(queue.clone(), handler.clone(), fast());
    queue.enqueue("test.doomed", &json!({})).await.unwrap();
    let dead = || async { counts(&queue).await.iter().map(|c| c.dead).sum::<u64>() };
    for _ in 0..200 {
        if dead().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The permanent failure (popped first) dead-letters it on the first attempt.
    assert_eq!(dead().await, 1);
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
    queue.enqueue("test.doomed", &json!({})).await.unwrap();
    for _ in 0..200 {
        if dead().await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(dead().await, 2);
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        1 + 3,
        "three attempts"
    );
    let listed = queue.store().jobs().list_dead_jobs(10).await.unwrap();
    assert_eq!(listed[0].attempts, 3);
    assert_eq!(listed[0].last_error.as_deref(), Some("failure 1"));
    assert_eq!(listed[1].last_error.as_deref(), Some("bad payload"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        4,
        "dead jobs never run again"
    );
    worker.shutdown().await;
}

async fn a_panicking_handler_is_a_failed_attempt(backend: Backend) {
    let Some((_app, queue)) = quiet_app(backend).await else {
        return;
    };
    let handler = Arc::new(Scripted {
        panics: AtomicU32::new(1),
        ..Default::default()
    });
    let worker = JobWorker::start(queue.clone(), handler.clone(), fast());
    queue
        .enqueue("test.panics", &json!({ "n": 2 }))
        .await
        .unwrap();
    eventually("the retry after the panic", || {
        handler.seen.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(handler.calls.load(Ordering::SeqCst), 2);
    assert_eq!(worker.state(), WorkerState::Running);
    worker.shutdown().await;
}

async fn enqueueing_wakes_the_worker_at_once(backend: Backend) {
    let Some((_app, queue)) = quiet_app(backend).await else {
        return;
    };
    let handler = Arc::new(Scripted::default());
    let settings = JobSettings {
        poll_interval: Duration::from_secs(60),
        ..fast()
    };
    let worker = JobWorker::start(queue.clone(), handler.clone(), settings);
    // Let the worker find the queue empty and go to sleep for a minute.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    queue.enqueue("test.wake", &json!({})).await.unwrap();
    eventually("the job", || handler.seen.lock().unwrap().len() == 1).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    worker.shutdown().await;
}

async fn shutdown_finishes_running_jobs_and_claims_no_more(backend: Backend) {
    let Some((_app, queue)) = quiet_app(backend).await else {
        return;
    };
    let handler = Arc::new(Scripted {
        slow: Some(Duration::from_millis(400)),
        ..Default::default()
    });
    let worker = JobWorker::start(queue.clone(), handler.clone(), fast());
    queue.enqueue("test.slow", &json!({})).await.unwrap();
    eventually("the job to start", || {
        handler.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    worker.shutdown().await;
    assert_eq!(worker.state(), WorkerState::Stopped);
    assert_eq!(
        handler.seen.lock().unwrap().len(),
        1,
        "the running job finished"
    );
    assert!(counts(&queue).await.is_empty());
    queue.enqueue("test.slow", &json!({})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        1,
        "nothing after shutdown"
    );
    assert_eq!(counts(&queue).await[0].pending, 1, "it waits in the store");
}

async fn readyz_reports_the_worker_and_the_queue(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ready = app.get_json("/readyz").await;
    assert_eq!(
        ready["checks"]["jobs"],
        json!({ "worker": "running", "pending": 0, "dead": 0 })
    );
    app.service.shutdown().await;
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["checks"]["jobs"]["worker"], "stopped");
}

both_stores!(
    failed_jobs_are_retried_until_they_succeed,
    jobs_are_dead_lettered_after_the_limit_or_at_once_when_permanent,
    a_panicking_handler_is_a_failed_attempt,
    enqueueing_wakes_the_worker_at_once,
    shutdown_finishes_running_jobs_and_claims_no_more,
    readyz_reports_the_worker_and_the_queue,
);
