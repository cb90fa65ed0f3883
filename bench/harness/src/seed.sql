-- Seeds a migrated IdentSphere PostgreSQL database with synthetic data at
-- scale (issue 5, "Scale"). Run by `identsphere-bench seed`, which passes:
--
--   psql URL -v users=1000000 -v sessions=5000000 -v orgs=100000 \
--            -v hash='$argon2id$v=19$…' -f bench/harness/src/seed.sql
--
-- Set-based (INSERT … SELECT … FROM generate_series) in one transaction: a
-- failure leaves the database as it was. Existing users, organizations and
-- everything hanging off them are deleted first; signing keys and the
-- migration history stay.
--
-- The data:
-- * users: created over two years; ids are UUIDv7 of their creation time, as
--   the server's `Uuid::now_v7()` makes them. One shared Argon2id hash (the
--   `hash` variable); 2% without a password, 10% unverified.
-- * organizations with 1–20 members each (one owner, an admin from four
--   members, custom roles in every tenth organization), so about 65% of the
--   users belong to at least one.
-- * sessions over the last 60 days, users picked uniformly (5 each on
--   average); about 15% expired, 10% revoked, half of a member's sessions
--   with an active organization. Each has a rotation chain of 1–3 refresh
--   tokens as the server writes them: the older ones retired when the next
--   was issued, the last one live (until the session's expiry).
-- * API keys (personal and organization), invitations (pending, accepted,
--   revoked, expired), email-verification and reset tokens, TOTP with
--   recovery codes, passkeys, and audit events (logins, organization
--   creation, members added).
--
-- Everything but the random bits of the ids is deterministic: a reseed with
-- the same counts makes the same rows, relative to its own now().
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET work_mem = '256MB';
SET maintenance_work_mem = '1GB';
SET synchronous_commit = off;
-- The rows are generated consistent with each other: skip the foreign-key
-- triggers (superuser only) instead of checking millions of references.
SET session_replication_role = replica;

BEGIN;

-- A UUIDv7: 48-bit Unix milliseconds of `ts`, version 7, RFC 4122 variant,
-- the other bits from md5(salt).
CREATE FUNCTION pg_temp.uuid7(ts timestamptz, salt text) RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT encode(set_bit(set_bit(set_bit(set_bit(set_bit(set_bit(
    overlay(decode(md5(salt), 'hex')
            PLACING substring(int8send(floor(date_part('epoch', ts) * 1000)::bigint) FROM 3)
            FROM 1 FOR 6),
    55, 0), 54, 1), 53, 1), 52, 1), 71, 1), 70, 0), 'hex')::uuid
$$;

-- A deterministic pseudo-random number in [0, 1) for key k.
CREATE FUNCTION pg_temp.rnd(k bigint) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (hashint8(k)::float8 + 2147483648.0) / 4294967296.0
$$;

-- User n of `total`: created between 790 and 61 days ago, in order.
CREATE FUNCTION pg_temp.user_at(n bigint, total bigint) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT now() - interval '790 days' + interval '729 days' * ((n - 1)::float8 / total)
$$;
CREATE FUNCTION pg_temp.user_id(n bigint, total bigint) RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT pg_temp.uuid7(pg_temp.user_at(n, total), 'user' || n)
$$;

-- Organization o of `total`: created between 700 and 100 days ago.
CREATE FUNCTION pg_temp.org_at(o bigint, total bigint) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT now() - interval '700 days' + interval '600 days' * ((o - 1)::float8 / total)
$$;
CREATE FUNCTION pg_temp.org_id(o bigint, total bigint) RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT pg_temp.uuid7(pg_temp.org_at(o, total), 'org' || o)
$$;

-- How many refresh tokens session `id` has had: 1–3.
CREATE FUNCTION pg_temp.chain(id uuid) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT 1 + get_byte(uuid_send(id), 15) % 3
$$;

\echo step clear
-- Cascades to sessions, refresh tokens, memberships, keys, MFA, passkeys…
TRUNCATE users, organizations, audit_events, webauthn_ceremonies CASCADE;

\echo step drop-indexes
-- Secondary indexes are dropped and rebuilt after the load (one sort each
-- instead of millions of random insertions); primary keys stay, and the
-- rows go in in key order.
CREATE TEMP TABLE seed_indexes AS
SELECT i.indexname, i.indexdef FROM pg_indexes i
WHERE i.schemaname = current_schema()
  AND i.tablename IN ('users', 'sessions', 'refresh_tokens', 'one_time_tokens',
                      'audit_events', 'memberships', 'invitations', 'api_keys',
                      'recovery_codes', 'passkeys')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                  WHERE c.conname = i.indexname AND c.connamespace = current_schema()::regnamespace);
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT indexname FROM seed_indexes LOOP
    EXECUTE format('DROP INDEX %I', r.indexname);
  END LOOP;
END $$;

\echo step users
INSERT INTO users (id, email, name, email_verified, password_hash, created_at, updated_at)
SELECT pg_temp.uuid7(at, 'user' || n),
       'user' || n || '@' || (ARRAY['example.com', 'example.org', 'example.net', 'mail.test', 'corp.test'])[1 + n % 5],
       CASE WHEN n % 7 <> 0 THEN 'Seed User ' || n END,
       n % 10 <> 0,
       CASE WHEN n % 50 <> 0 THEN :'hash' END,
       at, at
FROM generate_series(1, :users::bigint) n
CROSS JOIN LATERAL (SELECT pg_temp.user_at(n, :users) AS at) t;

\echo step organizations
INSERT INTO organizations (id, name, created_at, updated_at, require_mfa)
SELECT pg_temp.uuid7(at, 'org' || o), 'Seed Org ' || o, at, at, o % 20 = 0
FROM generate_series(1, :orgs::bigint) o
CROSS JOIN LATERAL (SELECT pg_temp.org_at(o, :orgs) AS at) t;

\echo step roles
INSERT INTO roles (org_id, name, permissions, created_at, updated_at)
SELECT pg_temp.org_id(o, :orgs), r.name, r.perms, at, at
FROM generate_series(10, :orgs::bigint, 10) o
CROSS JOIN LATERAL (SELECT pg_temp.org_at(o, :orgs) + interval '1 day' AS at) t
CROSS JOIN (VALUES ('billing', ARRAY['org:read', 'members:read']),
                   ('support', ARRAY['org:read', 'members:read', 'audit:read'])) r (name, perms);

\echo step memberships
-- Member j of organization o is user u (a duplicate draw is skipped).
INSERT INTO memberships (org_id, user_id, role, joined_at)
SELECT pg_temp.org_id(o, :orgs), pg_temp.user_id(u, :users),
       CASE WHEN j = 1 THEN 'owner'
            WHEN j = 2 AND size >= 4 THEN 'admin'
            WHEN o % 10 = 0 AND j % 4 = 0 THEN 'support'
            WHEN o % 10 = 0 AND j % 4 = 1 THEN 'billing'
            ELSE 'member' END,
       greatest(pg_temp.org_at(o, :orgs), pg_temp.user_at(u, :users)) + interval '1 hour' * j
FROM generate_series(1, :orgs::bigint) o
CROSS JOIN LATERAL (SELECT 1 + floor(pg_temp.rnd(o) * 20)::int AS size) s
CROSS JOIN LATERAL generate_series(1, s.size) j
CROSS JOIN LATERAL (SELECT 1 + floor(pg_temp.rnd(o * 64 + j) * :users)::bigint AS u) m
ORDER BY 1, 2, j  -- of a user drawn twice, the first draw (the owner) stays
ON CONFLICT DO NOTHING;

-- A member's sessions may have one of their organizations active.
CREATE TEMP TABLE seed_user_org AS
SELECT DISTINCT ON (user_id) user_id, org_id FROM memberships ORDER BY user_id, org_id;
ANALYZE seed_user_org;

\echo step sessions
-- A session of c refresh tokens (1–3, from its id) was refreshed c - 1
-- times, each before the last token's 30 days ran out.
INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, revoked_at,
                      ip, user_agent, auth_time, amr, org_id)
SELECT a.id, a.uid, a.at, b.seen, b.seen + interval '30 days',
       CASE WHEN s % 10 = 3 THEN b.seen END,
       '198.51.' || (s % 251) || '.' || (s / 251 % 253),
       (ARRAY['Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
              'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
              'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
              'okhttp/4.12.0'])[1 + s % 4],
       a.at,
       (CASE s % 20 WHEN 0 THEN '{pwd,otp,mfa}' WHEN 1 THEN '{hwk,user,mfa}' ELSE '{pwd}' END)::text[],
       CASE WHEN pg_temp.rnd(s * 16 + 2) < 0.5 THEN f.org_id END
FROM generate_series(1, :sessions::bigint) s
-- (OFFSET 0 keeps each value computed once instead of inlined where used.)
CROSS JOIN LATERAL (
  SELECT at, uid, pg_temp.uuid7(at, 'session' || s) AS id
  FROM (SELECT now() - interval '60 days' + interval '60 days' * ((s - 1)::float8 / :sessions) AS at,
               pg_temp.user_id(1 + floor(pg_temp.rnd(s * 16) * :users)::bigint, :users) AS uid) a0
  OFFSET 0) a
CROSS JOIN LATERAL (
  SELECT a.at + least(now() - a.at, interval '29 days' * pg_temp.chain(a.id) - interval '29 days')
                * pg_temp.rnd(s * 16 + 1) AS seen
  OFFSET 0) b
LEFT JOIN seed_user_org f ON f.user_id = a.uid
ORDER BY 1;

\echo step refresh_tokens
-- 1–3 tokens per session: token k of c issued at the k-th of c evenly spaced
-- moments from sign-in to the last refresh, retired when the next one was.
INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at, retired_at)
SELECT pg_temp.uuid7(t.at, 'rt' || s.id || k), s.id,
       sha256(uuid_send(s.id) || int4send(k)),
       t.at, t.at + interval '30 days',
       CASE WHEN k < c.c THEN t.next_at END
FROM sessions s
CROSS JOIN LATERAL (SELECT pg_temp.chain(s.id) AS c) c
CROSS JOIN LATERAL generate_series(1, c.c) k
CROSS JOIN LATERAL (
  SELECT s.created_at + (s.last_seen_at - s.created_at) * ((k - 1)::float8 / greatest(c.c - 1, 1)) AS at,
         s.created_at + (s.last_seen_at - s.created_at) * (k::float8 / greatest(c.c - 1, 1)) AS next_at) t
ORDER BY 1;

\echo step api_keys
-- Personal keys of every twentieth user; organization keys of every fifth
-- organization, made by its owner. 5% revoked, 10% with an expiry.
INSERT INTO api_keys (id, user_id, org_id, name, prefix, key_hash, scopes, created_at,
                      expires_at, last_used_at, revoked_at)
SELECT id, user_id, org_id, name, 'isk_' || substr(md5(id::text), 1, 6), sha256(uuid_send(id)),
       scopes, at,
       CASE WHEN get_byte(uuid_send(id), 14) % 10 = 0 THEN at + interval '90 days' END,
       CASE WHEN get_byte(uuid_send(id), 13) % 2 = 0
            THEN greatest(at, now() - interval '1 hour' * get_byte(uuid_send(id), 12)) END,
       CASE WHEN get_byte(uuid_send(id), 15) % 20 = 0 THEN least(at + interval '10 days', now()) END
FROM (
  SELECT pg_temp.uuid7(at, 'key' || n) AS id, pg_temp.user_id(n, :users) AS user_id,
         NULL::uuid AS org_id, 'seed key ' || n AS name, ARRAY['users:read'] AS scopes, at
  FROM generate_series(20, :users::bigint, 20) n
  CROSS JOIN LATERAL (SELECT now() - interval '50 days' * pg_temp.rnd(n * 16 + 3) AS at) t
  UNION ALL
  SELECT pg_temp.uuid7(at, 'orgkey' || o), m.user_id, m.org_id, 'seed org key ' || o,
         ARRAY['members:read', 'audit:read'], at
  FROM generate_series(5, :orgs::bigint, 5) o
  CROSS JOIN LATERAL (SELECT now() - interval '50 days' * pg_temp.rnd(o * 16 + 3) AS at) t
  JOIN memberships m ON m.org_id = pg_temp.org_id(o, :orgs) AND m.role = 'owner'
) k
ORDER BY 1;

\echo step invitations
-- Two per organization over the last 30 days, valid a week: 30% accepted,
-- 10% revoked, the rest pending or expired.
INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at,
                         expires_at, accepted_at, revoked_at)
SELECT id, org_id, 'invitee' || o || '.' || k || '@example.com',
       CASE WHEN k = 2 THEN 'admin' ELSE 'member' END,
       sha256(uuid_send(id)), invited_by, at, at + interval '7 days',
       CASE WHEN r < 0.3 THEN least(at + interval '1 day', now()) END,
       CASE WHEN r >= 0.3 AND r < 0.4 THEN least(at + interval '2 days', now()) END
FROM (
  SELECT pg_temp.uuid7(at, 'inv' || o || '.' || k) AS id, org.id AS org_id, o, k, at,
         m.user_id AS invited_by, pg_temp.rnd(o * 16 + 4 + k) AS r
  FROM generate_series(1, :orgs::bigint) o
  CROSS JOIN generate_series(1, 2) k
  CROSS JOIN LATERAL (SELECT now() - interval '30 days' * pg_temp.rnd(o * 16 + 6 + k) AS at,
                             pg_temp.org_id(o, :orgs) AS id) org
  JOIN memberships m ON m.org_id = org.id AND m.role = 'owner'
) i
ORDER BY 1;

\echo step one_time_tokens
-- The unverified users' verification links, and some password resets.
INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, created_at, expires_at, consumed_at)
SELECT id, user_id, purpose, sha256(uuid_send(id)), at, at + interval '1 day',
       CASE WHEN purpose = 'reset_password' AND n % 3 = 0 THEN at + interval '10 minutes' END
FROM (
  SELECT pg_temp.uuid7(at, purpose || n) AS id, pg_temp.user_id(n, :users) AS user_id, purpose, n, at
  FROM generate_series(1, :users::bigint) n
  CROSS JOIN LATERAL (SELECT CASE WHEN n % 10 = 0 THEN 'verify_email'
                                  WHEN n % 100 = 1 THEN 'reset_password' END AS purpose) p
  CROSS JOIN LATERAL (SELECT CASE WHEN n % 10 = 0 THEN pg_temp.user_at(n, :users)
                                  ELSE now() - interval '30 days' * pg_temp.rnd(n * 16 + 5) END AS at) t
  WHERE p.purpose IS NOT NULL
) o
ORDER BY 1;

\echo step totp
-- Every twentieth user has TOTP (90% confirmed, with ten recovery codes).
INSERT INTO totp_authenticators (user_id, sealed_secret, created_at, confirmed_at, last_step)
SELECT pg_temp.user_id(n, :users), sha256(int8send(n)) || sha256(int8send(-n)),
       at, CASE WHEN n % 200 <> 7 THEN at + interval '1 minute' END,
       CASE WHEN n % 200 <> 7 THEN floor(extract(epoch FROM at) / 30)::bigint + 2 END
FROM generate_series(7, :users::bigint, 20) n
CROSS JOIN LATERAL (SELECT pg_temp.user_at(n, :users) + interval '20 days' AS at) t
ORDER BY 1;

\echo step recovery_codes
INSERT INTO recovery_codes (user_id, code_hash, created_at, used_at)
SELECT t.user_id, sha256(uuid_send(t.user_id) || int4send(i)), t.confirmed_at,
       CASE WHEN i = 1 AND get_byte(uuid_send(t.user_id), 15) % 4 = 0 THEN t.confirmed_at + interval '30 days' END
FROM totp_authenticators t
CROSS JOIN generate_series(1, 10) i
WHERE t.confirmed_at IS NOT NULL;

\echo step passkeys
-- Every 25th user has one or two passkeys.
INSERT INTO passkeys (id, user_id, credential_id, credential, name, created_at, last_used_at)
SELECT pg_temp.uuid7(at, 'passkey' || n || '.' || k), pg_temp.user_id(n, :users),
       sha256(int8send(n) || int4send(k)),
       '{"seed":true,"cred":{"cred_id":"' || encode(sha256(int8send(n) || int4send(k)), 'hex')
         || '","cred":{"type_":"ES256","key":{"EC_EC2":{"curve":"SECP256R1","x":"'
         || encode(sha256(int8send(n)), 'hex') || '","y":"' || encode(sha256(int8send(-n)), 'hex')
         || '"}}},"counter":0,"user_verified":true,"backup_eligible":true,"backup_state":true}}',
       CASE WHEN k = 1 THEN 'Laptop' ELSE 'Phone' END,
       at, now() - interval '1 day' * (n % 30)
FROM generate_series(1, :users::bigint, 25) n
CROSS JOIN generate_series(1, 1 + (n / 25)::int % 2) k
CROSS JOIN LATERAL (SELECT pg_temp.user_at(n, :users) + interval '10 days' * k AS at) t
ORDER BY 1;

\echo step audit_events
-- A login event for one session in five, organization creation, and a
-- member.added for every membership.
INSERT INTO audit_events (id, occurred_at, action, actor_id, org_id, target_id, ip, user_agent, metadata)
SELECT pg_temp.uuid7(at, concat(action, org, target)), at, action, actor, org, target, ip, ua, meta
FROM (
  SELECT s.created_at AS at, 'user.login.succeeded' AS action, s.user_id AS actor, NULL::uuid AS org,
         s.id::text AS target, s.ip, s.user_agent AS ua, '{}'::jsonb AS meta
  FROM sessions s WHERE get_byte(uuid_send(s.id), 14) % 5 = 0
  UNION ALL
  SELECT o.created_at, 'organization.created', m.user_id, o.id, o.id::text, '203.0.113.7', 'okhttp/4.12.0', '{}'
  FROM organizations o JOIN memberships m ON m.org_id = o.id AND m.role = 'owner'
  UNION ALL
  SELECT m.joined_at, 'member.added', own.user_id, m.org_id, m.user_id::text, '203.0.113.7', 'okhttp/4.12.0',
         jsonb_build_object('role', m.role)
  FROM memberships m JOIN memberships own ON own.org_id = m.org_id AND own.role = 'owner'
  WHERE m.role <> 'owner'
) e
ORDER BY 1;

\echo step rebuild-indexes
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT indexdef FROM seed_indexes LOOP
    EXECUTE r.indexdef;
  END LOOP;
END $$;

-- What `identsphere-bench run --seeded` checks before reusing the database.
SELECT current_database() AS db,
       format('identsphere-bench seed: users=%s sessions=%s orgs=%s', :users, :sessions, :orgs) AS marker \gset
COMMENT ON DATABASE :"db" IS :'marker';

\echo step commit
COMMIT;
