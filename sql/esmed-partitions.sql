-- The partitioned layout's partitions (sql/db-partitioned.sql includes this file, inside its
-- transaction, after the tables): each queue has one partition per UTC day of
-- insert_timestamp, made ahead of time, and a default partition that takes a row no day's
-- partition covers, so that an insert never fails for want of one. Old history goes by
-- dropping whole days: no DELETE, no vacuum debt.
--
-- esmed makes the coming days' partitions itself, once an hour (esmed_make_partitions); the
-- functions run with their owner's rights, so the esmed role needs no right to create tables.
-- Making a partition locks its queue for a moment: the functions wait at most a second for
-- that lock (an application's long query on the queue would otherwise hold every claim up
-- behind them) and are tried again later.

CREATE TABLE smpp_tx_queue_default PARTITION OF smpp_tx_queue DEFAULT WITH (fillfactor = 40);
CREATE TABLE smpp_rx_queue_default PARTITION OF smpp_rx_queue DEFAULT;

-- The day partitions of both queues from yesterday to `days_ahead` days ahead that are
-- missing, made; rows the default partition holds for such a day move into it. Returns a line
-- for each partition made and for each queue whose default partition holds rows (rows for a
-- day more than a day past or beyond days_ahead: they are kept and found as in any partition,
-- only they leave with no day's partition).
CREATE FUNCTION esmed_make_partitions(days_ahead integer DEFAULT 7)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
SET TimeZone = 'UTC'
SET lock_timeout = '1s'
AS $$
DECLARE
    queue text;
    day date;
    waiting bigint;
BEGIN
    IF days_ahead NOT BETWEEN 0 AND 366 THEN
        RAISE EXCEPTION 'days_ahead must be between 0 and 366, not %', days_ahead;
    END IF;
    FOREACH queue IN ARRAY ARRAY['smpp_tx_queue', 'smpp_rx_queue'] LOOP
        FOR day IN
            SELECT d::date FROM generate_series(current_date - 1, current_date + days_ahead,
                                                interval '1 day') d
        LOOP
            RETURN QUERY SELECT esmed_make_day_partition(queue, day);
        END LOOP;
        EXECUTE format('SELECT count(*) FROM %I', queue || '_default') INTO waiting;
        IF waiting > 0 THEN
            RETURN NEXT format('%s_default holds %s rows outside the days partitioned',
                               queue, waiting);
        END IF;
    END LOOP;
    RETURN;
END
$$;

-- One day's partition of `queue`, unless it exists (then nothing is returned).
CREATE FUNCTION esmed_make_day_partition(queue text, day date)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
SET TimeZone = 'UTC'
SET lock_timeout = '1s'
AS $$
DECLARE
    part text := format('%s_%s', queue, to_char(day, 'YYYYMMDD'));
    fallback text := queue || '_default';
    storage text := CASE WHEN queue = 'smpp_tx_queue' THEN 'WITH (fillfactor = 40)' ELSE '' END;
    lower_bound timestamptz := day::timestamptz;
    upper_bound timestamptz := (day + 1)::timestamptz;
    stray bigint;
BEGIN
    IF queue NOT IN ('smpp_tx_queue', 'smpp_rx_queue') THEN
        RAISE EXCEPTION 'not a queue: %', queue;
    END IF;
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*) FROM %I WHERE insert_timestamp >= $1 AND insert_timestamp < $2',
                   fallback)
        USING lower_bound, upper_bound INTO stray;
    -- When the default partition holds rows of that day, PostgreSQL makes the day's partition
    -- only with the default detached, and the rows move once it exists. Inserts wait for the
    -- lock meanwhile, and fail none.
    IF stray > 0 THEN
        EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', queue, fallback);
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L) %s',
                   part, queue, lower_bound, upper_bound, storage);
    IF stray = 0 THEN
        RETURN NEXT format('%s made', part);
        RETURN;
    END IF;
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE insert_timestamp >= $1
                                   AND insert_timestamp < $2 RETURNING *)
                    INSERT INTO %I SELECT * FROM moved', fallback, part)
        USING lower_bound, upper_bound;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I DEFAULT', queue, fallback);
    RETURN NEXT format('%s made, with %s rows from %s', part, stray, fallback);
END
$$;

-- Retention on this layout: drops the day partitions that end before `cutoff` and hold
-- nothing that must stay, with their messages' parts. A day of smpp_tx_queue goes when every
-- row of it is finished (done or failed, not claimed), last changed before the cutoff, and
-- past its receipts (a final state, or last changed before receipt_window ago). A day of
-- smpp_rx_queue goes when none of its rows waits for its message in smpp_rx_unmatched and
-- none is a receipt of a message that stays. A day that may not go yet is left whole and
-- named, for the row-by-row purge (esmed purge) to take what it can. With dry_run nothing is
-- dropped. Returns a line per day partition looked at. It runs with its owner's rights (the
-- partitions' owner drops them); only the roles it is granted to may call it.
CREATE FUNCTION esmed_drop_partitions(cutoff timestamptz, receipt_window interval,
                                      dry_run boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
SET TimeZone = 'UTC'
SET lock_timeout = '1s'
AS $$
DECLARE
    part record;
    settled timestamptz := least(cutoff, now() - receipt_window);
    blocking bigint;
    parts bigint;
    rows_in bigint;
    oldest_kept bigint;
    -- The smpp_tx_queue days that go (or would, in a dry run).
    gone regclass[] := '{}';
BEGIN
    FOR part IN SELECT * FROM esmed_day_partitions('smpp_tx_queue', cutoff) LOOP
        EXECUTE format(
            'SELECT count(*) FILTER (WHERE NOT ((t.submission_done OR t.submission_failed)
                     AND t.claimed_by IS NULL
                     AND greatest(t.insert_timestamp, t.submission_timestamp,
                                  t.message_state_timestamp) < $1
                     AND ((t.smpp_message_state IS NOT NULL
                           AND upper(t.smpp_message_state) NOT IN (''ENROUTE'', ''ACCEPTED''))
                          OR greatest(t.insert_timestamp, t.submission_timestamp,
                                      t.message_state_timestamp) < $2))),
                    count(*)
             FROM %I t', part.name)
            USING cutoff, settled INTO blocking, rows_in;
        IF blocking > 0 THEN
            RETURN NEXT format('%s kept: %s of its %s messages may not go yet',
                               part.name, blocking, rows_in);
            CONTINUE;
        END IF;
        EXECUTE format('SELECT count(*) FROM smpp_tx_parts WHERE tx_id IN (SELECT id FROM %I)',
                       part.name) INTO parts;
        gone := gone || part.name::regclass;
        IF NOT dry_run THEN
            EXECUTE format('DELETE FROM smpp_tx_parts WHERE tx_id IN (SELECT id FROM %I)',
                           part.name);
            EXECUTE format('DROP TABLE %I', part.name);
        END IF;
        RETURN NEXT format('%s %s: %s messages, %s parts', part.name,
                           CASE WHEN dry_run THEN 'would be dropped' ELSE 'dropped' END,
                           rows_in, parts);
    END LOOP;
    -- Receipts whose message has a smaller id than every message kept point at none.
    SELECT min(id) INTO oldest_kept FROM smpp_tx_queue WHERE tableoid <> ALL (gone);
    FOR part IN SELECT * FROM esmed_day_partitions('smpp_rx_queue', cutoff) LOOP
        EXECUTE format(
            'SELECT count(*) FROM %I r
             WHERE EXISTS (SELECT 1 FROM smpp_rx_unmatched u WHERE u.rx_id = r.id)
                OR (r.tx_id >= $1 AND EXISTS (SELECT 1 FROM smpp_tx_queue t
                                              WHERE t.id = r.tx_id
                                                AND t.tableoid <> ALL ($2)))', part.name)
            USING coalesce(oldest_kept, 9223372036854775807), gone INTO blocking;
        EXECUTE format('SELECT count(*) FROM %I', part.name) INTO rows_in;
        IF blocking > 0 THEN
            RETURN NEXT format('%s kept: %s of its %s received messages may not go yet',
                               part.name, blocking, rows_in);
            CONTINUE;
        END IF;
        IF NOT dry_run THEN
            EXECUTE format('DROP TABLE %I', part.name);
        END IF;
        RETURN NEXT format('%s %s: %s received messages', part.name,
                           CASE WHEN dry_run THEN 'would be dropped' ELSE 'dropped' END,
                           rows_in);
    END LOOP;
END
$$;

-- The day partitions of `queue` that end at or before `cutoff`, oldest first.
CREATE FUNCTION esmed_day_partitions(queue text, cutoff timestamptz)
RETURNS TABLE (name text, upper_bound timestamptz)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
SET TimeZone = 'UTC'
AS $$
    SELECT name, upper_bound FROM (
        SELECT c.relname::text AS name,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                             'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = to_regclass(queue) AND c.relname ~ '_[0-9]{8}$'
    ) p
    WHERE upper_bound <= cutoff
    ORDER BY upper_bound
$$;

REVOKE ALL ON FUNCTION esmed_make_partitions(integer), esmed_make_day_partition(text, date)
    FROM PUBLIC;
-- Dropping history is for the purge's privileged role (or the tables' owner), never the
-- daemon's: the esmed_purge role (sql/purge.sql), which `esmed purge` connects in.
REVOKE ALL ON FUNCTION esmed_drop_partitions(timestamptz, interval, boolean),
    esmed_day_partitions(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION esmed_drop_partitions(timestamptz, interval, boolean) TO esmed_purge;
GRANT EXECUTE ON FUNCTION esmed_make_partitions(integer) TO esmed;

DO $$
BEGIN
    PERFORM esmed_make_partitions();
END
$$;
