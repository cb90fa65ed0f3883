//! A closed-loop load generator: `connections` workers, each with its own
//! HTTP connection, send the next request as soon as the last one answered,
//! until the deadline. Latency is recorded per request in an HDR histogram.
use hdrhistogram::Histogram;
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

/// What one run measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Measured {
    /// Requests answered with a 2xx.
    pub ok: u64,
    /// Requests that failed or answered anything else.
    pub errors: u64,
    /// Successful requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

/// One HTTP client per worker, holding a single keep-alive connection.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// How hard to push.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent connections.
    pub connections: usize,
    /// How long.
    pub duration: Duration,
    /// Requests per second over all connections; `None`: as fast as the
    /// server answers. With a rate, latency counts from when each request
    /// was due, so a stalled server cannot hide its queue (no coordinated
    /// omission).
    pub rate: Option<f64>,
}

/// Runs `load.connections` workers. Each worker owns a state made by `init`
/// (a client, tokens) and calls `step` with it; `step` answers whether the
/// request succeeded.
pub async fn run<S, I, IF, F, SF>(load: Load, init: I, step: F) -> Measured
where
    S: Send + 'static,
    I: Fn(usize) -> IF,
    IF: Future<Output = S>,
    F: Fn(S) -> SF + Send + Sync + 'static,
    SF: Future<Output = (S, bool)> + Send,
{
    let step = Arc::new(step);
    let mut states = Vec::with_capacity(load.connections);
    for i in 0..load.connections {
        states.push(init(i).await);
    }
    let start = Instant::now();
    let deadline = start + load.duration;
    // Each paced worker sends every `interval`, the workers staggered.
    let interval = load
        .rate
        .map(|r| Duration::from_secs_f64(load.connections as f64 / r));
    let workers: Vec<_> = states
        .into_iter()
        .enumerate()
        .map(|(i, mut state)| {
            let step = Arc::clone(&step);
            let mut due =
                start + interval.map_or(Duration::ZERO, |d| d * i as u32 / load.connections as u32);
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!());
                let (mut ok, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let t = match interval {
                        Some(every) => {
                            tokio::time::sleep_until(due.into()).await;
                            let t = due;
                            due += every;
                            t
                        }
                        None => Instant::now(),
                    };
                    let (next, success) = step(state).await;
                    state = next;
                    let micros = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = hist.record(micros.max(1));
                    if success {
                        ok += 1;
                    } else {
                        errors += 1;
                    }
                }
                (hist, ok, errors)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!());
    let mut m = Measured::default();
    for w in workers {
        if let Ok((hist, ok, errors)) = w.await {
            let _ = all.add(&hist);
            m.ok += ok;
            m.errors += errors;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    m.rps = m.ok as f64 / secs;
    m.p50_ms = all.value_at_quantile(0.5) as f64 / 1000.0;
    m.p99_ms = all.value_at_quantile(0.99) as f64 / 1000.0;
    m
}
