#!/usr/bin/env bash
# The plans of IdentSphere's hot PostgreSQL queries (docs/query-plans.md):
# EXPLAIN (ANALYZE, BUFFERS) of each, with the SQL text of
# crates/identsphere-store-postgres/src/*.rs and parameters taken from the
# data (a seeded database: `identsphere-bench seed`). Writes run inside a
# transaction that is rolled back.
#
#   bench/explain.sh postgres://postgres@127.0.0.1:5432/identsphere_bench_seeded
#   bench/explain.sh URL generic     # the generic plans, as a prepared statement
#                                    # gets after five executions if they cost no more
#   bench/explain.sh URL custom | grep -E '^==|Scan|Trigger'    # the gist
#
# The server prepares every statement (sqlx caches them per connection), so
# each query is PREPAREd here too and run with EXECUTE.
set -euo pipefail
url=${1:?usage: bench/explain.sh DATABASE_URL [custom|generic]}
case ${2:-custom} in
  custom) mode=force_custom_plan ;;
  generic) mode=force_generic_plan ;;
  *) echo "plan mode: custom or generic" >&2; exit 2 ;;
esac

psql "$url" -X -q -v ON_ERROR_STOP=1 -v mode="$mode" <<'SQL'
\pset format unaligned
\pset tuples_only on
\pset footer off
SET plan_cache_mode = :mode;
\echo plan_cache_mode :mode

-- Parameters: the owner of an organization in the middle of the id range
-- who has a live session, that session and its live refresh token, and
-- rows of the other tables chosen the same way.
SELECT o.id AS org_id, m.user_id, u.email, s.id AS session_id
FROM organizations o
JOIN memberships m ON m.org_id = o.id AND m.role = 'owner'
JOIN users u ON u.id = m.user_id
JOIN LATERAL (SELECT id FROM sessions s WHERE s.user_id = m.user_id AND s.revoked_at IS NULL
              AND s.expires_at > now() ORDER BY created_at DESC LIMIT 1) s ON TRUE
WHERE o.id >= (SELECT id FROM organizations ORDER BY id
               OFFSET (SELECT count(*) / 2 FROM organizations) LIMIT 1)
ORDER BY o.id LIMIT 1 \gset
SELECT encode(token_hash, 'hex') AS rt_hash FROM refresh_tokens
WHERE session_id = :'session_id' AND retired_at IS NULL LIMIT 1 \gset
SELECT encode(key_hash, 'hex') AS key_hash, id AS key_id FROM api_keys
WHERE revoked_at IS NULL AND id >= (SELECT id FROM api_keys ORDER BY id
                                    OFFSET (SELECT count(*) / 2 FROM api_keys) LIMIT 1)
ORDER BY id LIMIT 1 \gset
SELECT encode(token_hash, 'hex') AS inv_hash, email AS inv_email, org_id AS inv_org FROM invitations
WHERE accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now() ORDER BY id DESC LIMIT 1 \gset
SELECT encode(token_hash, 'hex') AS ott_hash, user_id AS ott_user FROM one_time_tokens
WHERE purpose = 'reset_password' AND consumed_at IS NULL ORDER BY id DESC LIMIT 1 \gset
SELECT user_id AS totp_user FROM totp_authenticators WHERE confirmed_at IS NOT NULL
ORDER BY user_id OFFSET (SELECT count(*) / 2 FROM totp_authenticators) LIMIT 1 \gset
SELECT encode(credential_id, 'hex') AS passkey_cred, user_id AS passkey_user FROM passkeys
ORDER BY id OFFSET (SELECT count(*) / 2 FROM passkeys) LIMIT 1 \gset
\echo user :user_id org :org_id session :session_id

\echo
\echo == login: user by email (find_user_by_email)
PREPARE q(text) AS SELECT * FROM users WHERE email = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'email');
DEALLOCATE q;

\echo == login: TOTP on? (get_totp; also the MFA steps)
PREPARE q(uuid) AS SELECT * FROM totp_authenticators WHERE user_id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'totp_user');
DEALLOCATE q;

\echo == GET /v1/users/me: user by id (get_user)
PREPARE q(uuid) AS SELECT * FROM users WHERE id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'user_id');
DEALLOCATE q;

\echo == token verify with the revocation feed down: session by id (get_session)
PREPARE q(uuid) AS SELECT * FROM sessions WHERE id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'session_id');
DEALLOCATE q;

\echo == revocation cache start and feed reconnect (revoked_since, access-token lifetime back)
PREPARE q(timestamptz) AS SELECT id FROM sessions WHERE revoked_at >= $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now() - interval '1 hour');
DEALLOCATE q;

\echo == API key: by hash (find_api_key)
PREPARE q(bytea) AS SELECT * FROM api_keys WHERE key_hash = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(decode(:'key_hash', 'hex'));
DEALLOCATE q;

\echo == API key: last use (touch_api_key)
BEGIN;
PREPARE q(timestamptz, uuid) AS UPDATE api_keys SET last_used_at = $1 WHERE id = $2;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now(), :'key_id');
DEALLOCATE q;
ROLLBACK;

\echo == refresh: retire the presented token, extend its session, insert the successor (rotate_refresh_token, one statement)
BEGIN;
PREPARE q(timestamptz, bytea, timestamptz, uuid, bytea, timestamptz) AS
WITH retired AS (
    UPDATE refresh_tokens t SET retired_at = $1
    FROM sessions s
    WHERE t.token_hash = $2 AND t.retired_at IS NULL AND t.expires_at > $1
      AND s.id = t.session_id AND s.revoked_at IS NULL AND s.expires_at > $1
    RETURNING t.session_id
), extended AS (
    UPDATE sessions SET last_seen_at = $1, expires_at = $3
    FROM retired
    WHERE sessions.id = retired.session_id
      AND sessions.revoked_at IS NULL AND sessions.expires_at > $1
    RETURNING sessions.*
), successor AS (
    INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
    SELECT $4, id, $5, $6, $3 FROM extended
)
SELECT * FROM extended;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now(), decode(:'rt_hash', 'hex'), now() + interval '30 days', gen_random_uuid(), sha256('explain'), now());
DEALLOCATE q;
ROLLBACK;

\echo == login: insert the first refresh token of a session (insert_refresh)
BEGIN;
PREPARE q(uuid, uuid, bytea, timestamptz, timestamptz) AS INSERT INTO refresh_tokens
  (id, session_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(gen_random_uuid(), :'session_id', sha256('explain'), now(), now() + interval '30 days');
DEALLOCATE q;
ROLLBACK;

\echo == refresh: a retired token presented again (rotate_refresh_token, reuse path)
PREPARE q(bytea) AS SELECT session_id, retired_at FROM refresh_tokens WHERE token_hash = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(decode(:'rt_hash', 'hex'));
DEALLOCATE q;

\echo == session by refresh token (find_session_by_refresh_token)
PREPARE q(bytea) AS SELECT s.id, s.user_id, s.created_at, s.last_seen_at, s.expires_at, s.revoked_at, s.ip,
  s.user_agent, s.auth_time, s.amr, s.org_id FROM sessions s JOIN refresh_tokens r ON r.session_id = s.id
  WHERE r.token_hash = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(decode(:'rt_hash', 'hex'));
DEALLOCATE q;

\echo == token issue / organization access: membership (get_membership)
PREPARE q(uuid, uuid) AS SELECT m.*, r.permissions AS role_permissions, o.require_mfa AS org_require_mfa
  FROM memberships m JOIN organizations o ON o.id = m.org_id
  LEFT JOIN roles r ON r.org_id = m.org_id AND r.name = m.role
  WHERE m.org_id = $1 AND m.user_id = $2;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id', :'user_id');
DEALLOCATE q;

\echo == sessions list (list_active_sessions)
PREPARE q(uuid, timestamptz) AS SELECT * FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
  ORDER BY created_at DESC, id DESC;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'user_id', now());
DEALLOCATE q;

\echo == revoke the other sessions (revoke_sessions, AllExcept)
BEGIN;
PREPARE q(timestamptz, uuid, uuid) AS UPDATE sessions SET revoked_at = $1
  WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3 RETURNING id;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now(), :'user_id', :'session_id');
DEALLOCATE q;
ROLLBACK;

\echo == organizations of a user (list_user_orgs, first page)
PREPARE q(uuid, uuid, bigint) AS SELECT o.*, m.role, m.joined_at FROM memberships m
  JOIN organizations o ON o.id = m.org_id
  WHERE m.user_id = $1 AND ($2::uuid IS NULL OR m.org_id > $2) ORDER BY m.org_id LIMIT $3;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'user_id', NULL, 50);
DEALLOCATE q;

\echo == organization by id (get_org)
PREPARE q(uuid) AS SELECT * FROM organizations WHERE id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id');
DEALLOCATE q;

\echo == members of an organization (list_members, first page)
PREPARE q(uuid, uuid, bigint) AS SELECT m.user_id, u.email, u.name, m.role, m.joined_at FROM memberships m
  JOIN users u ON u.id = m.user_id
  WHERE m.org_id = $1 AND ($2::uuid IS NULL OR m.user_id > $2) ORDER BY m.user_id LIMIT $3;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id', NULL, 50);
DEALLOCATE q;

\echo == membership changes: lock and count owners (lock_member, owner_count)
BEGIN;
PREPARE q(uuid) AS SELECT id FROM organizations WHERE id = $1 FOR UPDATE;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id');
DEALLOCATE q;
PREPARE q(uuid) AS SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'owner';
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id');
DEALLOCATE q;
\echo == removed member: the organization leaves their sessions (remove_member)
PREPARE q(uuid, uuid) AS UPDATE sessions SET org_id = NULL WHERE user_id = $1 AND org_id = $2;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'user_id', :'org_id');
DEALLOCATE q;
ROLLBACK;

\echo == role in use? (delete_role)
PREPARE q(uuid, text) AS SELECT EXISTS (SELECT 1 FROM memberships WHERE org_id = $1 AND role = $2)
  OR EXISTS (SELECT 1 FROM invitations WHERE org_id = $1 AND role = $2 AND accepted_at IS NULL AND revoked_at IS NULL);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id', 'support');
DEALLOCATE q;

\echo == delete an organization (delete_org; the foreign keys cascade and set null)
BEGIN;
PREPARE q(uuid) AS DELETE FROM organizations WHERE id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id');
DEALLOCATE q;
ROLLBACK;

\echo == audit log of an organization (list_audit, first page of 50)
PREPARE q(uuid, bigint) AS SELECT id, occurred_at, action, actor_id, org_id, target_id, ip, user_agent,
  metadata::text AS metadata FROM audit_events WHERE TRUE AND org_id = $1 ORDER BY id DESC LIMIT $2;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id', 50);
DEALLOCATE q;

\echo == audit log of an organization by action and actor (list_audit)
PREPARE q(uuid, uuid, text, bigint) AS SELECT id, occurred_at, action, actor_id, org_id, target_id, ip, user_agent,
  metadata::text AS metadata FROM audit_events WHERE TRUE AND org_id = $1 AND actor_id = $2 AND action = $3
  ORDER BY id DESC LIMIT $4;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id', :'user_id', 'member.added', 50);
DEALLOCATE q;

\echo == invitation by token (find_invitation)
PREPARE q(bytea) AS SELECT * FROM invitations WHERE token_hash = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(decode(:'inv_hash', 'hex'));
DEALLOCATE q;

\echo == accept an invitation (accept_invitation)
BEGIN;
PREPARE q(timestamptz, bytea, text) AS UPDATE invitations SET accepted_at = $1
  WHERE token_hash = $2 AND email = $3 AND accepted_at IS NULL AND revoked_at IS NULL
  AND expires_at > $1 RETURNING *;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now(), decode(:'inv_hash', 'hex'), :'inv_email');
DEALLOCATE q;
\echo == invite again: the pending one is revoked (create_invitation)
PREPARE q(timestamptz, uuid, text) AS UPDATE invitations SET revoked_at = $1
  WHERE org_id = $2 AND email = $3 AND accepted_at IS NULL AND revoked_at IS NULL;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now(), :'inv_org', :'inv_email');
DEALLOCATE q;
ROLLBACK;

\echo == pending invitations of an organization (list_invitations, first page)
PREPARE q(uuid, uuid, bigint) AS SELECT * FROM invitations WHERE org_id = $1 AND accepted_at IS NULL
  AND revoked_at IS NULL AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'inv_org', NULL, 50);
DEALLOCATE q;

\echo == API keys of a user and of an organization (list_api_keys)
PREPARE q(uuid, uuid, bigint) AS SELECT * FROM api_keys WHERE user_id = $1 AND org_id IS NULL AND revoked_at IS NULL
  AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'user_id', NULL, 50);
DEALLOCATE q;
PREPARE q(uuid, uuid, bigint) AS SELECT * FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL
  AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'org_id', NULL, 50);
DEALLOCATE q;

\echo == emailed link: consume (consume_one_time_token) and replace (replace_one_time_token)
BEGIN;
PREPARE q(timestamptz, bytea, text, timestamptz) AS UPDATE one_time_tokens SET consumed_at = $1
  WHERE token_hash = $2 AND purpose = $3 AND consumed_at IS NULL AND expires_at > $4
  RETURNING user_id, new_email;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now(), decode(:'ott_hash', 'hex'), 'reset_password', now());
DEALLOCATE q;
PREPARE q(uuid, text) AS DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'ott_user', 'reset_password');
DEALLOCATE q;
ROLLBACK;

\echo == MFA: TOTP step (use_totp_step), recovery codes (count_recovery_codes, consume_recovery_code)
BEGIN;
PREPARE q(bigint, uuid) AS UPDATE totp_authenticators SET last_step = $1
  WHERE user_id = $2 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $1);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(99999999999, :'totp_user');
DEALLOCATE q;
PREPARE q(uuid) AS SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'totp_user');
DEALLOCATE q;
PREPARE q(timestamptz, uuid, bytea) AS UPDATE recovery_codes SET used_at = $1
  WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now(), :'totp_user', sha256(uuid_send(:'totp_user') || int4send(2)));
DEALLOCATE q;
ROLLBACK;

\echo == MFA challenge: expired ones cleared on each login that needs one (create_mfa_challenge), lookup (find_mfa_challenge)
-- The table only holds the challenges of the last minutes (none in a seeded
-- database): filled here, in the transaction, with 5000 of the last five, of
-- which the few that expired since the last login (a second) are deleted,
-- and analyzed as autovacuum would (statistics of an empty table would
-- have the lookup walk the expiry index); vacuumed back afterwards.
BEGIN;
INSERT INTO mfa_challenges (token_hash, user_id, created_at, expires_at, attempts_left)
SELECT sha256(int4send(i)), :'totp_user', now() - interval '5 minutes' - interval '1 s' + interval '60 ms' * i,
       now() - interval '1 s' + interval '60 ms' * i, 5
FROM generate_series(1, 5000) i;
ANALYZE mfa_challenges;
PREPARE q(timestamptz) AS DELETE FROM mfa_challenges WHERE expires_at <= $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now());
DEALLOCATE q;
PREPARE q(bytea, timestamptz) AS SELECT user_id, attempts_left, expires_at FROM mfa_challenges
  WHERE token_hash = $1 AND consumed_at IS NULL AND attempts_left > 0 AND expires_at > $2;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(sha256(int4send(2500)), now());
DEALLOCATE q;
ROLLBACK;
VACUUM ANALYZE mfa_challenges;

\echo == passkey login: by credential id (find_passkey_by_credential), passkeys of a user (list_passkeys)
PREPARE q(bytea) AS SELECT * FROM passkeys WHERE credential_id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(decode(:'passkey_cred', 'hex'));
DEALLOCATE q;
PREPARE q(uuid) AS SELECT * FROM passkeys WHERE user_id = $1 ORDER BY id;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(:'passkey_user');
DEALLOCATE q;

\echo == WebAuthn ceremonies: expired ones cleared (create_webauthn_ceremony), taken (take_webauthn_ceremony)
BEGIN;
PREPARE q(timestamptz) AS DELETE FROM webauthn_ceremonies WHERE expires_at <= $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(now());
DEALLOCATE q;
PREPARE q(uuid, text) AS DELETE FROM webauthn_ceremonies WHERE id = $1 AND kind = $2
  RETURNING user_id, state, expires_at;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q(gen_random_uuid(), 'login');
DEALLOCATE q;
ROLLBACK;
SQL
