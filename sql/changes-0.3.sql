-- What esmed 0.3 changed in an esmed 0.2 schema, in one place for every upgrade script
-- (upgrade-0.2.sql, upgrade-0.1.sql, upgrade-0.2-dev.sql), which include this file (psql \ir)
-- inside their transaction. Each step does nothing when the database already has it.

-- 64-bit ids: a serial (32-bit) id runs out after 2^31 rows, under ten hours at esmed's own
-- burst rate and a month at 1,000 messages a second; every receipt takes an smpp_rx_queue id
-- too. Changing a column's type rewrites its table under an exclusive lock: on a large queue
-- this takes minutes, during which esmed and applications wait. A column that is bigint
-- already is not rewritten. The view that reads smpp_rx_queue.tx_id is made again below.
DROP VIEW IF EXISTS esmed_receipts_by_state;
-- So is the results feed's trigger whose condition reads smpp_rx_queue.tx_id (on a second run).
DROP TRIGGER IF EXISTS smpp_rx_queue_result_seq_link ON smpp_rx_queue;
ALTER TABLE smpp_tx_queue ALTER COLUMN id TYPE bigint;
ALTER SEQUENCE smpp_tx_queue_id_seq AS bigint;
ALTER TABLE smpp_rx_queue ALTER COLUMN id TYPE bigint, ALTER COLUMN tx_id TYPE bigint;
ALTER SEQUENCE smpp_rx_queue_id_seq AS bigint;
ALTER TABLE smpp_tx_parts ALTER COLUMN tx_id TYPE bigint;
ALTER TABLE smpp_rx_unmatched ALTER COLUMN rx_id TYPE bigint;

-- submission_done / submission_failed NOT NULL. No esmed claims a row whose flag is NULL,
-- so such a row was never sent. One inserted in the last day is made pending and is sent;
-- an older one is failed with a submission_info saying why, so that nothing goes out days
-- late.
UPDATE smpp_tx_queue
    SET submission_failed = true, submission_done = false,
        submission_info = 'not sent: submission_done or submission_failed was NULL, which '
            || 'esmed never claims; failed by the 0.3 upgrade as more than a day old'
    WHERE (submission_done IS NULL OR submission_failed IS NULL)
      AND NOT coalesce(submission_done, false) AND NOT coalesce(submission_failed, false)
      AND coalesce(insert_timestamp, '-infinity') < now() - interval '1 day';
UPDATE smpp_tx_queue
    SET submission_done = coalesce(submission_done, false),
        submission_failed = coalesce(submission_failed, false)
    WHERE submission_done IS NULL OR submission_failed IS NULL;
ALTER TABLE smpp_tx_queue
    ALTER COLUMN submission_done SET NOT NULL,
    ALTER COLUMN submission_failed SET NOT NULL;

-- insert_timestamp NOT NULL: esmed finds a claimed row again by its id and insert_timestamp,
-- so a row without one could be claimed but never given its result. A row inserted with an
-- explicit NULL gets the earliest time it is known by, else the upgrade's. Checking the
-- constraint reads the whole table once, under the upgrade's exclusive lock.
UPDATE smpp_tx_queue
    SET insert_timestamp = coalesce(submission_timestamp, message_state_timestamp, now())
    WHERE insert_timestamp IS NULL;
ALTER TABLE smpp_tx_queue ALTER COLUMN insert_timestamp SET NOT NULL;

-- esmed status shows a session whose TLS does not check the SMSC's certificate.
ALTER TABLE esmed_status ADD COLUMN IF NOT EXISTS tls_unverified boolean NOT NULL DEFAULT false;

-- Received messages PostgreSQL refuses to store are set aside there rather than refused
-- for ever.
\ir rx-refused.sql

\ir esmed-views.sql
\ir esmed-search-path.sql

-- The results feed: result_seq on both queues, its sequences, triggers and reading functions.
-- Rows finished before the upgrade have none (NULL): the feed starts with the first result
-- after it.
\ir results-feed.sql
\ir purge.sql
