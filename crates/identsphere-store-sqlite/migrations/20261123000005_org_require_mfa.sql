-- Organizations may require members to sign in with a second factor.
ALTER TABLE organizations ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0;
