-- Durable jobs (work done after the answer). A job is due when it is not
-- dead, its run_at has come and it has no live lease; claiming sets the
-- lease and counts an attempt, completing deletes the row, and a dead job
-- stays (with its payload) until purged. Payloads may hold addresses.

CREATE TABLE jobs (
    id           BLOB PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    run_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_id     BLOB,
    locked_until INTEGER,
    last_error   TEXT,
    dead_at      INTEGER,
    created_at   INTEGER NOT NULL
);
-- The claim's scan: live jobs by due time.
CREATE INDEX jobs_due ON jobs (run_at) WHERE dead_at IS NULL;
CREATE INDEX jobs_dead ON jobs (dead_at) WHERE dead_at IS NOT NULL;
