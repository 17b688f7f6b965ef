-- The table of MO parts already stored, in one place for the two scripts that make it: a
-- new or upgraded schema (esmed-objects.sql) and an esmed 0.2 development build's
-- (upgrade-0.2-dev.sql), both of which include this file (psql \ir) inside their
-- transaction. Written so that running it again changes nothing; the grants are the
-- including script's.

-- added: the parts of sets already stored in smpp_rx_queue (whole, or incomplete after the
-- timeout), kept for [daemon] mo_reassembly_timeout after that. An SMSC that did not get a
-- part's deliver_sm_resp (the connection broke just after the commit) delivers the part
-- again; without this it would start a new set and, after the timeout, a second row holding
-- a fragment of a message already stored. A part with the same set, number and bytes as one
-- kept here is acknowledged and not stored again.
CREATE TABLE IF NOT EXISTS smpp_rx_parts_done (
    source_addr varchar NOT NULL,
    destination_addr varchar NOT NULL,
    ref_kind varchar NOT NULL,
    reference integer NOT NULL,
    total smallint NOT NULL,
    seq smallint NOT NULL,
    text_bytes bytea NOT NULL,
    done_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS smpp_rx_parts_done_part
    ON smpp_rx_parts_done (source_addr, destination_addr, ref_kind, reference, total, seq);
CREATE INDEX IF NOT EXISTS smpp_rx_parts_done_done_at ON smpp_rx_parts_done (done_at);
