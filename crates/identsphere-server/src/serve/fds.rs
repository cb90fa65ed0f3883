//! The connection limit against the process's open-file limit: every client
//! socket is a file descriptor, and so is every database, Redis and mail
//! connection. A connection limit above what the descriptors allow would let
//! clients starve the database of connections (and make `accept` fail with
//! `EMFILE`), so the limit is lowered to fit, with a warning.
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept for everything but client sockets and the database:
/// standard streams, the listener, the runtime's epoll and eventfd, Redis,
/// SMTP, the metrics listener and files opened at start.
const RESERVED: u64 = 64;

/// Descriptors per database connection: SQLite holds the database, its WAL
/// and its shared-memory file; PostgreSQL one socket.
const PER_DATABASE_CONNECTION: u64 = 3;

/// SQLite's pools (one writer, eight readers, a checkpointer) do not follow
/// `db_max_connections`.
const SQLITE_CONNECTIONS: u64 = 10;

/// The outcome of [`fit_to_fd_limit`].
#[derive(Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// The connection limit to serve with.
    pub max_connections: usize,
    /// The open-file limit it was measured against, if there is one.
    pub nofile: Option<u64>,
    /// Said at start when the limit had to be lowered.
    pub warning: Option<String>,
}

/// Raises the soft open-file limit to the hard one (as Go's runtime does: the
/// soft default of 1024 is a leftover of `select`), then fits `requested`
/// connections, plus `refusal_slots`, next to `db_connections` database
/// connections.
///
/// # Errors
/// When the limit leaves no room for a single client connection.
pub fn fit_to_fd_limit(
    requested: usize,
    refusal_slots: usize,
    db_connections: u32,
) -> Result<FdBudget, String> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        // Not fatal: some sandboxes refuse it; the soft limit is then used.
        let _ = setrlimit(Resource::Nofile, raised);
    }
    let nofile = getrlimit(Resource::Nofile).current;
    fit(requested, refusal_slots, db_connections, nofile)
}

/// [`fit_to_fd_limit`] without the system calls (`None`: unlimited).
pub(super) fn fit(
    requested: usize,
    refusal_slots: usize,
    db_connections: u32,
    nofile: Option<u64>,
) -> Result<FdBudget, String> {
    let Some(nofile) = nofile else {
        return Ok(FdBudget {
            max_connections: requested,
            nofile: None,
            warning: None,
        });
    };
    let db = u64::from(db_connections).max(SQLITE_CONNECTIONS) * PER_DATABASE_CONNECTION;
    let reserved = RESERVED + db + refusal_slots as u64;
    let room = nofile.saturating_sub(reserved);
    if room == 0 {
        return Err(format!(
            "the open-file limit ({nofile}) leaves no descriptor for client connections \
             ({reserved} are kept for the database, Redis, mail and refusals); raise it \
             (`ulimit -n`, systemd LimitNOFILE=, docker --ulimit nofile=)"
        ));
    }
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if requested <= room {
        return Ok(FdBudget {
            max_connections: requested,
            nofile: Some(nofile),
            warning: None,
        });
    }
    Ok(FdBudget {
        max_connections: room,
        nofile: Some(nofile),
        warning: Some(format!(
            "IDENTSPHERE_MAX_CONNECTIONS={requested} lowered to {room}: the open-file limit is \
             {nofile} and {reserved} descriptors are kept for the database, Redis, mail and \
             refusals; raise the limit (`ulimit -n`, systemd LimitNOFILE=) to serve more"
        )),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_that_fits_is_kept() {
        let budget = fit(4096, 32, 16, Some(20_000)).unwrap();
        assert_eq!(budget.max_connections, 4096);
        assert_eq!(budget.warning, None);
        assert_eq!(fit(4096, 32, 16, None).unwrap().max_connections, 4096);
    }

    #[test]
    fn a_limit_past_the_descriptors_is_lowered_with_a_warning() {
        // 1024 - 64 reserved - 16 PostgreSQL connections × 3 - 32 refusal slots.
        let budget = fit(4096, 32, 16, Some(1024)).unwrap();
        assert_eq!(budget.max_connections, 1024 - 64 - 48 - 32);
        let warning = budget.warning.unwrap();
        assert!(
            warning.starts_with("IDENTSPHERE_MAX_CONNECTIONS=4096 lowered to 880"),
            "{warning}"
        );
        // A small pool still counts as SQLite's ten connections.
        let budget = fit(4096, 32, 1, Some(1024)).unwrap();
        assert_eq!(budget.max_connections, 1024 - 64 - 30 - 32);
    }

    #[test]
    fn no_room_at_all_refuses_to_start() {
        let e = fit(10, 32, 16, Some(100)).unwrap_err();
        assert!(e.contains("open-file limit (100)"), "{e}");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        fit_to_fd_limit(1, 0, 1).unwrap();
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(limit.current, limit.maximum);
    }
}
