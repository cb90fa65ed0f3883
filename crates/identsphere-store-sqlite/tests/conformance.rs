//! The shared store suite on SQLite: a fresh database file per test.
#![allow(clippy::expect_used)] // test setup fails loudly

use identsphere_core::store::Store;
use identsphere_store_sqlite::SqliteStore;
use std::sync::Arc;

async fn fresh() -> Option<Arc<dyn Store>> {
    // The directory lives as long as the test process; each test gets its own file.
    let dir = Box::leak(Box::new(tempfile::tempdir().expect("temp dir")));
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = SqliteStore::connect(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate");
    Some(Arc::new(store))
}

identsphere_store_conformance::conformance_tests!(fresh);
