-- Retention: removing finished history, in one place for a new or upgraded schema
-- (esmed-objects.sql) and the 0.3 changes (changes-0.3.sql), which include this file (psql \ir)
-- inside their transaction. Running it again changes nothing.
--
-- `esmed purge --older-than 30d` calls these functions batch by batch, each call its own short
-- transaction; from psql, `CALL esmed_purge('30 days')` does the same. What goes:
--   * smpp_tx_queue rows that are finished (done or failed, not claimed), whose last change
--     (inserted, submitted, receipt state) is older than the cut-off, and for which no receipt
--     may still come: their state is final, or they were last changed longer ago than the
--     receipt match window. Their smpp_tx_parts rows go with them.
--   * smpp_rx_queue rows (MO, receipts) stored before the cut-off, except a receipt whose
--     message is still in smpp_tx_queue (it goes with its message) or that still waits for
--     its message in smpp_rx_unmatched.
-- Never a pending or in-flight row. Each batch walks the next stretch of the table in id order
-- (the primary key: no scan of the whole table, however large) and locks the rows it removes
-- with FOR UPDATE SKIP LOCKED: a row another transaction holds (a result, a receipt state
-- being written) is left for the next run, never waited for. Claims and results never touch
-- finished rows, so a purge never holds them up.
--
-- The functions run with their caller's rights: only a role that may DELETE from the queues
-- can use them, which the daemon's role (esmed) may not. The esmed_purge role has exactly
-- what they need; give it to the login role the purge connects as:
--   CREATE ROLE esmed_purger LOGIN PASSWORD '...' IN ROLE esmed_purge;
-- ([purge] user and pass in esmed.conf), or run them as the tables' owner.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'esmed_purge') THEN
        CREATE ROLE esmed_purge NOLOGIN NOSUPERUSER;
    END IF;
END
$$;

-- Whether a receipt state is final: anything but none, ENROUTE and ACCEPTED (esmed's names
-- of the non-final states).
CREATE OR REPLACE FUNCTION esmed_state_is_final(state varchar) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT state IS NOT NULL AND upper(state) NOT IN ('ENROUTE', 'ACCEPTED')
$$;

-- Whether message t may go: finished, not claimed, last changed before the cut-off, and no
-- receipt may still come (its state is final, or it was last changed before settled: the
-- receipt window before now).
CREATE OR REPLACE FUNCTION esmed_purgeable(t smpp_tx_queue, cutoff timestamptz,
                                           settled timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (t.submission_done OR t.submission_failed) AND t.claimed_by IS NULL
       AND greatest(t.insert_timestamp, t.submission_timestamp, t.message_state_timestamp)
           < cutoff
       AND (esmed_state_is_final(t.smpp_message_state)
            OR greatest(t.insert_timestamp, t.submission_timestamp, t.message_state_timestamp)
               < settled)
$$;

-- One batch of messages: the next batch_rows rows after after_id (in id order), of which
-- those that may go are removed (counted only, when dry_run). Returns what it removed (or
-- would), the last id it looked at (the next batch's after_id) and whether to go on (it saw
-- rows older than the cut-off).
CREATE OR REPLACE FUNCTION esmed_purge_messages(
    cutoff timestamptz, receipt_window interval, after_id bigint, batch_rows int,
    dry_run boolean,
    OUT messages bigint, OUT parts bigint, OUT last_id bigint, OUT more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    examined bigint[];
    doomed bigint[];
    -- A message may still get a receipt until receipt_window after its last change.
    settled timestamptz := least(cutoff, now() - receipt_window);
BEGIN
    SELECT coalesce(array_agg(id), '{}'), max(id), coalesce(bool_or(insert_timestamp < cutoff), false)
    INTO examined, last_id, more
    FROM (SELECT id, insert_timestamp FROM smpp_tx_queue
          WHERE id > after_id ORDER BY id LIMIT batch_rows) s;
    IF dry_run THEN
        SELECT coalesce(array_agg(t.id), '{}') INTO doomed FROM smpp_tx_queue t
        WHERE t.id = ANY (examined) AND esmed_purgeable(t, cutoff, settled);
        SELECT count(*) INTO parts FROM smpp_tx_parts WHERE tx_id = ANY (doomed);
        messages := cardinality(doomed);
        RETURN;
    END IF;
    SELECT coalesce(array_agg(id), '{}') INTO doomed FROM (
        SELECT t.id FROM smpp_tx_queue t
        WHERE t.id = ANY (examined) AND esmed_purgeable(t, cutoff, settled)
        FOR UPDATE SKIP LOCKED) s;
    WITH gone AS (DELETE FROM smpp_tx_parts WHERE tx_id = ANY (doomed) RETURNING 1)
    SELECT count(*) INTO parts FROM gone;
    WITH gone AS (DELETE FROM smpp_tx_queue WHERE id = ANY (doomed) RETURNING 1)
    SELECT count(*) INTO messages FROM gone;
END
$$;

-- One batch of received rows, the same way: MO and receipts stored before the cut-off whose
-- message is gone (or never matched) and that wait for nothing. A dry run, which removed no
-- message, counts the receipts of the messages it would have removed as well.
CREATE OR REPLACE FUNCTION esmed_purge_received(
    cutoff timestamptz, receipt_window interval, after_id bigint, batch_rows int,
    dry_run boolean,
    OUT mo bigint, OUT receipts bigint, OUT last_id bigint, OUT more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    examined bigint[];
    settled timestamptz := least(cutoff, now() - receipt_window);
BEGIN
    SELECT coalesce(array_agg(id), '{}'), max(id), coalesce(bool_or(insert_timestamp < cutoff), false)
    INTO examined, last_id, more
    FROM (SELECT id, insert_timestamp FROM smpp_rx_queue
          WHERE id > after_id ORDER BY id LIMIT batch_rows) s;
    IF dry_run THEN
        SELECT count(*) FILTER (WHERE NOT r.is_receipt), count(*) FILTER (WHERE r.is_receipt)
        INTO mo, receipts FROM smpp_rx_queue r
        WHERE r.id = ANY (examined) AND r.insert_timestamp < cutoff
          AND NOT EXISTS (SELECT 1 FROM smpp_tx_queue t
                          WHERE t.id = r.tx_id AND NOT esmed_purgeable(t, cutoff, settled))
          AND NOT EXISTS (SELECT 1 FROM smpp_rx_unmatched u WHERE u.rx_id = r.id);
        RETURN;
    END IF;
    WITH doomed AS (
        SELECT r.id FROM smpp_rx_queue r
        WHERE r.id = ANY (examined) AND r.insert_timestamp < cutoff
          AND NOT EXISTS (SELECT 1 FROM smpp_tx_queue t WHERE t.id = r.tx_id)
          AND NOT EXISTS (SELECT 1 FROM smpp_rx_unmatched u WHERE u.rx_id = r.id)
        FOR UPDATE OF r SKIP LOCKED),
    gone AS (DELETE FROM smpp_rx_queue r USING doomed WHERE r.id = doomed.id
             RETURNING r.is_receipt)
    SELECT count(*) FILTER (WHERE NOT is_receipt), count(*) FILTER (WHERE is_receipt)
    INTO mo, receipts FROM gone;
END
$$;

-- The whole purge for psql or cron: messages, then received rows, one transaction per batch
-- (CALL it outside a transaction block). Says what it removed (or would) in a NOTICE.
CREATE OR REPLACE PROCEDURE esmed_purge(
    older_than interval, receipt_window interval DEFAULT '1 hour',
    batch_rows int DEFAULT 1000, dry_run boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - older_than;
    after_id bigint := 0;
    b record;
    messages bigint := 0;
    parts bigint := 0;
    mo bigint := 0;
    receipts bigint := 0;
BEGIN
    LOOP
        SELECT * INTO b FROM esmed_purge_messages(cutoff, receipt_window, after_id, batch_rows,
                                                  dry_run);
        messages := messages + b.messages;
        parts := parts + b.parts;
        EXIT WHEN NOT b.more;
        after_id := b.last_id;
        COMMIT;
    END LOOP;
    COMMIT;
    after_id := 0;
    LOOP
        SELECT * INTO b FROM esmed_purge_received(cutoff, receipt_window, after_id, batch_rows,
                                                  dry_run);
        mo := mo + b.mo;
        receipts := receipts + b.receipts;
        EXIT WHEN NOT b.more;
        after_id := b.last_id;
        COMMIT;
    END LOOP;
    RAISE NOTICE 'esmed_purge: % % messages (% parts), % receipts and % MO older than %',
        CASE WHEN dry_run THEN 'would remove' ELSE 'removed' END,
        messages, parts, receipts, mo, cutoff;
END
$$;

-- They name tables without a schema: they look in this one whatever the caller's search_path.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION esmed_purge_messages(timestamptz, interval, bigint, int, '
                   'boolean) SET search_path = pg_catalog, %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION esmed_purge_received(timestamptz, interval, bigint, int, '
                   'boolean) SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;

REVOKE ALL ON FUNCTION esmed_purge_messages(timestamptz, interval, bigint, int, boolean),
    esmed_purge_received(timestamptz, interval, bigint, int, boolean) FROM PUBLIC;
REVOKE ALL ON PROCEDURE esmed_purge(interval, interval, int, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION esmed_purge_messages(timestamptz, interval, bigint, int, boolean),
    esmed_purge_received(timestamptz, interval, bigint, int, boolean) TO esmed_purge;
GRANT EXECUTE ON PROCEDURE esmed_purge(interval, interval, int, boolean) TO esmed_purge;
-- FOR UPDATE needs UPDATE on a column: the lease's, which finished rows no longer use, and
-- tx_id, which esmed updates itself.
REVOKE ALL ON smpp_tx_queue, smpp_tx_parts, smpp_rx_queue, smpp_rx_unmatched FROM esmed_purge;
GRANT SELECT, DELETE ON smpp_tx_queue, smpp_tx_parts, smpp_rx_queue TO esmed_purge;
GRANT UPDATE (claimed_by) ON smpp_tx_queue TO esmed_purge;
GRANT UPDATE (tx_id) ON smpp_rx_queue TO esmed_purge;
GRANT SELECT ON smpp_rx_unmatched TO esmed_purge;
