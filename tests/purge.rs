//! Retention: `esmed purge` and the SQL functions under it (sql/purge.sql), against a real
//! PostgreSQL cluster, the test SMSC and esmed itself: what goes, what stays (row by row),
//! that a drain goes on meanwhile, and who may purge.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::thread;
use std::time::Duration;

use postgres::Client;
use support::Env;

const OLD: &str = "now() - interval '40 days'";

/// The history a purge finds, by kind (the row's number modulo 8), and whether a purge with
/// a 30-day cut-off (and the default one-hour receipt window) removes it.
const KINDS: [(&str, bool); 8] = [
    ("done, DELIVERED, 40 days ago", true),
    ("failed 40 days ago", true),
    ("done, ENROUTE, last receipt 40 days ago", true),
    ("done 40 days ago, ENROUTE since 10 minutes", false),
    ("pending since 40 days", false),
    ("done yesterday", false),
    ("done in two parts, DELIVERED, 40 days ago", true),
    ("done 40 days ago, no receipt", true),
];

/// Inserts `n` history rows (kinds by number), the parts of the two-part ones, and received
/// rows: per message of kind 0 and 3 a receipt linked to it, plus old and recent MO and an old
/// receipt still waiting for its message (waiting since now, so that esmed's housekeeping
/// does not give up on it during the test). Returns the ids of the tx rows in insert order.
fn load_history(db: &mut Client, n: i32) -> Vec<i64> {
    let sql = format!(
        "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, insert_timestamp,
             submission_timestamp, submission_done, submission_failed, smpp_message_state,
             message_state_timestamp, smpp_message_id)
         SELECT '46' || g, 'history ' || (g % 8),
             CASE WHEN g % 8 = 5 THEN now() - interval '1 day' ELSE {OLD} END,
             CASE WHEN g % 8 IN (0, 2, 3, 6, 7) THEN {OLD}
                  WHEN g % 8 = 5 THEN now() - interval '1 day' END,
             g % 8 IN (0, 2, 3, 5, 6, 7), g % 8 = 1,
             CASE WHEN g % 8 IN (0, 6) THEN 'DELIVERED' WHEN g % 8 IN (2, 3) THEN 'ENROUTE' END,
             CASE WHEN g % 8 IN (0, 2, 6) THEN {OLD}
                  WHEN g % 8 = 3 THEN now() - interval '10 minutes' END,
             'm' || g
         FROM generate_series(0, $1 - 1) g ORDER BY g RETURNING id"
    );
    let ids: Vec<i64> = db
        .query(&sql, &[&n])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    db.batch_execute(&format!(
        "INSERT INTO smpp_tx_parts (tx_id, part_no, part_count, message_id, message_id_key,
             message_state, submitted_at)
         SELECT t.id, p, 2, t.smpp_message_id || '-' || p, t.smpp_message_id || '-' || p,
             'DELIVERED', {OLD}
         FROM smpp_tx_queue t, generate_series(1, 2) p WHERE t.smpp_short_message = 'history 6';
         INSERT INTO smpp_rx_queue (pdu_raw, pdu_parsed, insert_timestamp, is_receipt, tx_id,
             smpp_short_message)
         SELECT '00', '{{}}', {OLD}, true, id, 'receipt for ' || smpp_short_message
         FROM smpp_tx_queue WHERE smpp_short_message IN ('history 0', 'history 3');
         INSERT INTO smpp_rx_queue (pdu_raw, pdu_parsed, insert_timestamp, smpp_short_message)
         SELECT '00', '{{}}', {OLD}, 'old MO' FROM generate_series(1, 500);
         INSERT INTO smpp_rx_queue (pdu_raw, pdu_parsed, insert_timestamp, smpp_short_message)
         SELECT '00', '{{}}', now() - interval '1 day', 'recent MO' FROM generate_series(1, 50);
         WITH r AS (INSERT INTO smpp_rx_queue (pdu_raw, pdu_parsed, insert_timestamp,
                        is_receipt, smpp_short_message)
                    VALUES ('00', '{{}}', {OLD}, true, 'waiting receipt') RETURNING id)
         INSERT INTO smpp_rx_unmatched (rx_id, match_key, match_rank) SELECT id, 'nothing', 0
         FROM r;"
    ))
    .unwrap();
    ids
}

fn id_set(db: &mut Client, sql: &str) -> BTreeSet<i64> {
    db.query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A login role for the purge, in the esmed_purge role the schema makes; and the [purge]
/// section that uses it, appended to esmed's config file.
fn purge_role(env: &Env, config: &std::path::Path, batch_rows: u32) {
    env.db()
        .batch_execute("CREATE ROLE esmed_purger LOGIN PASSWORD 'purge-pw' IN ROLE esmed_purge")
        .unwrap();
    let mut text = fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "\n[purge]\nuser = esmed_purger\npass = purge-pw\nbatch_rows = {batch_rows}\n\
         batch_pause = 10ms\n"
    ));
    fs::write(config, text).unwrap();
}

fn esmed_purge(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_esmed"))
        .arg("purge")
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

/// A purge runs (in batches of 300, over its own role) while esmed drains 3,000 new rows and
/// 2,000 old pending ones. Afterwards every message, part and received row is checked by id:
/// exactly the finished history past the cut-off is gone, with the parts and receipts of
/// those messages and the old MO; every pending row, every recent row, the receipts of kept
/// messages and the receipt still waiting are there; the drain ends with every row done.
#[test]
fn a_purge_during_a_drain_removes_what_it_should_and_nothing_else() {
    let env = Env::new("purge-drain");
    let mut db = env.db();
    let history = load_history(&mut db, 16_000);
    env.insert_many(3000, "drain ");
    let drain = id_set(
        &mut db,
        "SELECT id FROM smpp_tx_queue WHERE smpp_short_message LIKE 'drain %'",
    );
    let parts_before = id_set(&mut db, "SELECT tx_id FROM smpp_tx_parts");
    let (config, _) = env.write_config("purge-drain", "", 0o600);
    purge_role(&env, &config, 300);

    let dry = esmed_purge(&config, &["--older-than", "30d", "--dry-run"]);
    assert!(dry.status.success(), "{dry:?}");
    let dry = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(
        dry.contains("would remove 10000 messages (4000 parts), 2000 receipts and 500 MO"),
        "{dry}"
    );
    assert_eq!(
        env.count("true"),
        16_000 + 3000,
        "a dry run removes nothing"
    );

    env.add_server(&[("smpp_window", "50")]);
    let esmed = env.esmed("purge-daemon", "");
    let purge = {
        let config = config.clone();
        thread::spawn(move || esmed_purge(&config, &["--older-than", "30d"]))
    };
    // The purge must overlap the drain: it starts while rows are still pending.
    thread::sleep(Duration::from_millis(200));
    assert!(
        env.count("NOT submission_done") > 0,
        "the drain is still going"
    );
    let purged = purge.join().unwrap();
    assert!(purged.status.success(), "{purged:?}");
    let out = String::from_utf8_lossy(&purged.stdout);
    assert!(
        out.contains("removed 10000 messages (4000 parts), 2000 receipts and 500 MO"),
        "{out}"
    );
    env.wait_all(
        "submission_done OR smpp_short_message LIKE 'history %'",
        Duration::from_secs(120),
        &esmed,
    );

    let kept: BTreeSet<i64> = history
        .iter()
        .enumerate()
        .filter(|(g, _)| !KINDS[g % 8].1)
        .map(|(_, id)| *id)
        .chain(drain.iter().copied())
        .collect();
    let tx = id_set(&mut db, "SELECT id FROM smpp_tx_queue");
    let wrongly_removed: Vec<_> = kept.difference(&tx).collect();
    assert!(wrongly_removed.is_empty(), "removed: {wrongly_removed:?}");
    let wrongly_kept: Vec<(i64, &str)> = history
        .iter()
        .enumerate()
        .filter(|(g, id)| KINDS[g % 8].1 && tx.contains(id))
        .map(|(g, id)| (*id, KINDS[g % 8].0))
        .collect();
    assert!(wrongly_kept.is_empty(), "kept: {wrongly_kept:?}");
    assert_eq!(tx, kept);
    assert_eq!(
        env.count("smpp_short_message LIKE 'drain %' AND submission_done"),
        3000
    );
    // Old pending rows were sent by the drain, not removed.
    assert_eq!(
        env.count("smpp_short_message = 'history 4' AND submission_done"),
        2000
    );

    let parts = id_set(&mut db, "SELECT tx_id FROM smpp_tx_parts");
    assert!(parts.iter().all(|id| kept.contains(id)));
    assert!(
        parts_before.iter().all(|id| !kept.contains(id)),
        "kind 6 only"
    );
    assert!(parts.is_empty(), "every part was of a removed message");

    let received: Vec<(String, Option<i64>)> = db
        .query(
            "SELECT smpp_short_message, tx_id FROM smpp_rx_queue ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let by_text = |text: &str| received.iter().filter(|r| r.0 == text).count();
    assert_eq!(by_text("receipt for history 0"), 0);
    assert_eq!(by_text("receipt for history 3"), 2000);
    assert!(received
        .iter()
        .filter(|r| r.0 == "receipt for history 3")
        .all(|r| r.1.is_some_and(|id| kept.contains(&id))));
    assert_eq!(by_text("old MO"), 0);
    assert_eq!(by_text("recent MO"), 50);
    assert_eq!(by_text("waiting receipt"), 1);
    assert_eq!(received.len(), 2000 + 50 + 1);

    // A second run finds nothing more.
    let again = esmed_purge(&config, &["--older-than", "30d"]);
    let again = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(
        again.contains("removed 0 messages (0 parts), 0 receipts and 0 MO"),
        "{again}"
    );
}

/// A message whose receipt may still come stays, however old the cut-off makes it: finished
/// ten minutes ago, a five-minute purge removes it only when its state is final, since the
/// receipt window (an hour) has not run out. Through the SQL procedure, as from psql.
#[test]
fn a_message_whose_receipt_may_still_come_stays() {
    let env = Env::new("purge-window");
    let mut db = env.db();
    let ids: Vec<i64> = db
        .query(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message,
                 insert_timestamp, submission_timestamp, submission_done, smpp_message_state,
                 message_state_timestamp)
             VALUES ('1', 'enroute', now() - interval '10 minutes', now() - interval '10 minutes',
                     true, 'ENROUTE', now() - interval '10 minutes'),
                    ('2', 'no receipt yet', now() - interval '10 minutes',
                     now() - interval '10 minutes', true, NULL, NULL),
                    ('3', 'delivered', now() - interval '10 minutes', now() - interval '10 minutes',
                     true, 'DELIVERED', now() - interval '10 minutes'),
                    ('4', 'undeliverable', now() - interval '10 minutes',
                     now() - interval '10 minutes', true, 'UNDELIVERABLE',
                     now() - interval '10 minutes')
             RETURNING id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    db.batch_execute("CALL esmed_purge('5 minutes')").unwrap();
    assert_eq!(
        id_set(&mut db, "SELECT id FROM smpp_tx_queue"),
        BTreeSet::from([ids[0], ids[1]])
    );
    // With a receipt window shorter than their age, they go too.
    db.batch_execute("CALL esmed_purge('5 minutes', receipt_window => '8 minutes')")
        .unwrap();
    assert!(id_set(&mut db, "SELECT id FROM smpp_tx_queue").is_empty());
}

/// The daemon's role may not purge (it may not DELETE); `esmed purge` without a [purge]
/// role says so in one line and exits 1, removing nothing.
#[test]
fn the_daemons_role_cannot_purge() {
    let env = Env::new("purge-esmed-role");
    let mut db = env.db();
    load_history(&mut db, 80);
    let before = env.count("true");
    let (config, _) = env.write_config("purge-esmed-role", "", 0o600);
    let refused = esmed_purge(&config, &["--older-than", "30d"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let mut esmed = env
        .cluster
        .connect(support::DB, "esmed", Some(support::ESMED_PASSWORD))
        .unwrap();
    for sql in [
        "CALL esmed_purge('30 days')",
        "SELECT * FROM esmed_purge_received(now(), '1 hour', 0, 10, false)",
    ] {
        let error = esmed.batch_execute(sql).unwrap_err();
        assert_eq!(
            error.code(),
            Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {error:?}"
        );
    }
    assert_eq!(env.count("true"), before);
}
