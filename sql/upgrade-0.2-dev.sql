-- Upgrade a database made by an earlier esmed 0.2 development build to sql/db.sql. (A
-- database of the older daemon's schema takes sql/upgrade-0.1.sql instead, one of esmed 0.2
-- sql/upgrade-0.2.sql.)
--
-- Run once, as a superuser (or the owner of the tables and of their schema), with esmed
-- stopped:
--   psql -v ON_ERROR_STOP=1 -d esmed -f sql/upgrade-0.2-dev.sql
-- One transaction; each step is skipped when the database already has it, so running it
-- again changes nothing. No row is lost (see changes-0.3.sql for the rows it changes).

BEGIN;

-- A client certificate for SMSCs that ask for one; see db.sql.
ALTER TABLE smpp_servers
    ADD COLUMN IF NOT EXISTS smpp_tls_cert_file varchar,
    ADD COLUMN IF NOT EXISTS smpp_tls_key_file varchar;

-- Receipts for single-part messages find their row by this key (was: a smpp_tx_parts row
-- for every message).
ALTER TABLE smpp_tx_queue ADD COLUMN IF NOT EXISTS smpp_message_id_key varchar;
CREATE INDEX IF NOT EXISTS smpp_tx_queue_message_id_key ON smpp_tx_queue (smpp_message_id_key)
    WHERE smpp_message_id_key IS NOT NULL;

-- Parts of MO sets already stored, so that a part the SMSC delivers again is not stored
-- twice.
\ir rx-parts-done.sql
REVOKE ALL ON smpp_rx_parts_done FROM esmed;
GRANT SELECT, INSERT, DELETE ON smpp_rx_parts_done TO esmed;

-- And on to this version.
\ir changes-0.3.sql

COMMIT;
