-- Organizations may require members to sign in with a second factor.
ALTER TABLE organizations ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;
