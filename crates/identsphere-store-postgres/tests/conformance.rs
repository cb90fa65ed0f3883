//! The shared store suite on PostgreSQL: a fresh schema per test.
//!
//! Runs when `IDENTSPHERE_TEST_DATABASE_URL` is set (CI always sets it); fails,
//! rather than skips, when it is set but the server cannot be reached.
#![allow(clippy::expect_used)] // test setup fails loudly

use identsphere_core::store::Store;
use identsphere_store_postgres::PostgresStore;
use std::sync::Arc;

async fn fresh() -> Option<Arc<dyn Store>> {
    let url = std::env::var("IDENTSPHERE_TEST_DATABASE_URL").ok()?;
    let schema = format!("conformance_{}", uuid::Uuid::now_v7().simple());
    let store = PostgresStore::connect_in_schema(&url, &schema, 20)
        .await
        .expect("IDENTSPHERE_TEST_DATABASE_URL is set but PostgreSQL is unreachable");
    store.migrate().await.expect("migrate");
    Some(Arc::new(store))
}

identsphere_store_conformance::conformance_tests!(fresh);
