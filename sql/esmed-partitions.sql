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
    IF stray = 0 THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L) %s',
                       part, queue, lower_bound, upper_bound, storage);
        RETURN NEXT format('%s made', part);
        RETURN;
    END IF;
    -- The default partition holds rows of that day: PostgreSQL makes the day's partition
    -- only once they are out of it. Inserts wait for the lock meanwhile, and fail none.
    EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', queue, fallback);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L) %s',
                   part, queue, lower_bound, upper_bound, storage);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE insert_timestamp >= $1
                                   AND insert_timestamp < $2 RETURNING *)
                    INSERT INTO %I SELECT * FROM moved', fallback, part)
        USING lower_bound, upper_bound;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I DEFAULT', queue, fallback);
    RETURN NEXT format('%s made, with %s rows from %s', part, stray, fallback);
END
$$;

REVOKE ALL ON FUNCTION esmed_make_partitions(integer), esmed_make_day_partition(text, date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION esmed_make_partitions(integer) TO esmed;

DO $$
BEGIN
    PERFORM esmed_make_partitions();
END
$$;
