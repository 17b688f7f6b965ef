-- Upgrade a database made by the older daemon's schema (0.1) to esmed's sql/db.sql.
--
-- Run once, as a superuser, with the old daemon stopped:
--   psql -v ON_ERROR_STOP=1 -d esmed -f sql/upgrade-0.1.sql
-- It runs in one transaction: either everything is upgraded or nothing changed. No row is lost
-- or changed; new columns get their defaults, which keep the old behaviour.

BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'esmed') THEN
        CREATE ROLE esmed LOGIN NOSUPERUSER;
    END IF;
END
$$;

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
    ADD COLUMN smpp_tls_server_name varchar;

-- Messages: long texts (varchar -> text needs no table rewrite), and the added columns.
ALTER TABLE smpp_tx_queue
    ALTER COLUMN smpp_short_message TYPE text,
    ADD COLUMN smpp_source_addr varchar(21),
    ADD COLUMN claimed_by varchar,
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN submission_resends integer NOT NULL DEFAULT 0,
    ADD COLUMN smpp_message_id_key varchar;

-- Room on every page for HOT claim updates (applies to pages written from now on).
ALTER TABLE smpp_tx_queue SET (fillfactor = 60);

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

CREATE TABLE smpp_tx_parts (
    tx_id integer REFERENCES smpp_tx_queue (id) ON DELETE CASCADE,
    part_no smallint,
    part_count smallint,
    message_id varchar NOT NULL,
    -- receipts are matched on this: message_id in lower case, without leading zeros when it
    -- is all hex digits (see [daemon] receipt_id_match in esmed.conf).
    message_id_key varchar NOT NULL,
    -- the part's state from its receipts; smpp_tx_queue.smpp_message_state aggregates them.
    message_state varchar,
    state_timestamp timestamptz,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tx_id, part_no)
);

CREATE INDEX smpp_tx_parts_message_id_key ON smpp_tx_parts (message_id_key);

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

-- added: receipts whose message is not known yet (its submit_sm_resp not committed, or an
-- id no part matches). esmed retries them whenever parts are stored and periodically, for
-- [daemon] receipt_match_window, then logs them and deletes them here; the smpp_rx_queue row
-- stays with tx_id NULL. One row per id form the receipt may match (match_rank 0 is best).
CREATE TABLE smpp_rx_unmatched (
    rx_id integer NOT NULL REFERENCES smpp_rx_queue (id) ON DELETE CASCADE,
    match_key varchar NOT NULL,
    match_rank integer NOT NULL,
    message_state varchar,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rx_id, match_key)
);

CREATE INDEX smpp_rx_unmatched_match_key ON smpp_rx_unmatched (match_key);

-- added: parts of concatenated MO messages (UDH 8/16-bit reference or SAR TLVs) until the
-- set is complete; then one smpp_rx_queue row gets the whole text and the parts are deleted.
-- Each part was acknowledged once stored here, so a restart loses none.
CREATE TABLE smpp_rx_parts (
    source_addr varchar NOT NULL,
    destination_addr varchar NOT NULL,
    -- udh8, udh16 or sar: references of different kinds never join one set.
    ref_kind varchar NOT NULL,
    reference integer NOT NULL,
    total smallint NOT NULL,
    seq smallint NOT NULL,
    pdu_raw varchar NOT NULL,
    pdu_parsed varchar NOT NULL,
    esm_class integer NOT NULL,
    data_coding integer NOT NULL,
    -- the part's user data after the UDH, decoded once the set is whole (a character may
    -- straddle two parts).
    text_bytes bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_addr, destination_addr, ref_kind, reference, total, seq)
);

-- added: one row per running esmed (its [daemon] instance name), rewritten every
-- [daemon] heartbeat_interval and deleted at a clean exit. A row whose updated_at is older
-- than three heartbeats belongs to an esmed that died or cannot reach the database.
CREATE TABLE esmed_status (
    instance varchar PRIMARY KEY,
    host varchar NOT NULL,
    pid integer NOT NULL,
    -- the enabled smpp_servers row in use; NULL while idle.
    server_id integer,
    server_name varchar,
    -- idle, connecting, bound transmitter, bound transceiver, bound transmitter+receiver,
    -- bound receiver (transmitter connecting) ..., stopping.
    session_state varchar NOT NULL,
    -- submit_sm awaiting their response (sampled) and the server's smpp_window.
    window_in_use integer NOT NULL DEFAULT 0,
    window_size integer,
    -- over the last heartbeat interval: submit_sm sent and deliver_sm/data_sm received.
    out_per_second real NOT NULL DEFAULT 0,
    in_per_second real NOT NULL DEFAULT 0,
    -- since started_at.
    submitted_total bigint NOT NULL DEFAULT 0,
    done_total bigint NOT NULL DEFAULT 0,
    failed_total bigint NOT NULL DEFAULT 0,
    received_total bigint NOT NULL DEFAULT 0,
    last_error varchar,
    last_error_at timestamptz,
    heartbeat_seconds real NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- added: views for operators (esmed status reads them too). Pending-side counts go through
-- the smpp_tx_queue_pending partial index, so they stay cheap however many finished rows the
-- table holds; counts over finished rows read the table.
--
-- Messages by state: pending (claimable now), in_flight (claimed under a live lease),
-- retry_waiting (a transient failure's backoff has not run out), done, failed. The last two
-- count all history (a table scan); filter on state to skip them: WHERE state = 'pending'
-- only reads the partial index.
CREATE VIEW esmed_queue_depth AS
    SELECT 'pending'::text AS state, count(*) AS messages FROM smpp_tx_queue
    WHERE NOT submission_done AND NOT submission_failed
      AND (claimed_until IS NULL OR claimed_until < now())
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
    UNION ALL
    SELECT 'in_flight', count(*) FROM smpp_tx_queue
    WHERE NOT submission_done AND NOT submission_failed AND claimed_until >= now()
    UNION ALL
    SELECT 'retry_waiting', count(*) FROM smpp_tx_queue
    WHERE NOT submission_done AND NOT submission_failed
      AND (claimed_until IS NULL OR claimed_until < now()) AND next_attempt_at > now()
    UNION ALL
    SELECT 'done', count(*) FROM smpp_tx_queue WHERE submission_done
    UNION ALL
    SELECT 'failed', count(*) FROM smpp_tx_queue WHERE submission_failed AND NOT submission_done;

-- Messages inserted in the last 48 hours, by the hour they were inserted: how many, and how
-- many are done, failed, or not finished yet. Reads only recent rows' worth of results but
-- scans the table (there is no index on insert_timestamp).
CREATE VIEW esmed_hourly AS
    SELECT date_trunc('hour', insert_timestamp) AS hour,
           count(*) AS queued,
           count(*) FILTER (WHERE submission_done) AS done,
           count(*) FILTER (WHERE submission_failed AND NOT submission_done) AS failed,
           count(*) FILTER (WHERE NOT submission_done AND NOT submission_failed) AS unfinished
    FROM smpp_tx_queue
    WHERE insert_timestamp >= now() - interval '48 hours'
    GROUP BY 1;

-- Delivery receipts received in the last 48 hours by message state (DELIVRD/DELIVERED,
-- UNDELIV ...), and how many of them matched a sent message.
CREATE VIEW esmed_receipts_by_state AS
    SELECT coalesce(message_state, '') AS message_state,
           count(*) AS receipts,
           count(tx_id) AS matched
    FROM smpp_rx_queue
    WHERE is_receipt AND insert_timestamp >= now() - interval '48 hours'
    GROUP BY 1;

-- The oldest unfinished message (pending, in flight or waiting to retry): its age in seconds
-- (0 when none), when it was inserted, and how many are unfinished. Reads the partial index.
CREATE VIEW esmed_oldest_pending AS
    SELECT coalesce(extract(epoch FROM now() - min(insert_timestamp)), 0)::float8
               AS age_seconds,
           min(insert_timestamp) AS oldest_insert_timestamp,
           count(*) AS unfinished
    FROM smpp_tx_queue
    WHERE NOT submission_done AND NOT submission_failed;

-- Triggers: same names as before, re-created exactly as sql/db.sql has them. The notify
-- triggers become statement-level (same channel and payload).
DROP TRIGGER smpp_servers_only_one_enabled ON smpp_servers;
DROP TRIGGER smpp_servers_notify_change ON smpp_servers;
DROP TRIGGER smpp_tx_queue_notify_change ON smpp_tx_queue;
DROP FUNCTION IF EXISTS smpp_servers_only_one_enabled();
DROP FUNCTION notify_table_change();

CREATE FUNCTION smpp_servers_only_one_enabled() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE smpp_servers SET enabled = false WHERE id <> NEW.id AND enabled;
    RETURN NEW;
END
$$;

CREATE TRIGGER smpp_servers_only_one_enabled
    BEFORE INSERT OR UPDATE OF enabled ON smpp_servers
    FOR EACH ROW WHEN (NEW.enabled)
    EXECUTE FUNCTION smpp_servers_only_one_enabled();

CREATE FUNCTION notify_table_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notify_table_change', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER smpp_servers_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON smpp_servers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_table_change();

CREATE TRIGGER smpp_tx_queue_notify_change
    AFTER INSERT ON smpp_tx_queue
    FOR EACH STATEMENT EXECUTE FUNCTION notify_table_change();

-- Privileges: whatever the old role had is replaced by exactly what esmed needs.
REVOKE ALL ON smpp_servers, smpp_tx_queue, smpp_rx_queue, smpp_tx_parts, smpp_rx_unmatched,
    smpp_rx_parts FROM esmed;
REVOKE ALL ON SEQUENCE smpp_servers_id_seq, smpp_tx_queue_id_seq, smpp_rx_queue_id_seq
    FROM esmed;
GRANT SELECT ON smpp_servers TO esmed;
GRANT SELECT, UPDATE ON smpp_tx_queue TO esmed;
GRANT INSERT ON smpp_rx_queue TO esmed;
GRANT USAGE ON SEQUENCE smpp_rx_queue_id_seq TO esmed;
GRANT SELECT, INSERT, UPDATE ON smpp_tx_parts TO esmed;
-- rx: only the id (to link a late-matched receipt) is readable, only tx_id updatable.
GRANT SELECT (id), UPDATE (tx_id) ON smpp_rx_queue TO esmed;
GRANT SELECT, INSERT, DELETE ON smpp_rx_unmatched, smpp_rx_parts TO esmed;

-- status: esmed keeps its own heartbeat row and reads the operator views for esmed status.
REVOKE ALL ON esmed_status, esmed_queue_depth, esmed_hourly, esmed_receipts_by_state,
    esmed_oldest_pending FROM esmed;
GRANT SELECT, INSERT, UPDATE, DELETE ON esmed_status TO esmed;
GRANT SELECT ON esmed_queue_depth, esmed_hourly, esmed_receipts_by_state, esmed_oldest_pending
    TO esmed;

COMMIT;
