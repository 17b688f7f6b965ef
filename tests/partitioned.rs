//! The partitioned layout (sql/db-partitioned.sql): the same tables and columns as the plain
//! one, its day partitions made ahead by esmed itself, and a row no day's partition covers
//! kept in the default partition until its day gets one. The queue, receipt and MO suites run
//! on this layout too (`make test` runs them with ESMED_TEST_LAYOUT=partitioned).

mod support;

use std::time::Duration;

use postgres::Client;
use support::{wait_until, Env};

const T: Duration = Duration::from_secs(30);

/// (table, column, type, default) of every column of esmed's tables, partitions left out.
fn columns(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT format('%s.%s %s %s', table_name, column_name, data_type, column_default)
         FROM information_schema.columns
         WHERE table_schema = 'public'
           AND table_name !~ '_(default|[0-9]{8})$'
         ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// What the esmed role may do on each table, view and function, partitions left out.
fn grants(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT format('%s %s', table_name, privilege_type) FROM information_schema.role_table_grants
         WHERE grantee = 'esmed' AND table_name !~ '_(default|[0-9]{8})$'
         UNION ALL
         SELECT format('function %s', p.oid::regprocedure) FROM pg_proc p
         WHERE p.pronamespace = 'public'::regnamespace AND has_function_privilege('esmed', p.oid, 'EXECUTE')
           AND p.proname NOT LIKE 'esmed\\_make\\_%'
         ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn both_layouts_have_the_same_columns_and_grants() {
    let plain = Env::new("layout-plain");
    let partitioned = Env::partitioned("layout-partitioned");
    let (mut p, mut q) = (plain.db(), partitioned.db());
    assert_eq!(columns(&mut p), columns(&mut q));
    assert_eq!(grants(&mut p), grants(&mut q));
    // esmed's start checks the queue's fillfactor: the partitions' on this layout.
    for c in [&mut p, &mut q] {
        assert_eq!(esmed::db::schema::queue_fillfactor(c).unwrap(), 40);
    }
    let kinds: Vec<(String, String)> = q
        .query(
            "SELECT relname::text, relkind::text FROM pg_class
             WHERE relname IN ('smpp_tx_queue', 'smpp_rx_queue') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        kinds,
        [
            ("smpp_rx_queue".to_string(), "p".to_string()),
            ("smpp_tx_queue".to_string(), "p".to_string())
        ]
    );
}

/// How many rows of `queue` each of its partitions holds, for the partitions holding any.
fn rows_by_partition(c: &mut Client, queue: &str) -> Vec<(String, i64)> {
    c.query(
        &format!("SELECT tableoid::regclass::text, count(*) FROM {queue} GROUP BY 1 ORDER BY 1"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The name of the partition of `queue` for the UTC day `days` from today.
fn day_partition(c: &mut Client, queue: &str, days: i32) -> String {
    c.query_one(
        "SELECT $1::text || '_' || to_char((now() AT TIME ZONE 'UTC')::date + $2::int4, 'YYYYMMDD')",
        &[&queue, &days],
    )
    .unwrap()
    .get(0)
}

#[test]
fn a_row_for_a_day_without_a_partition_is_kept_in_the_default_one_until_its_day_is_made() {
    let env = Env::partitioned("layout-default");
    let mut c = env.db();
    // The older daemon's insert, and one dated a month ahead (no partition for that day).
    c.batch_execute(
        "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
             VALUES ('447700900001', 'today');
         INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, insert_timestamp)
             VALUES ('447700900002', 'next month', now() + interval '30 days');",
    )
    .unwrap();
    let today = day_partition(&mut c, "smpp_tx_queue", 0);
    assert_eq!(
        rows_by_partition(&mut c, "smpp_tx_queue"),
        [(today.clone(), 1), ("smpp_tx_queue_default".to_string(), 1)]
    );
    let report: Vec<String> = c
        .query("SELECT * FROM esmed_make_partitions()", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        report,
        ["smpp_tx_queue_default holds 1 rows outside the days partitioned"]
    );
    let later = day_partition(&mut c, "smpp_tx_queue", 30);
    let made: Vec<String> = c
        .query(
            "SELECT * FROM esmed_make_day_partition('smpp_tx_queue',
                 ((now() AT TIME ZONE 'UTC')::date + 30))",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        made,
        [format!(
            "{later} made, with 1 rows from smpp_tx_queue_default"
        )]
    );
    assert_eq!(
        rows_by_partition(&mut c, "smpp_tx_queue"),
        [(today, 1), (later, 1)]
    );
    let texts: Vec<String> = c
        .query(
            "SELECT smpp_short_message FROM smpp_tx_queue ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(texts, ["today", "next month"]);
}

#[test]
fn esmed_makes_the_coming_days_partitions_itself() {
    let env = Env::partitioned("layout-ahead");
    let mut c = env.db();
    let tomorrow = day_partition(&mut c, "smpp_rx_queue", 1);
    let in_a_week = day_partition(&mut c, "smpp_tx_queue", 7);
    c.batch_execute(&format!("DROP TABLE {tomorrow}; DROP TABLE {in_a_week}"))
        .unwrap();
    env.add_server(&[]);
    let esmed = env.esmed("layout-ahead", "");
    wait_until(T, "the missing partitions made", &esmed, || {
        let log = esmed.log();
        log.contains(&format!("partitions: {tomorrow} made"))
            && log.contains(&format!("partitions: {in_a_week} made"))
    });
    for table in [&tomorrow, &in_a_week] {
        let exists: bool = c
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
            .unwrap()
            .get(0);
        assert!(exists, "{table}");
    }
    // And it sends as on the plain layout.
    let id = env.insert("447700900003", "on the partitioned layout");
    env.wait_all("submission_done", T, &esmed);
    let done: bool = c
        .query_one(
            "SELECT submission_done FROM smpp_tx_queue WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert!(done);
}

/// Dropping old days: a day whose messages are all finished and past their receipts goes
/// whole, with its messages' parts and its received messages; a day with a message still
/// pending stays, named, and so does a day of received messages holding a receipt of a
/// message that stays.
#[test]
fn old_days_are_dropped_whole_only_when_nothing_in_them_must_stay() {
    let env = Env::partitioned("layout-drop");
    let mut c = env.db();
    c.batch_execute(
        "SELECT esmed_make_day_partition(q, (now() AT TIME ZONE 'UTC')::date - d)
             FROM unnest(ARRAY['smpp_tx_queue', 'smpp_rx_queue']) q, unnest(ARRAY[40, 41, 42]) d;
         INSERT INTO smpp_tx_queue (id, insert_timestamp, smpp_destination_addr, smpp_short_message,
                 submission_done, submission_timestamp, smpp_message_state)
             VALUES (1, now() - interval '42 days', '461', 'finished', true,
                     now() - interval '42 days', 'DELIVERED'),
                    (2, now() - interval '42 days', '462', 'finished too', true,
                     now() - interval '42 days', NULL);
         INSERT INTO smpp_tx_parts (tx_id, part_no, part_count, message_id, message_id_key)
             VALUES (1, 1, 2, 'a', 'a'), (1, 2, 2, 'b', 'b');
         INSERT INTO smpp_tx_queue (id, insert_timestamp, smpp_destination_addr, smpp_short_message)
             VALUES (3, now() - interval '41 days', '463', 'still pending');
         INSERT INTO smpp_tx_queue (id, insert_timestamp, smpp_destination_addr, smpp_short_message,
                 submission_done, submission_timestamp)
             VALUES (4, now() - interval '40 days', '464', 'done', true, now() - interval '40 days');
         INSERT INTO smpp_rx_queue (insert_timestamp, pdu_raw, pdu_parsed, is_receipt, tx_id)
             VALUES (now() - interval '42 days', '00', '{}', true, 1),
                    (now() - interval '41 days', '00', '{}', true, 4),
                    (now() - interval '40 days', '00', '{}', false, NULL);",
    )
    .unwrap();
    // Lines without their first word's "smpp_", to keep the expectations short.
    let strip = |name: &str| {
        name.split_once('_')
            .map_or(String::new(), |(_, r)| r.to_string())
    };
    let drop = |c: &mut Client, dry_run: bool| -> Vec<String> {
        c.query(
            "SELECT * FROM esmed_drop_partitions(now() - interval '30 days', interval '1 hour', $1)",
            &[&dry_run],
        )
        .unwrap()
        .iter()
        .map(|r| strip(&r.get::<_, String>(0)))
        .collect()
    };
    let day = |c: &mut Client, queue: &str, days: i32| day_partition(c, queue, days);
    let (tx42, tx41, tx40) = (
        day(&mut c, "smpp_tx_queue", -42),
        day(&mut c, "smpp_tx_queue", -41),
        day(&mut c, "smpp_tx_queue", -40),
    );
    let (rx42, rx41, rx40) = (
        day(&mut c, "smpp_rx_queue", -42),
        day(&mut c, "smpp_rx_queue", -41),
        day(&mut c, "smpp_rx_queue", -40),
    );
    let expected = |dropped: &str| {
        vec![
            format!("{} {dropped}: 2 messages, 2 parts", strip(&tx42)),
            format!("{} kept: 1 of its 1 messages may not go yet", strip(&tx41)),
            format!("{} {dropped}: 1 messages, 0 parts", strip(&tx40)),
            format!("{} {dropped}: 1 received messages", strip(&rx42)),
            format!("{} {dropped}: 1 received messages", strip(&rx41)),
            format!("{} {dropped}: 1 received messages", strip(&rx40)),
        ]
    };
    assert_eq!(drop(&mut c, true), expected("would be dropped"));
    let count = |c: &mut Client, sql: &str| -> i64 { c.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM smpp_tx_queue"),
        4,
        "a dry run drops nothing"
    );
    assert_eq!(drop(&mut c, false), expected("dropped"));
    let ids: Vec<i64> = c
        .query("SELECT id FROM smpp_tx_queue ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [3], "only the pending message stays");
    assert_eq!(count(&mut c, "SELECT count(*) FROM smpp_tx_parts"), 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM smpp_rx_queue"), 0);
    for gone in [&tx42, &tx40, &rx42, &rx41, &rx40] {
        let exists: bool = c
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[gone])
            .unwrap()
            .get(0);
        assert!(!exists, "{gone} dropped");
    }
}

/// `esmed purge` on the partitioned layout drops whole the old days that may go, as the
/// purge's role, and says so; a pending message keeps its day, and a dry run drops nothing.
#[test]
fn esmed_purge_drops_old_days_whole() {
    let env = Env::partitioned("layout-purge");
    let mut c = env.db();
    c.batch_execute(
        "SELECT esmed_make_day_partition('smpp_tx_queue', (now() AT TIME ZONE 'UTC')::date - d)
             FROM unnest(ARRAY[40, 41]) d;
         INSERT INTO smpp_tx_queue (insert_timestamp, smpp_destination_addr, smpp_short_message,
                 submission_done, submission_timestamp, smpp_message_state)
             SELECT now() - interval '41 days', '46' || g, 'old', true,
                    now() - interval '41 days', 'DELIVERED'
             FROM generate_series(1, 3) g;
         INSERT INTO smpp_tx_queue (insert_timestamp, smpp_destination_addr, smpp_short_message)
             VALUES (now() - interval '40 days', '4799', 'old but pending');
         CREATE ROLE esmed_purger LOGIN PASSWORD 'purge-pw' IN ROLE esmed_purge;",
    )
    .unwrap();
    let old_day = day_partition(&mut c, "smpp_tx_queue", -41);
    let pending_day = day_partition(&mut c, "smpp_tx_queue", -40);
    let (config, _) = env.write_config("layout-purge", "", 0o600);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[purge]\nuser = esmed_purger\npass = purge-pw\n");
    std::fs::write(&config, text).unwrap();
    let purge = |args: &[&str]| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_esmed"))
            .arg("purge")
            .args(args)
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dry = purge(&["--older-than", "30d", "--dry-run"]);
    assert!(
        dry.contains(&format!("{old_day} would be dropped: 3 messages, 0 parts")),
        "{dry}"
    );
    let done = purge(&["--older-than", "30d"]);
    assert!(
        done.contains(&format!("{old_day} dropped: 3 messages, 0 parts")),
        "{done}"
    );
    assert!(
        done.contains(&format!(
            "{pending_day} kept: 1 of its 1 messages may not go yet"
        )),
        "{done}"
    );
    let texts: Vec<String> = c
        .query("SELECT smpp_short_message FROM smpp_tx_queue", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(texts, ["old but pending"]);
    let gone: bool = c
        .query_one("SELECT to_regclass($1) IS NULL", &[&old_day])
        .unwrap()
        .get(0);
    assert!(gone, "{old_day} dropped");
}

/// With sixty days of partitions holding history, esmed sends messages of an old day and of
/// today, writes their results and their receipts' states and links the receipts: each
/// statement that finds a row again by its id and insert_timestamp finds it in its day.
#[test]
fn with_sixty_days_of_history_each_row_is_found_in_its_own_partition() {
    use esmed_smsc::{ReceiptConfig, ReceiptMode, SmscConfig};
    let smsc = SmscConfig {
        receipts: ReceiptMode::After(ReceiptConfig::after(Duration::from_millis(50))),
        ..support::smsc_config()
    };
    let env = Env::partitioned_with_smsc("sixty-days", smsc);
    env.add_server(&[
        ("esme_bind_transceiver", "TRUE"),
        ("esme_registered_delivery", "TRUE"),
    ]);
    let mut db = env.db();
    db.batch_execute(
        "SELECT esmed_make_day_partition(q, (now() AT TIME ZONE 'UTC')::date - d)
         FROM generate_series(2, 60) d, unnest(ARRAY['smpp_tx_queue', 'smpp_rx_queue']) q;
         INSERT INTO smpp_tx_queue (insert_timestamp, smpp_destination_addr, smpp_short_message,
             submission_done, submission_timestamp, smpp_message_id, smpp_message_id_key,
             smpp_message_state)
         SELECT now() - (n % 60) * interval '1 day' - interval '1 hour', '4479', 'history',
                true, now() - (n % 60) * interval '1 day', 'h' || n, 'h' || n, 'DELIVERED'
         FROM generate_series(1, 600) n;
         ANALYZE smpp_tx_queue;",
    )
    .unwrap();
    let ids: Vec<i64> = db
        .query(
            "INSERT INTO smpp_tx_queue (insert_timestamp, smpp_destination_addr,
                 smpp_short_message)
             SELECT now() - d * interval '1 day', '44770090' || lpad(n::text, 4, '0'), 'hi'
             FROM generate_series(1, 6) n, LATERAL (SELECT CASE WHEN n <= 3 THEN 30 ELSE 0 END) x(d)
             RETURNING id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let esmed = env.esmed("sixty-days", "");
    env.wait_all("smpp_message_state = 'DELIVERED'", T, &esmed);
    wait_until(T, "every receipt linked", &esmed, || {
        env.db()
            .query_one(
                "SELECT count(*) FROM smpp_rx_queue WHERE is_receipt AND tx_id = ANY($1)",
                &[&ids],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 6
    });
    let done: i64 = db
        .query_one(
            "SELECT count(*) FROM smpp_tx_queue WHERE id = ANY($1) AND submission_done
               AND claimed_by IS NULL",
            &[&ids],
        )
        .unwrap()
        .get(0);
    assert_eq!(done, 6);
    let by_day = rows_by_partition(&mut db, "smpp_tx_queue");
    for days in [-30, 0] {
        let day = day_partition(&mut db, "smpp_tx_queue", days);
        assert!(by_day.iter().any(|(p, _)| *p == day), "{day}: {by_day:?}");
    }
}
