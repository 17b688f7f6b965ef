-- Upgrade a database made by the older daemon's schema (0.1) to esmed's sql/db.sql.
--
-- Run once, as a superuser, with the old daemon stopped:
--   psql -v ON_ERROR_STOP=1 -d esmed -f sql/upgrade-0.1.sql
-- It runs in one transaction: either everything is upgraded or nothing changed. No row is
-- lost; new columns get their defaults, which keep the old behaviour (changes-0.3.sql says
-- what becomes of a row whose submission_done or submission_failed is NULL).

BEGIN;

-- The daemon's login role, as a new schema makes it.
\ir esmed-role.sql

-- Servers: the added columns, in the order sql/db.sql has them.
ALTER TABLE smpp_servers
    ADD COLUMN esme_bind_receiver boolean NOT NULL DEFAULT false,
    ADD COLUMN esme_system_type varchar(12) NOT NULL DEFAULT '',
    ADD COLUMN smpp_window integer NOT NULL DEFAULT 10 CHECK (smpp_window > 0),
    ADD COLUMN smpp_rate_limit integer NOT NULL DEFAULT 0 CHECK (smpp_rate_limit >= 0),
    ADD COLUMN smpp_text_coding varchar NOT NULL DEFAULT 'gsm7'
        CHECK (smpp_text_coding IN ('gsm7', 'ascii_only', 'latin1', 'ucs2')),
    ADD COLUMN smpp_long_message_mode varchar NOT NULL DEFAULT 'udh'
        CHECK (smpp_long_message_mode IN ('udh', 'udh16', 'sar', 'payload')),
    ADD COLUMN esme_source_addr_ton integer,
    ADD COLUMN esme_source_addr_npi integer,
    ADD COLUMN esme_dest_addr_ton integer NOT NULL DEFAULT 1,
    ADD COLUMN esme_dest_addr_npi integer NOT NULL DEFAULT 1,
    ADD COLUMN smpp_permanent_statuses integer[] NOT NULL DEFAULT '{}',
    -- SMPP over TLS (off, as before); see sql/db.sql for what each column means.
    ADD COLUMN smpp_tls boolean NOT NULL DEFAULT false,
    ADD COLUMN smpp_tls_ca_file varchar,
    ADD COLUMN smpp_tls_verify boolean NOT NULL DEFAULT true,
    ADD COLUMN smpp_tls_server_name varchar,
    ADD COLUMN smpp_tls_cert_file varchar,
    ADD COLUMN smpp_tls_key_file varchar;

-- Messages: long texts (varchar -> text needs no table rewrite), and the added columns.
ALTER TABLE smpp_tx_queue
    ALTER COLUMN smpp_short_message TYPE text,
    ADD COLUMN smpp_source_addr varchar(21),
    ADD COLUMN claimed_by varchar,
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN submission_resends integer NOT NULL DEFAULT 0,
    ADD COLUMN smpp_message_id_key varchar;

-- Room on every page for HOT claim updates (applies to rows inserted from now on); see
-- db.sql.
ALTER TABLE smpp_tx_queue SET (fillfactor = 40);

CREATE INDEX smpp_tx_queue_pending ON smpp_tx_queue (smpp_priority_flag DESC NULLS LAST, id)
    WHERE NOT submission_done AND NOT submission_failed;

CREATE INDEX smpp_tx_queue_message_id_key ON smpp_tx_queue (smpp_message_id_key)
    WHERE smpp_message_id_key IS NOT NULL;

-- Receipts may still come for what the old daemon sent lately: give those rows the key
-- receipts are matched on (smpp_message_id in lower case, without leading zeros when it is
-- all hex digits: what esmed stores). Older rows are left as they are; no receipt comes
-- after a week.
UPDATE smpp_tx_queue SET smpp_message_id_key =
        CASE WHEN lower(btrim(smpp_message_id)) ~ '^[0-9a-f]+$'
             THEN coalesce(nullif(ltrim(lower(btrim(smpp_message_id)), '0'), ''), '0')
             ELSE lower(btrim(smpp_message_id)) END
    WHERE submission_done AND btrim(smpp_message_id) <> ''
      AND coalesce(submission_timestamp, insert_timestamp) > now() - interval '7 days';

ALTER TABLE smpp_rx_queue
    ADD COLUMN smpp_destination_addr varchar,
    ADD COLUMN esm_class integer,
    ADD COLUMN data_coding integer,
    ADD COLUMN is_receipt boolean NOT NULL DEFAULT false,
    ADD COLUMN receipted_message_id varchar,
    ADD COLUMN message_state varchar,
    ADD COLUMN error_code varchar,
    ADD COLUMN tx_id integer,
    ADD COLUMN text_invalid boolean NOT NULL DEFAULT false,
    ADD COLUMN mo_parts smallint,
    ADD COLUMN mo_incomplete boolean NOT NULL DEFAULT false;

-- Triggers: same names as before, dropped here and re-created by esmed-objects.sql exactly as
-- sql/db.sql has them. The notify triggers become statement-level (same channel and payload).
-- esmed-objects.sql also adds esmed's tables and views and sets the role's privileges.
DROP TRIGGER smpp_servers_only_one_enabled ON smpp_servers;
DROP TRIGGER smpp_servers_notify_change ON smpp_servers;
DROP TRIGGER smpp_tx_queue_notify_change ON smpp_tx_queue;
DROP FUNCTION IF EXISTS smpp_servers_only_one_enabled();
DROP FUNCTION notify_table_change();

\ir esmed-objects.sql
\ir changes-0.3.sql

COMMIT;
