//! A `metrics` recorder for the test binary: counters by name and labels.
//!
//! It is global and tests run in parallel, so tests compare a counter before
//! and after what they do and assert at least their own increments.
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

#[derive(Default)]
struct Counters(Mutex<HashMap<String, u64>>);

struct Cell {
    name: String,
    counters: &'static Counters,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        *self
            .counters
            .0
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.counters
            .0
            .lock()
            .unwrap()
            .insert(self.name.clone(), value);
    }
}

struct TestRecorder(&'static Counters);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Cell {
            name: render(key.name(), key.labels().map(|l| (l.key(), l.value()))),
            counters: self.0,
        }))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// `name{a=x,b=y}` with the labels sorted.
fn render<'a>(name: &str, labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut labels: Vec<String> = labels.map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

fn counters() -> &'static Counters {
    static COUNTERS: OnceLock<&'static Counters> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        let counters: &'static Counters = Box::leak(Box::default());
        metrics::set_global_recorder(TestRecorder(counters))
            .expect("no other metrics recorder in the test binary");
        counters
    })
}

/// Installs the recorder (idempotent); call before the counted work.
pub fn install() {
    counters();
}

/// The counter `name` with exactly `labels`, 0 when never incremented.
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let key = render(name, labels.iter().copied());
    counters().0.lock().unwrap().get(&key).copied().unwrap_or(0)
}
