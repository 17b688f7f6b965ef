//! The results feed (`sql/results-feed.sql`): `result_seq` on both queues, the reading
//! functions that never skip a row however the writers' commits interleave, their
//! notifications, and who may read them. Against a real private PostgreSQL cluster, with the
//! statements esmed itself runs (`esmed::db`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use esmed::db::receipts::{apply_states, PartState};
use esmed::db::{self, AcceptedPart, RxRow, TxOutcome, TxResult};
use esmed::smpp::receipt::MessageState;
use esmed_testkit::PgCluster;
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

const LEASE: Duration = Duration::from_secs(60);

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A cluster with database `esmed` made by sql/db.sql, and a role `app` that may read the
/// queues (and nothing else), as an application's would.
fn feed_cluster() -> PgCluster {
    let cluster = PgCluster::start().unwrap();
    cluster.create_database("esmed").unwrap();
    cluster
        .load_schema("esmed", &repo_file("sql/db.sql"))
        .unwrap();
    cluster.set_esmed_password("esmed", "pw").unwrap();
    let mut admin = cluster.superuser_client("esmed").unwrap();
    admin
        .batch_execute(
            "CREATE ROLE app LOGIN PASSWORD 'app';
             GRANT SELECT, INSERT ON smpp_tx_queue, smpp_rx_queue TO app;
             GRANT USAGE ON SEQUENCE smpp_tx_queue_id_seq TO app;",
        )
        .unwrap();
    cluster
}

fn esmed_client(cluster: &PgCluster) -> Client {
    cluster.connect("esmed", "esmed", Some("pw")).unwrap()
}

fn app_client(cluster: &PgCluster) -> Client {
    cluster.connect("esmed", "app", Some("app")).unwrap()
}

/// The insert_timestamp of the rows [`claimed_rows`] inserts, which [`done`] and [`failed`]
/// give back as a claim would (esmed finds a row by its id and insert_timestamp).
fn inserted() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// Inserts `n` messages and claims them under `instance`; returns their ids.
fn claimed_rows(cluster: &PgCluster, n: i32, instance: &str) -> Vec<i64> {
    let mut admin = cluster.superuser_client("esmed").unwrap();
    admin
        .execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message,
                 insert_timestamp)
             SELECT '4670' || g, 'feed', $2 FROM generate_series(1, $1) g",
            &[&n, &inserted()],
        )
        .unwrap();
    let mut esmed = esmed_client(cluster);
    let mut ids = Vec::new();
    loop {
        let claimed = db::claim(&mut esmed, 1000, LEASE, instance).unwrap();
        if claimed.is_empty() {
            break;
        }
        ids.extend(claimed.iter().map(|t| t.id));
    }
    ids
}

fn done(id: i64) -> TxResult {
    TxResult {
        id,
        insert_timestamp: inserted(),
        outcome: TxOutcome::Done {
            parts: vec![AcceptedPart {
                part_no: 1,
                part_count: 1,
                message_id: format!("m{id}"),
            }],
        },
        attempts: 1,
        resends: 0,
    }
}

fn failed(id: i64) -> TxResult {
    TxResult {
        id,
        insert_timestamp: inserted(),
        outcome: TxOutcome::Failed {
            info: "ESME_RINVDSTADR".into(),
            parts: vec![],
        },
        attempts: 1,
        resends: 0,
    }
}

/// (id, result_seq) of the rows `esmed_results_since(cursor, max)` returns.
fn results_since(c: &mut Client, cursor: i64, max: i32) -> Vec<(i64, i64)> {
    c.query(
        "SELECT id, result_seq FROM esmed_results_since($1, $2)",
        &[&cursor, &max],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Writer A takes its value first but commits last. A reader reading "result_seq > cursor"
/// directly sees B's row, moves its cursor past A's value, and never sees A's row: the skip
/// the functions exist for. esmed_results_since, called while A is open, waits for A and
/// returns both rows, in order.
#[test]
fn a_writer_committing_after_a_later_one_is_not_skipped() {
    let cluster = feed_cluster();
    let ids = claimed_rows(&cluster, 2, "a");
    let (mut a, mut b) = (esmed_client(&cluster), esmed_client(&cluster));
    let mut app = app_client(&cluster);

    let mut a_tx = a.transaction().unwrap();
    db::write_results_in(&mut a_tx, &[done(ids[0])], "a").unwrap();
    db::write_results(&mut b, &[failed(ids[1])], "a").unwrap();

    let naive: Vec<(i64, i64)> = app
        .query(
            "SELECT id, result_seq FROM smpp_tx_queue WHERE result_seq > 0 ORDER BY result_seq",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(naive.len(), 1, "only B's row is committed: {naive:?}");
    assert_eq!(naive[0].0, ids[1]);
    let naive_cursor = naive[0].1;

    let reader = thread::spawn(move || {
        let rows = results_since(&mut app, 0, 100);
        (rows, Instant::now(), app)
    });
    thread::sleep(Duration::from_millis(300));
    assert!(!reader.is_finished(), "the reader waits for A");
    let committing = Instant::now();
    a_tx.commit().unwrap();
    let (rows, answered, mut app) = reader.join().unwrap();
    assert!(
        answered >= committing,
        "the reader was answered only once A committed"
    );
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        [ids[0], ids[1]]
    );
    assert!(
        rows[0].1 < naive_cursor,
        "A's value is below the naive cursor"
    );
    // The naive reader, going on from its cursor, never gets A's row.
    let after_naive: i64 = app
        .query_one(
            "SELECT count(*) FROM smpp_tx_queue WHERE result_seq > $1",
            &[&naive_cursor],
        )
        .unwrap()
        .get(0);
    assert_eq!(after_naive, 0);
    // Nothing in flight: the call returns at once. A wait here would be for a writer that
    // does not exist, i.e. for ever; ten seconds only keeps a busy test machine from
    // failing it.
    let idle = thread::spawn(move || results_since(&mut app, rows[1].1, 100));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !idle.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        idle.is_finished(),
        "nothing to wait for, yet the reader waits"
    );
    assert!(idle.join().unwrap().is_empty());
}

/// Three writers, each doing what esmed's results writer does (one transaction per batch of
/// done and failed results, held open a random few milliseconds), and three storing received
/// PDUs as the received writer does, commit concurrently while two readers follow the feeds
/// with a cursor, as the application role. Every row is seen exactly once, in increasing
/// result_seq order.
#[test]
fn three_writers_and_a_reader_see_every_row_exactly_once() {
    const ROWS_PER_WRITER: usize = 1500;
    let cluster = Arc::new(feed_cluster());
    let writers_done = Arc::new(AtomicBool::new(false));

    let results_reader = spawn_reader(
        &cluster,
        &writers_done,
        "SELECT id, result_seq FROM esmed_results_since($1, $2)",
    );
    let received_reader = spawn_reader(
        &cluster,
        &writers_done,
        "SELECT id, result_seq FROM esmed_received_since($1, $2)",
    );

    let mut writers = Vec::new();
    let mut expected_tx = Vec::new();
    for w in 0..3 {
        let instance = format!("w{w}");
        let ids = claimed_rows(&cluster, ROWS_PER_WRITER as i32, &instance);
        assert_eq!(ids.len(), ROWS_PER_WRITER);
        expected_tx.extend(ids.iter().copied());
        let tx_cluster = Arc::clone(&cluster);
        writers.push(thread::spawn(move || {
            let mut c = esmed_client(&tx_cluster);
            let mut rng = w as u64 * 7919 + 1;
            for chunk in ids.chunks(37) {
                let results: Vec<TxResult> = chunk
                    .iter()
                    .map(|&id| if id % 5 == 0 { failed(id) } else { done(id) })
                    .collect();
                let mut tx = c.transaction().unwrap();
                let summary = db::write_results_in(&mut tx, &results, &instance).unwrap();
                assert_eq!(summary.written, chunk.len());
                thread::sleep(Duration::from_micros(next(&mut rng) % 4000));
                tx.commit().unwrap();
            }
            Vec::new()
        }));
        let rx_cluster = Arc::clone(&cluster);
        writers.push(thread::spawn(move || {
            let mut c = esmed_client(&rx_cluster);
            let mut rng = w as u64 * 104_729 + 3;
            let mut stored = Vec::new();
            while stored.len() < ROWS_PER_WRITER {
                let row = RxRow {
                    pdu_raw: "00".into(),
                    pdu_parsed: "{}".into(),
                    source_addr: format!("w{w}"),
                    destination_addr: "1".into(),
                    short_message: "mo".into(),
                    ..RxRow::default()
                };
                let batch: Vec<(&RxRow, Option<i64>)> = (0..23).map(|_| (&row, None)).collect();
                let mut tx = c.transaction().unwrap();
                stored.extend(db::insert_rx(&mut tx, &batch).unwrap());
                thread::sleep(Duration::from_micros(next(&mut rng) % 4000));
                tx.commit().unwrap();
            }
            stored
        }));
    }
    let mut expected_rx = Vec::new();
    for writer in writers {
        expected_rx.extend(writer.join().unwrap());
    }
    writers_done.store(true, Ordering::SeqCst);
    for (reader, expected, what) in [
        (results_reader, expected_tx, "results"),
        (received_reader, expected_rx, "received"),
    ] {
        let (seen, reads) = reader.join().unwrap();
        assert!(
            reads > 10,
            "{what}: the reader read while the writers wrote ({reads} reads)"
        );
        let mut times: HashMap<i64, usize> = HashMap::new();
        for id in &seen {
            *times.entry(*id).or_default() += 1;
        }
        let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{what}: seen more than once: {twice:?}");
        let missed: Vec<_> = expected
            .iter()
            .filter(|id| !times.contains_key(id))
            .collect();
        assert!(
            missed.is_empty(),
            "{what}: never seen: {} rows",
            missed.len()
        );
        assert_eq!(seen.len(), expected.len(), "{what}");
    }
}

/// A reader following a feed with a cursor, as the `app` role, until the writers are done
/// and a read finds nothing more. Returns the ids in the order seen and how many reads found
/// something.
fn spawn_reader(
    cluster: &Arc<PgCluster>,
    writers_done: &Arc<AtomicBool>,
    sql: &'static str,
) -> thread::JoinHandle<(Vec<i64>, usize)> {
    let (cluster, writers_done) = (Arc::clone(cluster), Arc::clone(writers_done));
    thread::spawn(move || {
        let mut app = app_client(&cluster);
        let (mut cursor, mut seen, mut reads) = (0i64, Vec::new(), 0);
        loop {
            let finished = writers_done.load(Ordering::SeqCst);
            let rows = app.query(sql, &[&cursor, &100i32]).unwrap();
            for row in &rows {
                let (id, seq): (i64, i64) = (row.get(0), row.get(1));
                assert!(
                    seq > cursor,
                    "result_seq {seq} not above the cursor {cursor}"
                );
                cursor = seq;
                seen.push(id);
            }
            if !rows.is_empty() {
                reads += 1;
            } else if finished {
                return (seen, reads);
            } else {
                thread::sleep(Duration::from_millis(2));
            }
        }
    })
}

/// A small deterministic generator for the writers' pauses.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Each receipt state change gives the row a new value; a change to nothing else (a claim, a
/// lease renewal) gives none.
#[test]
fn receipt_states_renew_result_seq_and_claims_do_not() {
    let cluster = feed_cluster();
    let ids = claimed_rows(&cluster, 2, "a");
    let mut esmed = esmed_client(&cluster);
    let seq_of = |c: &mut Client, id: i64| -> Option<i64> {
        c.query_one("SELECT result_seq FROM smpp_tx_queue WHERE id = $1", &[&id])
            .unwrap()
            .get(0)
    };
    assert_eq!(seq_of(&mut esmed, ids[0]), None, "claimed: no result yet");
    db::renew_held(&mut esmed, LEASE, "a", &ids).unwrap();
    assert_eq!(seq_of(&mut esmed, ids[0]), None, "renewed: no result yet");
    db::write_results(&mut esmed, &[done(ids[0]), done(ids[1])], "a").unwrap();
    let first = seq_of(&mut esmed, ids[0]).unwrap();
    let other = seq_of(&mut esmed, ids[1]).unwrap();
    let state = |s| PartState {
        tx_id: ids[0],
        part_no: 1,
        single: true,
        insert_timestamp: Some(inserted()),
        state: s,
    };
    apply_states(&mut esmed, &[state(MessageState::Enroute)]).unwrap();
    let second = seq_of(&mut esmed, ids[0]).unwrap();
    assert!(second > first);
    // The same state again changes nothing, so no new value.
    apply_states(&mut esmed, &[state(MessageState::Enroute)]).unwrap();
    assert_eq!(seq_of(&mut esmed, ids[0]), Some(second));
    apply_states(&mut esmed, &[state(MessageState::Delivered)]).unwrap();
    let third = seq_of(&mut esmed, ids[0]).unwrap();
    assert!(third > second);
    let mut app = app_client(&cluster);
    assert_eq!(
        results_since(&mut app, first - 1, 100),
        [(ids[1], other), (ids[0], third)],
        "the row comes again with its latest value, not its first"
    );
    let feed = results_since(&mut app, other, 100);
    assert_eq!(feed, [(ids[0], third)]);
}

/// A committed batch sends one notification per channel, its payload the batch's highest
/// value; a rolled-back batch sends none.
#[test]
fn a_committed_batch_notifies_its_high_water_mark() {
    let cluster = feed_cluster();
    let ids = claimed_rows(&cluster, 4, "a");
    let mut listener = app_client(&cluster);
    listener
        .batch_execute("LISTEN esmed_results; LISTEN esmed_received")
        .unwrap();
    let mut esmed = esmed_client(&cluster);

    let mut rolled_back = esmed.transaction().unwrap();
    db::write_results_in(&mut rolled_back, &[done(ids[0])], "a").unwrap();
    drop(rolled_back);
    db::write_results(&mut esmed, &[done(ids[0]), done(ids[1]), done(ids[2])], "a").unwrap();
    let row = RxRow {
        pdu_raw: "00".into(),
        pdu_parsed: "{}".into(),
        ..RxRow::default()
    };
    let rx_ids = db::insert_rx(&mut esmed, &[(&row, None), (&row, None)]).unwrap();

    let high: i64 = esmed
        .query_one("SELECT max(result_seq) FROM smpp_tx_queue", &[])
        .unwrap()
        .get(0);
    let mut admin = cluster.superuser_client("esmed").unwrap();
    let rx_high: i64 = admin
        .query_one("SELECT last_value FROM esmed_received_seq", &[])
        .unwrap()
        .get(0);
    let notes = received_notifications(&mut listener);
    assert_eq!(
        notes,
        [
            ("esmed_results".to_string(), high.to_string()),
            ("esmed_received".to_string(), rx_high.to_string())
        ]
    );
    let since = results_since(&mut listener, 0, 100);
    assert_eq!(since.len(), 3);
    assert_eq!(since.last().unwrap().1, high);
    let received: Vec<i64> = listener
        .query("SELECT id FROM esmed_received_since(0)", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(received, rx_ids);
}

/// The notifications that arrived within a second, as (channel, payload).
fn received_notifications(c: &mut Client) -> Vec<(String, String)> {
    let mut notes = Vec::new();
    let mut n = c.notifications();
    let mut it = n.timeout_iter(Duration::from_secs(1));
    while let Some(note) = it.next().unwrap() {
        notes.push((note.channel().to_string(), note.payload().to_string()));
    }
    notes
}

/// The functions need READ COMMITTED (a transaction snapshot taken before the wait would not
/// see what the writers waited for committed), and say so.
#[test]
fn the_feed_refuses_a_repeatable_read_transaction() {
    let cluster = feed_cluster();
    let mut app = app_client(&cluster);
    let mut tx = app
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .unwrap();
    let error = tx
        .query("SELECT * FROM esmed_results_since(0)", &[])
        .unwrap_err();
    let message = error.as_db_error().map(|e| e.message().to_string());
    assert!(
        message
            .as_deref()
            .unwrap_or("")
            .contains("needs READ COMMITTED"),
        "{error:?}"
    );
}

/// esmed may take values but not set the sequences back (which would make readers skip or
/// see rows twice), and its grants on smpp_rx_queue stay narrow; an application role reads
/// the feed with no privilege but SELECT on the queues.
#[test]
fn esmed_cannot_move_the_feed_and_applications_need_only_select() {
    let cluster = feed_cluster();
    let mut esmed = esmed_client(&cluster);
    for sql in [
        "SELECT setval('esmed_result_seq', 1)",
        "SELECT setval('esmed_received_seq', 1)",
        "UPDATE smpp_rx_queue SET smpp_short_message = 'x'",
    ] {
        let error = esmed.batch_execute(sql).unwrap_err();
        assert_eq!(
            error.code(),
            Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {error}"
        );
    }
    let mut app = app_client(&cluster);
    assert!(results_since(&mut app, 0, 10).is_empty());
    app.batch_execute("SELECT * FROM esmed_received_since(0, 10)")
        .unwrap();
    // A temporary table of the same name does not stand in for the queue.
    app.batch_execute(
        "CREATE TEMP TABLE smpp_tx_queue (LIKE public.smpp_tx_queue INCLUDING DEFAULTS);
         INSERT INTO pg_temp.smpp_tx_queue (id, smpp_destination_addr, smpp_short_message,
                 submission_done, submission_failed, result_seq)
             VALUES (1, '1', 'x', true, false, 5)",
    )
    .unwrap();
    assert!(results_since(&mut app, 0, 10).is_empty());
}

/// What esmed's batch statements do not write goes through the triggers: an operator's own
/// UPDATE, a text too long to send failed at the claim, a receipt linked by hand. Each gets a
/// value, is in the feed and is notified.
#[test]
fn rows_finished_outside_the_batch_statements_are_in_the_feed_too() {
    let cluster = feed_cluster();
    let mut admin = cluster.superuser_client("esmed").unwrap();
    let mut listener = app_client(&cluster);
    listener
        .batch_execute("LISTEN esmed_results; LISTEN esmed_received")
        .unwrap();
    let ids: Vec<i64> = admin
        .query(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
             VALUES ('1', 'by hand'), ('2', repeat('x', 300000)) RETURNING id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    admin
        .execute(
            "UPDATE smpp_tx_queue SET submission_failed = true, submission_info = 'cancelled'
             WHERE id = $1",
            &[&ids[0]],
        )
        .unwrap();
    let mut esmed = esmed_client(&cluster);
    assert!(db::claim(&mut esmed, 10, LEASE, "a").unwrap().is_empty());
    let rx: i64 = admin
        .query_one(
            "INSERT INTO smpp_rx_queue (pdu_raw, pdu_parsed, is_receipt) VALUES ('00', '{}', true)
             RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    let stored: i64 = admin
        .query_one("SELECT result_seq FROM smpp_rx_queue WHERE id = $1", &[&rx])
        .unwrap()
        .get(0);
    // An operator links a receipt by hand.
    admin
        .execute(
            "UPDATE smpp_rx_queue SET tx_id = $2 WHERE id = $1",
            &[&rx, &ids[0]],
        )
        .unwrap();

    let feed = results_since(&mut listener, 0, 10);
    assert_eq!(
        feed.iter().map(|r| r.0).collect::<Vec<_>>(),
        ids,
        "failed by hand, then failed at the claim"
    );
    let received: Vec<(i64, i64)> = listener
        .query(
            "SELECT id, result_seq FROM esmed_received_since($1)",
            &[&stored],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(received.len(), 1, "linked: the row comes again");
    assert!(received[0].1 > stored);
    let notes = received_notifications(&mut listener);
    assert_eq!(
        notes,
        [
            ("esmed_results".to_string(), feed[0].1.to_string()),
            ("esmed_results".to_string(), feed[1].1.to_string()),
            ("esmed_received".to_string(), stored.to_string()),
            ("esmed_received".to_string(), received[0].1.to_string()),
        ]
    );
}
