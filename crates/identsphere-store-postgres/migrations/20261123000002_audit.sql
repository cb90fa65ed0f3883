-- Append-only. No foreign keys: events outlive the users and organizations they name.
CREATE TABLE audit_events (
    id          UUID PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    action      TEXT NOT NULL,
    actor_id    UUID,
    org_id      UUID,
    target_id   TEXT,
    ip          TEXT,
    user_agent  TEXT,
    metadata    JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_org ON audit_events (org_id, id);
CREATE INDEX audit_events_actor ON audit_events (actor_id, id);
