-- esmed database schema.
--
-- Load once into an empty database as a superuser (or the database owner with CREATEROLE):
--   psql -v ON_ERROR_STOP=1 -d esmed -f sql/db.sql
-- then give the daemon's role a password (never stored in this file):
--   psql -d esmed -c "ALTER ROLE esmed PASSWORD 'choose-one'"
--
-- Compatibility: every table, column, type, default and the NOTIFY channel/payload of the older
-- daemon are kept as they were, so applications' existing SQL keeps working. Everything esmed
-- added is marked "added" below and has a default that keeps the old behaviour.
-- A database made by the older schema is brought here by sql/upgrade-0.1.sql.

BEGIN;

-- The daemon's login role. Roles are per cluster, so a second database in the same cluster
-- reuses it instead of failing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'esmed') THEN
        CREATE ROLE esmed LOGIN NOSUPERUSER;
    END IF;
END
$$;

CREATE TYPE smpp_priority_flag AS ENUM ('LEVEL_0', 'LEVEL_1', 'LEVEL_2', 'LEVEL_3');

CREATE TYPE smpp_registered_delivery AS ENUM (
    'NO_SMSC_DELIVERY_RECEIPT_REQUESTED',
    'SMSC_DELIVERY_RECEIPT_REQUESTED',
    'SMSC_DELIVERY_RECEIPT_REQUESTED_FOR_FAILURE'
);

-- SMSC accounts. At most one row is enabled (see the trigger below); esmed uses that one.
-- Timers are in seconds.
CREATE TABLE smpp_servers (
    id serial PRIMARY KEY,
    enabled boolean DEFAULT false,
    name varchar,
    host varchar NOT NULL,
    port integer DEFAULT 2775,
    esme_system_id varchar(16) NOT NULL,
    esme_password varchar(9) NOT NULL,
    esme_source_addr varchar(21),
    esme_bind_transceiver boolean DEFAULT false,
    esme_registered_delivery boolean DEFAULT false,
    esme_max_submission_attempts integer DEFAULT 3,
    smpp_session_init_timer integer DEFAULT 30,
    smpp_enquire_link_timer integer DEFAULT 10,
    smpp_inactivity_timer integer DEFAULT 120,
    smpp_response_timer integer DEFAULT 60,
    smpp_pdu_read_timer integer DEFAULT 10,
    -- added: a separate bind_receiver next to a transmitter bind, so transmitter users get
    -- receipts and MO too. false = transmitter only, as before.
    esme_bind_receiver boolean NOT NULL DEFAULT false,
    -- added: system_type sent in the bind; '' (none) as before.
    esme_system_type varchar(12) NOT NULL DEFAULT '',
    -- added: at most this many submit_sm awaiting their response.
    smpp_window integer NOT NULL DEFAULT 10 CHECK (smpp_window > 0),
    -- added: segments per second sent to this server; 0 = unlimited, as before.
    smpp_rate_limit integer NOT NULL DEFAULT 0 CHECK (smpp_rate_limit >= 0),
    -- added: how text is encoded: gsm7 (UCS2 when the text needs it), ascii_only, latin1, ucs2.
    smpp_text_coding varchar NOT NULL DEFAULT 'gsm7'
        CHECK (smpp_text_coding IN ('gsm7', 'ascii_only', 'latin1', 'ucs2')),
    -- added: how long texts are split: udh (8-bit reference), udh16, sar (TLVs), payload
    -- (one message_payload TLV).
    smpp_long_message_mode varchar NOT NULL DEFAULT 'udh'
        CHECK (smpp_long_message_mode IN ('udh', 'udh16', 'sar', 'payload')),
    -- added: source address TON/NPI; NULL = chosen from the address's shape (alphanumeric 5/0,
    -- international digits 1/1, short code 3/0).
    esme_source_addr_ton integer,
    esme_source_addr_npi integer,
    -- added: destination address TON/NPI (international/ISDN, as before).
    esme_dest_addr_ton integer NOT NULL DEFAULT 1,
    esme_dest_addr_npi integer NOT NULL DEFAULT 1,
    -- added: vendor-specific command_status codes (0x400-0x4FF) this SMSC means as permanent
    -- failures; all others in that range are retried.
    smpp_permanent_statuses integer[] NOT NULL DEFAULT '{}',
    -- added: SMPP over TLS to this server; false = plain TCP, as before.
    smpp_tls boolean NOT NULL DEFAULT false,
    -- added: PEM file (on esmed's host) of the CAs that may sign the SMSC's certificate;
    -- NULL = the system's trust store.
    smpp_tls_ca_file varchar,
    -- added: check the SMSC's certificate (chain and name). false only for testing: anyone
    -- on the path could then read and change the traffic, the bind password included.
    smpp_tls_verify boolean NOT NULL DEFAULT true,
    -- added: the name sent as SNI and checked against the certificate; NULL = host (useful
    -- when host is an IP address and the certificate names a DNS name).
    smpp_tls_server_name varchar,
    UNIQUE (host, port)
);

-- Messages to send. Applications insert (smpp_destination_addr, smpp_short_message) and read
-- the outcome back from the submission_* and smpp_message_* columns.
CREATE TABLE smpp_tx_queue (
    id serial PRIMARY KEY,
    insert_timestamp timestamptz DEFAULT now(),
    smpp_destination_addr varchar(21) NOT NULL,
    smpp_priority_flag smpp_priority_flag DEFAULT 'LEVEL_0',
    smpp_registered_delivery smpp_registered_delivery
        DEFAULT 'NO_SMSC_DELIVERY_RECEIPT_REQUESTED',
    -- text since esmed sends long messages as several segments (was varchar(254)).
    smpp_short_message text NOT NULL,
    smpp_message_id varchar,
    smpp_message_state varchar,
    message_state_timestamp timestamptz,
    submission_timestamp timestamptz,
    submission_attempts integer DEFAULT 0,
    submission_done boolean DEFAULT false,
    submission_failed boolean DEFAULT false,
    submission_info varchar,
    -- added: per-message sender; NULL = the server's esme_source_addr, as before.
    smpp_source_addr varchar(21),
    -- added: the lease. The esmed instance that claimed the row and until when; a lease that
    -- ran out may be claimed by another instance.
    claimed_by varchar,
    claimed_until timestamptz,
    -- added: retry backoff; the row is not claimed before this time.
    next_attempt_at timestamptz,
    -- added: how often the row was resent after an unknown outcome (no response).
    submission_resends integer NOT NULL DEFAULT 0,
    -- added: for a message the SMSC accepted in one part, the key its receipts are matched on
    -- (smpp_message_id normalised as smpp_tx_parts.message_id_key is); a multi-part message
    -- has its parts' keys in smpp_tx_parts instead.
    smpp_message_id_key varchar
)
-- added: room on every page, so that claiming a row (which changes only unindexed columns)
-- is a HOT update that touches no index; measured 20 % less PostgreSQL CPU per message.
WITH (fillfactor = 60);

-- added: finding pending rows stays cheap when the table holds millions of finished ones.
CREATE INDEX smpp_tx_queue_pending ON smpp_tx_queue (smpp_priority_flag DESC NULLS LAST, id)
    WHERE NOT submission_done AND NOT submission_failed;

-- added: receipts for single-part messages find their row by its key.
CREATE INDEX smpp_tx_queue_message_id_key ON smpp_tx_queue (smpp_message_id_key)
    WHERE smpp_message_id_key IS NOT NULL;

-- added: one row per accepted segment of a message sent in several parts, so a receipt for
-- any part finds its message (single-part messages keep their key in smpp_tx_queue:
-- a third fewer writes per message). smpp_tx_queue.smpp_message_id holds part 1's id.
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

-- added: receipts find their part by its normalised id.
CREATE INDEX smpp_tx_parts_message_id_key ON smpp_tx_parts (message_id_key);

-- What the SMSC sent: delivery receipts and mobile-originated messages.
CREATE TABLE smpp_rx_queue (
    id serial PRIMARY KEY,
    insert_timestamp timestamptz DEFAULT now(),
    -- the raw PDU as lower-case hex
    pdu_raw varchar,
    -- the decoded PDU as JSON text
    pdu_parsed varchar,
    smpp_source_addr varchar,
    smpp_short_message varchar,
    -- added: the decoded PDU's fields that queries need most.
    smpp_destination_addr varchar,
    esm_class integer,
    data_coding integer,
    -- added: true for a delivery receipt, with its message id, state name and error code.
    is_receipt boolean NOT NULL DEFAULT false,
    receipted_message_id varchar,
    message_state varchar,
    error_code varchar,
    -- added: the smpp_tx_queue row a receipt matched; NULL when none did.
    tx_id integer,
    -- added: the text bytes were invalid for the data_coding (stored as well as possible).
    text_invalid boolean NOT NULL DEFAULT false,
    -- added: for a concatenated MO reassembled from parts: how many parts it has (NULL for a
    -- single message). pdu_raw then holds every part's PDU hex in part order, separated by
    -- ',', and pdu_parsed a JSON array of the parts' JSON; smpp_short_message the whole text.
    mo_parts smallint,
    -- added: the set never completed within [daemon] mo_reassembly_timeout; the row holds
    -- the parts that arrived, in order (mo_parts counts the parts the set should have).
    mo_incomplete boolean NOT NULL DEFAULT false
);

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

-- Enabling a server disables the others: at most one row is enabled. BEFORE, so that in a
-- multi-row statement the last enabled row wins.
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

-- Tell esmed at once: channel notify_table_change, payload = the table's name (as the older
-- daemon did). Statement-level, so a 100,000-row insert sends one notification, not 100,000.
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

-- Least privilege: esmed reads servers, claims and updates messages, appends to rx, keeps
-- its parts table. It can't delete from the queues or read anything else.
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
