-- Every instance caches recently read users (GET /v1/users/me) and must hear
-- at once when one changes. A trigger announces every update or deletion,
-- whichever code or operator makes it; NOTIFY is delivered only if the
-- transaction commits.
CREATE FUNCTION identsphere_user_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('identsphere_user_changes', OLD.id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_announce_changes
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION identsphere_user_changed();
