-- The daemon's login role, in one place for a new schema (db.sql) and an upgraded one
-- (upgrade-0.1.sql), both of which include this file (psql \ir) inside their transaction.
-- Roles are per cluster, so a second database in the same cluster reuses it instead of
-- failing; running it again changes nothing. Its password is never set here.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'esmed') THEN
        CREATE ROLE esmed LOGIN NOSUPERUSER;
    END IF;
END
$$;
