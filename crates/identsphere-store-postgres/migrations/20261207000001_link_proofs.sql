-- A sign-up's verification link remembers the hash of a secret kept by the
-- browser that signed up: only that browser finishes verification without
-- choosing the password anew (account pre-hijacking, docs/security.md).
ALTER TABLE one_time_tokens ADD COLUMN proof_hash bytea;
