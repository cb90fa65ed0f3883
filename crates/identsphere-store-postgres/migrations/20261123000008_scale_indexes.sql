-- Indexes found missing on a seeded database (docs/query-plans.md).

-- Deleting an organization clears it from its sessions (ON DELETE SET NULL):
-- without an index on sessions.org_id, each deletion scans every session.
CREATE INDEX sessions_org ON sessions (org_id) WHERE org_id IS NOT NULL;

-- A login that needs a second factor first deletes the expired challenges.
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);
