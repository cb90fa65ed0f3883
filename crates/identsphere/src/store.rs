//! Picks the store by URL scheme.
use crate::{config::AuthServiceConfig, ConfigError, Error};
use identsphere_core::store::Store;
use secrecy::ExposeSecret;
use std::sync::Arc;

pub(crate) async fn connect(config: &AuthServiceConfig) -> Result<Arc<dyn Store>, Error> {
    let url = config.database_url.expose_secret();
    if url.starts_with("sqlite:") {
        #[cfg(feature = "sqlite")]
        return Ok(Arc::new(
            identsphere_store_sqlite::SqliteStore::connect(url).await?,
        ));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        #[cfg(feature = "postgres")]
        {
            use identsphere_store_postgres::PostgresStore;
            let max = config.database_max_connections;
            let store = match &config.database_schema {
                Some(schema) => PostgresStore::connect_in_schema(url, schema, max).await?,
                None => PostgresStore::connect(url, max).await?,
            };
            return Ok(Arc::new(store));
        }
    }
    Err(ConfigError {
        field: "database_url",
        message: "no store for this URL scheme is compiled in".into(),
    }
    .into())
}
