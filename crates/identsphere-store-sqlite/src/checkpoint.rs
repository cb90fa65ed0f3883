//! WAL checkpoints beside the writer.
//!
//! In WAL mode a commit appends to the `-wal` file; a checkpoint copies those
//! pages back into the database file and syncs it. By default SQLite runs that
//! checkpoint inside whichever commit pushes the WAL past 1,000 pages, so under
//! steady writes (refresh rotation) one request every ~130 ms paid ~12 ms of
//! copying and fsync while holding the only writer connection, and every write
//! queued behind it waited too. That was the tail of write-heavy requests.
//!
//! Here a connection of its own runs a PASSIVE checkpoint every
//! [`INTERVAL`]. PASSIVE never takes the write lock and never waits for
//! readers: the writer keeps committing while pages are copied. The writer's
//! own automatic checkpoint stays as a backstop at
//! [`WRITER_AUTOCHECKPOINT_PAGES`], reached only if this task falls far behind.
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteSynchronous},
    ConnectOptions, SqliteConnection,
};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the WAL is copied back. At ~1,000 rotations/s a tick finds a few
/// hundred pages, well under the writer's backstop.
const INTERVAL: Duration = Duration::from_millis(100);

/// The writer checkpoints by itself only when the WAL reaches this many pages
/// (40 MB of 4 KiB pages): the background task normally gets there first.
pub(crate) const WRITER_AUTOCHECKPOINT_PAGES: &str = "10000";

/// After a checkpoint resets the WAL, its file is truncated to this size, so a
/// burst does not leave a large file behind.
pub(crate) const WAL_SIZE_LIMIT_BYTES: &str = "67108864";

/// The running checkpoint task; dropping it stops the task and closes its
/// connection.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    task: JoinHandle<()>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Checkpointer {
    /// Opens the checkpoint connection and starts the task.
    pub(crate) async fn start(options: SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        // Same durability as the writer: with `synchronous=NORMAL` in WAL mode
        // the checkpoint is where the database file is synced.
        let mut conn = options
            .synchronous(SqliteSynchronous::Normal)
            .connect()
            .await?;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = checkpoint(&mut conn).await {
                    // Another process checkpointing or a full disk: the writer's
                    // own checkpoint remains, so this is worth a warning only.
                    tracing::warn!(%error, "background WAL checkpoint failed");
                }
            }
        });
        Ok(Self { task })
    }
}

async fn checkpoint(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    // One row: (busy, pages in the WAL, pages copied back).
    let (busy, wal, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await?;
    tracing::trace!(busy, wal, copied, "WAL checkpoint");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // test setup fails loudly
mod tests {
    use crate::SqliteStore;

    /// In WAL mode the database file grows only when a checkpoint copies pages
    /// into it. The writer's own checkpoint waits for 10,000 pages, so a file
    /// that grows after a few hundred pages were written shows the background
    /// checkpointer at work.
    #[tokio::test]
    async fn commits_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wal.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("open");
        let size = || std::fs::metadata(&path).expect("db file").len();
        sqlx::query("CREATE TABLE filler (data BLOB)")
            .execute(&store.writer)
            .await
            .expect("create");
        tokio::time::sleep(super::INTERVAL * 3).await;
        let before = size();
        for _ in 0..50 {
            sqlx::query("INSERT INTO filler VALUES (randomblob(16000))")
                .execute(&store.writer)
                .await
                .expect("insert");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while size() < before + 800_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not checkpointed into the database file ({} → {} bytes)",
                before,
                size()
            );
            tokio::time::sleep(super::INTERVAL).await;
        }
    }
}
