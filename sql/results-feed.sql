-- The results feed, in one place for a new or upgraded schema (esmed-objects.sql) and the
-- 0.3 changes (changes-0.3.sql), which include this file (psql \ir) inside their transaction.
-- Running it again changes nothing.
--
-- Each final outcome (submission_done or submission_failed set) and each change of
-- smpp_message_state gives the smpp_tx_queue row a new result_seq; each smpp_rx_queue row
-- gets one when it is stored and again when a late receipt is linked to its message (tx_id).
-- An application keeps the last result_seq it handled (its cursor) and reads on from there:
--   SELECT * FROM esmed_results_since($cursor, 1000);   -- smpp_tx_queue rows, in order
--   SELECT * FROM esmed_received_since($cursor, 1000);  -- smpp_rx_queue rows, in order
-- and LISTENs on esmed_results / esmed_received to be woken when there is more.
--
-- Why the functions and not a plain "WHERE result_seq > $cursor": values are taken from the
-- sequence in one order and committed in another. A writer that took 10 and commits after
-- the one that took 11 would be skipped by a reader that saw 11 first. So each writer holds a
-- shared advisory lock (the gate) from before it takes its first value until it ends; the
-- functions read the sequence's last value, then wait for the gate's holders of that moment
-- to end (milliseconds: they are esmed's batches), and only then read the rows up to that
-- value. Every value up to it is then committed, and seen, or rolled back, never seen.
-- Writers never wait for each other or for readers (the gate is only ever taken shared), and
-- a writer pays one lock per statement and about 2 µs per row. The sequences must
-- keep CACHE 1: a value cached by a session is taken before the reader reads the sequence
-- and used after.

CREATE SEQUENCE IF NOT EXISTS esmed_result_seq AS bigint;
CREATE SEQUENCE IF NOT EXISTS esmed_received_seq AS bigint;

ALTER TABLE smpp_tx_queue ADD COLUMN IF NOT EXISTS result_seq bigint;
ALTER TABLE smpp_rx_queue ADD COLUMN IF NOT EXISTS result_seq bigint;

-- Rows without a result (pending, in flight) are not in the index.
CREATE INDEX IF NOT EXISTS smpp_tx_queue_result_seq ON smpp_tx_queue (result_seq)
    WHERE result_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS smpp_rx_queue_result_seq ON smpp_rx_queue (result_seq)
    WHERE result_seq IS NOT NULL;

-- The gate's keys: pg_advisory_xact_lock_shared(1702063462 ("esmf"), 1) for smpp_tx_queue's
-- results, (1702063462, 2) for smpp_rx_queue. esmed's instance locks use another first key.
--
-- esmed's own statements that finish rows, write receipt states, store received rows and
-- link late receipts take the gate and the values themselves (a MATERIALIZED CTE that takes
-- the gate, as a one-time filter, then result_seq = nextval(...)), and send the NOTIFY with
-- esmed_notify_feed(): about 2 µs a row. The triggers below only cover what those statements
-- do not: an operator's or application's own UPDATE or INSERT, and esmed's rare paths (a
-- result PostgreSQL refused, a text too long to send). They fire only when the statement
-- left result_seq alone.
--
-- No BEFORE UPDATE row trigger on the queues: with one, PostgreSQL locks every row an UPDATE
-- touches before the trigger's WHEN is even looked at (a tuple lock, written to the WAL),
-- claims and lease renewals included: a claim wrote twice the WAL. An AFTER row trigger's
-- WHEN is checked on the row the UPDATE wrote, with no lock; when it holds (rarely), the
-- function gives the row its value with an UPDATE of its own.
--
-- The row trigger after an UPDATE: takes the gate, then the row's value (in this order), and
-- sends the feed's NOTIFY once per transaction (with the first value it gave: listeners read
-- on from their cursor, which brings every row the transaction committed). No statement
-- trigger: one would run on every UPDATE of the queue, claims and renewals included. Table
-- and sequence are named with the table's schema, so an application's own UPDATE works
-- whatever its search_path. TG_ARGV: the gate's second key, the sequence, the channel.
CREATE OR REPLACE FUNCTION esmed_give_result_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    given bigint;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1702063462, TG_ARGV[0]::int4);
    -- The queue itself, not the partition the row is in (on the partitioned layout the
    -- trigger runs on a partition, which the caller may not name); the row's insert_timestamp
    -- finds its partition at once.
    EXECUTE format('UPDATE %s SET result_seq = nextval(%L)
                    WHERE id = $1 AND insert_timestamp IS NOT DISTINCT FROM $2
                    RETURNING result_seq',
                   coalesce(pg_partition_root(TG_RELID), TG_RELID)::regclass,
                   format('%I.%I', TG_TABLE_SCHEMA, TG_ARGV[1]))
        INTO given USING NEW.id, NEW.insert_timestamp;
    PERFORM esmed_notify_once(TG_ARGV[2], given);
    RETURN NULL;
END
$$;

-- The row trigger before an INSERT (which locks nothing): the same, on the row being inserted.
CREATE OR REPLACE FUNCTION esmed_take_result_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1702063462, TG_ARGV[0]::int4);
    NEW.result_seq := nextval(format('%I.%I', TG_TABLE_SCHEMA, TG_ARGV[1]));
    PERFORM esmed_notify_once(TG_ARGV[2], NEW.result_seq);
    RETURN NEW;
END
$$;

-- The triggers' NOTIFY: once per transaction and channel (the mark is rolled back with a
-- savepoint, as the NOTIFY is).
CREATE OR REPLACE FUNCTION esmed_notify_once(channel text, given bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('esmed.notified_' || channel, true) IS DISTINCT FROM 'yes' THEN
        PERFORM pg_notify(channel, given::text);
        PERFORM set_config('esmed.notified_' || channel, 'yes', true);
    END IF;
END
$$;

-- esmed's statements end with this: one NOTIFY on channel with the highest value the
-- statement gave (none when it gave none). Returns whether it notified.
CREATE OR REPLACE FUNCTION esmed_notify_feed(channel text, high bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF high IS NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_notify(channel, high::text);
    RETURN true;
END
$$;

DROP TRIGGER IF EXISTS smpp_tx_queue_result_seq ON smpp_tx_queue;
CREATE TRIGGER smpp_tx_queue_result_seq
    AFTER UPDATE ON smpp_tx_queue
    FOR EACH ROW WHEN (NEW.result_seq IS NOT DISTINCT FROM OLD.result_seq
                       AND (NEW.submission_done IS DISTINCT FROM OLD.submission_done
                            OR NEW.submission_failed IS DISTINCT FROM OLD.submission_failed
                            OR NEW.smpp_message_state IS DISTINCT FROM OLD.smpp_message_state))
    EXECUTE FUNCTION esmed_give_result_seq('1', 'esmed_result_seq', 'esmed_results');

-- A row inserted already finished (an application copying history in) gets a value too.
DROP TRIGGER IF EXISTS smpp_tx_queue_result_seq_insert ON smpp_tx_queue;
CREATE TRIGGER smpp_tx_queue_result_seq_insert
    BEFORE INSERT ON smpp_tx_queue
    FOR EACH ROW WHEN ((NEW.submission_done OR NEW.submission_failed) AND NEW.result_seq IS NULL)
    EXECUTE FUNCTION esmed_take_result_seq('1', 'esmed_result_seq', 'esmed_results');

DROP TRIGGER IF EXISTS smpp_rx_queue_result_seq ON smpp_rx_queue;
CREATE TRIGGER smpp_rx_queue_result_seq
    BEFORE INSERT ON smpp_rx_queue
    FOR EACH ROW WHEN (NEW.result_seq IS NULL)
    EXECUTE FUNCTION esmed_take_result_seq('2', 'esmed_received_seq', 'esmed_received');

DROP TRIGGER IF EXISTS smpp_rx_queue_result_seq_link ON smpp_rx_queue;
CREATE TRIGGER smpp_rx_queue_result_seq_link
    AFTER UPDATE ON smpp_rx_queue
    FOR EACH ROW WHEN (NEW.tx_id IS DISTINCT FROM OLD.tx_id
                       AND NEW.result_seq IS NOT DISTINCT FROM OLD.result_seq)
    EXECUTE FUNCTION esmed_give_result_seq('2', 'esmed_received_seq', 'esmed_received');

-- The highest value of feed 1 (results) or 2 (received) below which every row is committed
-- or never will be: the sequence's last value, once the writers that held the gate when it
-- was read have ended. Needs READ COMMITTED (the caller's next statement must see what those
-- writers committed). SECURITY DEFINER so that a reader needs no privilege on the sequences;
-- it tells nothing but two counters.
CREATE OR REPLACE FUNCTION esmed_feed_bound(feed int) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS $$
DECLARE
    bound bigint;
    writers text[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'the esmed results feed needs READ COMMITTED, not %',
                current_setting('transaction_isolation')
            USING HINT = 'Call esmed_results_since / esmed_received_since outside a '
                         'REPEATABLE READ or SERIALIZABLE transaction.';
    END IF;
    bound := coalesce(pg_sequence_last_value(CASE feed WHEN 1 THEN 'esmed_result_seq'
                                                       WHEN 2 THEN 'esmed_received_seq'
                                             END::regclass), 0);
    -- After the sequence was read: whoever took a value up to it holds the gate now, or has
    -- ended.
    SELECT array_agg(virtualtransaction) INTO writers FROM pg_locks
    WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database
                                                WHERE datname = current_database())
      AND classid = 1702063462 AND objid = feed AND objsubid = 2 AND granted;
    WHILE writers IS NOT NULL AND EXISTS (
            SELECT 1 FROM pg_locks
            WHERE locktype = 'advisory' AND classid = 1702063462 AND objid = feed
              AND objsubid = 2 AND virtualtransaction = ANY (writers)) LOOP
        PERFORM pg_sleep(0.001);
    END LOOP;
    RETURN bound;
END
$$;

-- smpp_tx_queue rows whose result_seq is above cursor, in result_seq order, at most max_rows:
-- never one skipped (see above). A row whose result changes again comes again with its new
-- value. SECURITY INVOKER: the caller needs SELECT on smpp_tx_queue, as for any query.
CREATE OR REPLACE FUNCTION esmed_results_since(cursor bigint, max_rows int DEFAULT 1000)
RETURNS SETOF smpp_tx_queue
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    bound bigint := esmed_feed_bound(1);
BEGIN
    RETURN QUERY SELECT * FROM smpp_tx_queue
        WHERE result_seq > cursor AND result_seq <= bound
        ORDER BY result_seq LIMIT max_rows;
END
$$;

-- The same for smpp_rx_queue: MO messages and receipts as they are stored, and receipts
-- again when they are linked to their message late.
CREATE OR REPLACE FUNCTION esmed_received_since(cursor bigint, max_rows int DEFAULT 1000)
RETURNS SETOF smpp_rx_queue
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    bound bigint := esmed_feed_bound(2);
BEGIN
    RETURN QUERY SELECT * FROM smpp_rx_queue
        WHERE result_seq > cursor AND result_seq <= bound
        ORDER BY result_seq LIMIT max_rows;
END
$$;

-- The functions name tables and sequences without a schema: they look in this one whatever
-- the caller's search_path (pg_temp last, so that no temporary table stands in for them).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION esmed_feed_bound(int) SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION esmed_results_since(bigint, int) '
                   'SET search_path = pg_catalog, %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION esmed_received_since(bigint, int) '
                   'SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;

-- esmed's role takes values; only the sequences' owner may set them back. Of smpp_rx_queue
-- it reads the values its statements gave (for the NOTIFY) and gives a linked receipt its
-- new one, nothing else but the id and tx_id.
REVOKE ALL ON SEQUENCE esmed_result_seq, esmed_received_seq FROM esmed;
GRANT USAGE ON SEQUENCE esmed_result_seq, esmed_received_seq TO esmed;
GRANT SELECT (result_seq), UPDATE (result_seq) ON smpp_rx_queue TO esmed;
