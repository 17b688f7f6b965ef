-- Upgrade a database made by esmed 0.2's sql/db.sql to this version's. (The older daemon's
-- schema takes sql/upgrade-0.1.sql instead, a 0.2 development build's sql/upgrade-0.2-dev.sql;
-- both bring it all the way.)
--
-- Run once, as a superuser (or the owner of the tables and of their schema), with esmed
-- stopped:
--   psql -v ON_ERROR_STOP=1 -d esmed -f sql/upgrade-0.2.sql
-- One transaction: everything is upgraded or nothing changed. No row is lost. Ids become
-- 64-bit, which rewrites the queues: on tables of many millions of rows this takes minutes
-- (see changes-0.3.sql). Running it again changes nothing.

BEGIN;

\ir changes-0.3.sql

COMMIT;
