-- Who may create objects where esmed's tables are, and where esmed looks for names. In one
-- place for a new or upgraded schema (esmed-objects.sql) and the 0.3 changes
-- (changes-0.3.sql), which include this file (psql \ir) inside their transaction; it acts on
-- the schema that holds esmed's tables (the first schema of the loading session's
-- search_path). Running it again changes nothing.
--
-- esmed's statements name tables and functions without a schema. Were any role allowed to
-- create objects in that schema (PostgreSQL 14 and older let every role do so in "public"),
-- it could add, say, public.unnest(varchar[]), which matches esmed's calls better than the
-- built-in function and would run with esmed's rights. So only the schema's owner may create
-- there, and the esmed role's search_path is pinned: the built-ins first, then this schema.
DO $$
BEGIN
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
    IF has_schema_privilege('public', current_schema(), 'CREATE') THEN
        RAISE EXCEPTION 'every role may still create objects in schema %, where esmed''s tables are',
                current_schema()
            USING HINT = format('Run this script as a superuser or the owner of schema %I.',
                                current_schema());
    END IF;
    EXECUTE format('ALTER ROLE esmed IN DATABASE %I SET search_path = pg_catalog, %I',
                   current_database(), current_schema());
END
$$;
