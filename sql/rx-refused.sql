-- The tables of received messages PostgreSQL refused to store, in one place for the scripts
-- that make them: a new or upgraded schema (esmed-objects.sql) and the 0.3 changes
-- (changes-0.3.sql), both of which include this file (psql \ir) inside their transaction.
-- Running it again changes nothing.

-- added: the parts of concatenated MO messages whose row smpp_rx_queue refused even without
-- its text (an operator's trigger or CHECK constraint), moved here from smpp_rx_parts with
-- PostgreSQL's reason, so that they neither block the other sets nor are tried again every
-- few seconds. esmed only inserts here. To try a set again once the cause is fixed, move its
-- parts back into smpp_rx_parts (all columns but reason and refused_at): the columns are
-- smpp_rx_parts' own, so the two cannot drift apart.
CREATE TABLE IF NOT EXISTS smpp_rx_parts_refused (
    LIKE smpp_rx_parts,
    reason varchar NOT NULL,
    refused_at timestamptz NOT NULL DEFAULT now()
);

REVOKE ALL ON smpp_rx_parts_refused FROM esmed;
GRANT INSERT ON smpp_rx_parts_refused TO esmed;

-- added: received PDUs (other than parts of a concatenated MO) whose smpp_rx_queue row was
-- refused even without its text (an operator's trigger or CHECK constraint), with
-- PostgreSQL's reason. The SMSC has them acknowledged: kept here, they are neither lost nor
-- refused at every delivery until the SMSC gives up. esmed only inserts here.
CREATE TABLE IF NOT EXISTS smpp_rx_refused (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- as in smpp_rx_queue: the raw PDU as lower-case hex, and decoded as JSON text
    pdu_raw varchar NOT NULL,
    pdu_parsed varchar NOT NULL,
    smpp_source_addr varchar NOT NULL,
    smpp_destination_addr varchar NOT NULL,
    reason varchar NOT NULL
);

REVOKE ALL ON smpp_rx_refused FROM esmed;
GRANT INSERT ON smpp_rx_refused TO esmed;
GRANT USAGE ON SEQUENCE smpp_rx_refused_id_seq TO esmed;
