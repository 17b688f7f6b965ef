-- The operator views, in one place for the scripts that make or change them: a new or
-- upgraded schema (esmed-objects.sql) and the 0.3 changes (changes-0.3.sql), both of which
-- include this file (psql \ir) inside their transaction. Running it again changes nothing.

-- added: views for operators (esmed status reads them too). Pending-side counts go through
-- the smpp_tx_queue_pending partial index, so they stay cheap however many finished rows the
-- table holds; counts over finished rows read the table.
--
-- Messages by state: pending (claimable now), in_flight (claimed under a live lease),
-- retry_waiting (a transient failure's backoff has not run out), done, failed. The last two
-- count all history (a table scan); filter on state to skip them: WHERE state = 'pending'
-- only reads the partial index.
CREATE OR REPLACE VIEW esmed_queue_depth AS
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
CREATE OR REPLACE VIEW esmed_hourly AS
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
CREATE OR REPLACE VIEW esmed_receipts_by_state AS
    SELECT coalesce(message_state, '') AS message_state,
           count(*) AS receipts,
           count(tx_id) AS matched
    FROM smpp_rx_queue
    WHERE is_receipt AND insert_timestamp >= now() - interval '48 hours'
    GROUP BY 1;

-- The oldest unfinished message (pending, in flight or waiting to retry): its age in seconds
-- (0 when none), when it was inserted, and how many are unfinished. Reads the partial index.
CREATE OR REPLACE VIEW esmed_oldest_pending AS
    SELECT coalesce(extract(epoch FROM now() - min(insert_timestamp)), 0)::float8
               AS age_seconds,
           min(insert_timestamp) AS oldest_insert_timestamp,
           count(*) AS unfinished
    FROM smpp_tx_queue
    WHERE NOT submission_done AND NOT submission_failed;

-- esmed reads them for esmed status.
REVOKE ALL ON esmed_queue_depth, esmed_hourly, esmed_receipts_by_state, esmed_oldest_pending
    FROM esmed;
GRANT SELECT ON esmed_queue_depth, esmed_hourly, esmed_receipts_by_state, esmed_oldest_pending
    TO esmed;
