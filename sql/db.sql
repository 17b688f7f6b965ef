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
--
-- sql/db-partitioned.sql loads this file with the psql variable `partitioned` set: the same
-- tables and columns, the two queues partitioned by day of insert_timestamp (marked
-- "partitioned" below).

\if :{?partitioned}
\else
\set partitioned false
\endif

BEGIN;

-- The daemon's login role.
\ir esmed-role.sql

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
    -- added: for an SMSC that asks for a client certificate, PEM files (on esmed's host,
    -- readable by esmed) of our certificate chain (ours first) and its private key; both
    -- NULL = none sent.
    smpp_tls_cert_file varchar,
    smpp_tls_key_file varchar,
    UNIQUE (host, port)
);

-- Messages to send. Applications insert (smpp_destination_addr, smpp_short_message) and read
-- the outcome back from the submission_* and smpp_message_* columns.
CREATE TABLE smpp_tx_queue (
    -- bigserial (was serial): at a few thousand messages a second 2^31 ids last days.
\if :partitioned
    -- partitioned: the key is (id, insert_timestamp), as a partition's key must hold the
    -- partitioning column; ids stay unique, from the one sequence.
    id bigserial,
\else
    id bigserial PRIMARY KEY,
\endif
    -- NOT NULL (added): esmed finds a claimed row again by its id and insert_timestamp (on
    -- the partitioned layout the timestamp names the one partition to look in).
    insert_timestamp timestamptz NOT NULL DEFAULT now(),
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
    -- NOT NULL (added): a NULL would match neither "pending" nor "finished".
    submission_done boolean NOT NULL DEFAULT false,
    submission_failed boolean NOT NULL DEFAULT false,
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
    smpp_message_id_key varchar,
    -- added: the results feed's position of the row's latest result (final outcome or receipt
    -- state), from esmed_result_seq; NULL until it has one. Read with esmed_results_since()
    -- (sql/results-feed.sql).
    result_seq bigint
\if :partitioned
    , PRIMARY KEY (id, insert_timestamp)
)
PARTITION BY RANGE (insert_timestamp);
\else
)
-- added: room on every page, so that claiming a row (which changes only unindexed columns)
-- is a HOT update that touches no index: a page filled to at most half has room for a new
-- version of each of its rows. Measured over a million-row drain against 60: every claim
-- HOT (was two in three), the queue grows 8-9 % (was 38 %), 20 % less PostgreSQL CPU per
-- message, and the drain slows less towards its end. esmed warns at start above 50.
-- (partitioned: each partition has it, see esmed-partitions.sql.)
WITH (fillfactor = 40);
\endif

-- added: finding pending rows stays cheap when the table holds millions of finished ones.
CREATE INDEX smpp_tx_queue_pending ON smpp_tx_queue (smpp_priority_flag DESC NULLS LAST, id)
    WHERE NOT submission_done AND NOT submission_failed;

-- added: receipts for single-part messages find their row by its key.
CREATE INDEX smpp_tx_queue_message_id_key ON smpp_tx_queue (smpp_message_id_key)
    WHERE smpp_message_id_key IS NOT NULL;

-- What the SMSC sent: delivery receipts and mobile-originated messages.
CREATE TABLE smpp_rx_queue (
    -- bigserial (was serial): every receipt takes an id too.
\if :partitioned
    id bigserial,
\else
    id bigserial PRIMARY KEY,
\endif
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
    tx_id bigint,
    -- added: the text bytes were invalid for the data_coding (stored as well as possible).
    text_invalid boolean NOT NULL DEFAULT false,
    -- added: for a concatenated MO reassembled from parts: how many parts it has (NULL for a
    -- single message). pdu_raw then holds every part's PDU hex in part order, separated by
    -- ',', and pdu_parsed a JSON array of the parts' JSON; smpp_short_message the whole text.
    mo_parts smallint,
    -- added: the set never completed within [daemon] mo_reassembly_timeout; the row holds
    -- the parts that arrived, in order (mo_parts counts the parts the set should have).
    mo_incomplete boolean NOT NULL DEFAULT false,
    -- added: the received feed's position of the row (given when it is stored, again when a
    -- receipt is linked to its message late), from esmed_received_seq. Read with
    -- esmed_received_since() (sql/results-feed.sql).
    result_seq bigint
\if :partitioned
    , PRIMARY KEY (id, insert_timestamp)
)
PARTITION BY RANGE (insert_timestamp);
\else
);
\endif

\ir esmed-objects.sql
\if :partitioned
\ir esmed-partitions.sql
\endif

COMMIT;
