-- The objects esmed added to the older daemon's schema, the same for a new database
-- (sql/db.sql) and an upgraded one (sql/upgrade-0.1.sql): both include this file (psql \ir),
-- inside their transaction, after the older tables exist with esmed's added columns.
-- The partitioned layout (sql/db-partitioned.sql) sets the psql variable `partitioned`.

\if :{?partitioned}
\else
\set partitioned false
\endif

-- added: one row per accepted segment of a message sent in several parts, so a receipt for
-- any part finds its message (single-part messages keep their key in smpp_tx_queue:
-- a third fewer writes per message). smpp_tx_queue.smpp_message_id holds part 1's id.
CREATE TABLE smpp_tx_parts (
\if :partitioned
    -- partitioned: no foreign key (a partitioned table's id alone is not a key); dropping
    -- a day's partitions removes its messages' parts too (esmed_drop_partitions).
    tx_id bigint,
\else
    tx_id bigint REFERENCES smpp_tx_queue (id) ON DELETE CASCADE,
\endif
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

-- added: receipts whose message is not known yet (its submit_sm_resp not committed, or an
-- id no part matches). esmed retries them whenever parts are stored and periodically, for
-- [daemon] receipt_match_window, then logs them and deletes them here; the smpp_rx_queue row
-- stays with tx_id NULL. One row per id form the receipt may match (match_rank 0 is best).
CREATE TABLE smpp_rx_unmatched (
\if :partitioned
    rx_id bigint NOT NULL,
\else
    rx_id bigint NOT NULL REFERENCES smpp_rx_queue (id) ON DELETE CASCADE,
\endif
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

\ir rx-parts-done.sql
\ir rx-refused.sql

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
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- true while the session runs TLS without checking the SMSC's certificate
    -- (smpp_tls_verify = false): anyone on the path can read and change the traffic.
    tls_unverified boolean NOT NULL DEFAULT false
);

\ir esmed-views.sql

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
    smpp_rx_parts, smpp_rx_parts_done FROM esmed;
REVOKE ALL ON SEQUENCE smpp_servers_id_seq, smpp_tx_queue_id_seq, smpp_rx_queue_id_seq
    FROM esmed;
GRANT SELECT ON smpp_servers TO esmed;
GRANT SELECT, UPDATE ON smpp_tx_queue TO esmed;
GRANT INSERT ON smpp_rx_queue TO esmed;
GRANT USAGE ON SEQUENCE smpp_rx_queue_id_seq TO esmed;
GRANT SELECT, INSERT, UPDATE ON smpp_tx_parts TO esmed;
-- rx: only the id (to link a late-matched receipt) is readable, only tx_id updatable.
GRANT SELECT (id), UPDATE (tx_id) ON smpp_rx_queue TO esmed;
GRANT SELECT, INSERT, DELETE ON smpp_rx_unmatched, smpp_rx_parts, smpp_rx_parts_done TO esmed;

\ir esmed-search-path.sql
\ir results-feed.sql
\ir purge.sql

-- status: esmed keeps its own heartbeat row (the views' grants are in esmed-views.sql).
REVOKE ALL ON esmed_status FROM esmed;
GRANT SELECT, INSERT, UPDATE, DELETE ON esmed_status TO esmed;
