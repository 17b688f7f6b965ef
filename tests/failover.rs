//! PostgreSQL failover: a primary with a synchronous streaming standby (two local clusters),
//! esmed given both as `host = a,b`, a drain under load with receipts and MO, the primary
//! stopped as a crash would stop it and the standby promoted. esmed finds the new primary by
//! itself and carries on: every row ends done, every received PDU it acknowledged is stored,
//! and the rows sent twice are at most its window, each counted and logged. And a commit
//! whose answer was lost as the primary went is judged by the new primary's own history,
//! not by a transaction id it handed out again.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use esmed::smpp::{Body, CommandStatus};
use esmed_smsc::{MoMessage, ReceiptConfig, ReceiptMode, SmscConfig, SmscHandle};
use esmed_testkit::PgCluster;
use postgres::Client;
use support::pg_proxy::{Cut, PgProxy, Tx};
use support::{deliveries, wait_until, Env, Esmed, DB, ESMED_PASSWORD};

const T: Duration = Duration::from_secs(60);
const ROWS: i32 = 4000;
const WINDOW: usize = 10;

/// An SMSC that sends a receipt for each message and sends each MO once in the test's time.
fn smsc_config() -> SmscConfig {
    SmscConfig {
        receipts: ReceiptMode::After(ReceiptConfig::after(Duration::from_millis(20))),
        deliver_resend_after: Duration::from_secs(120),
        ..support::smsc_config()
    }
}

/// esmed.conf naming both servers on 127.0.0.1, the primary (on `primary_port`) first.
fn start_esmed(env: &Env, primary_port: u16, standby_port: u16) -> Esmed {
    let log = env.dir.0.join("failover.log");
    let config = env.dir.0.join("failover.conf");
    let text = format!(
        "[database]\nhost = {0},{0}\nport = {1},{2}\nname = {DB}\nuser = esmed\n\
         pass = {ESMED_PASSWORD}\nsslmode = disable\n\
         [daemon]\ninstance = failover\npoll_interval = 500ms\nreconnect_min = 100ms\n\
         reconnect_max = 1s\nretry_min = 100ms\nretry_max = 1s\nstats_interval = 0\n\
         db_reconnect_max = 1s\nheartbeat_interval = 1s\n\
         [log]\nfile = {3}\nlevel = debug\nstderr = false\n",
        env.cluster.host(),
        primary_port,
        standby_port,
        log.display()
    );
    std::fs::write(&config, text).expect("write esmed.conf");
    Esmed::start(&config, log)
}

fn count(db: &mut Client, condition: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM smpp_tx_queue WHERE {condition}");
    db.query_one(&sql, &[]).expect("count").get(0)
}

/// Sends an MO every few milliseconds until `stop`; returns how many.
fn send_mo_until(smsc: &SmscHandle, stop: &AtomicBool) -> usize {
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        sent += 1;
        smsc.send_mo(MoMessage::text(
            "447700900123",
            "ESMED",
            &format!("mo {sent}"),
        ));
        thread::sleep(Duration::from_millis(5));
    }
    sent
}

/// How many submit_sm the SMSC received for each row id.
fn sends_per_row(env: &Env, db: &mut Client) -> HashMap<i64, usize> {
    let ids: HashMap<String, i64> = db
        .query("SELECT smpp_destination_addr, id FROM smpp_tx_queue", &[])
        .expect("read the rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut sends = HashMap::new();
    for received in env.smsc.submits() {
        if let Body::SubmitSm(sm) = &received.pdu.body {
            *sends
                .entry(ids[&sm.destination.addr.to_string()])
                .or_insert(0) += 1;
        }
    }
    sends
}

/// How many smpp_rx_queue rows hold each text.
fn stored(db: &mut Client) -> HashMap<String, i64> {
    db.query(
        "SELECT smpp_short_message, count(*) FROM smpp_rx_queue GROUP BY 1",
        &[],
    )
    .expect("read smpp_rx_queue")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[test]
fn a_promoted_standby_takes_over_with_nothing_lost_and_at_most_a_window_sent_twice() {
    let primary = PgCluster::start().expect("start the primary");
    let mut env = Env::with_cluster("failover", primary, smsc_config());
    let standby = env.cluster.start_standby().expect("start the standby");
    env.cluster
        .make_synchronous()
        .expect("synchronous replication");
    env.add_server(&[
        ("smpp_window", &WINDOW.to_string()),
        ("esme_bind_transceiver", "TRUE"),
        ("esme_registered_delivery", "TRUE"),
    ]);
    env.insert_many(ROWS, "failover ");
    let esmed = start_esmed(&env, env.cluster.port(), standby.port());
    let log = esmed.log_path.clone();
    let show_log = move || std::fs::read_to_string(&log).unwrap_or_default();

    let stop_mo = Arc::new(AtomicBool::new(false));
    let mo_sent = thread::scope(|scope| {
        let smsc = &env.smsc;
        let sender = scope.spawn(|| send_mo_until(smsc, &stop_mo));
        let mut db = env.db();
        wait_until(T, "a quarter of the rows done", &esmed, || {
            count(&mut db, "submission_done") >= i64::from(ROWS / 4)
        });
        drop(db);
        // The primary goes as in a crash; the standby is promoted while esmed keeps
        // submitting, receiving and retrying.
        env.cluster.stop_immediate().expect("stop the primary");
        standby.promote().expect("promote the standby");
        let mut db = standby
            .superuser_client(DB)
            .expect("connect to the new primary");
        wait_until(T, "every row done on the new primary", &esmed, || {
            count(&mut db, "NOT submission_done") == 0
        });
        stop_mo.store(true, Ordering::Relaxed);
        sender.join().expect("the MO sender")
    });

    let mut db = standby
        .superuser_client(DB)
        .expect("connect to the new primary");
    // Every MO sent gets its answer, and every receipt and MO answered is stored there.
    wait_until(T, "every MO answered", &esmed, || {
        env.smsc
            .deliver_sm_resps()
            .iter()
            .filter(|r| r.pdu.command_status == CommandStatus::ESME_ROK)
            .count()
            >= mo_sent
    });
    // Receipts may still come: read what the SMSC saw answered (stored by then), then what
    // is stored, then what it sent (everything stored was sent by then).
    let (_, acked) = deliveries(&env);
    let rx = stored(&mut db);
    let (sends, _) = deliveries(&env);
    for text in &acked {
        assert!(
            rx.contains_key(text),
            "'{text}' acknowledged but not stored\n{}",
            show_log()
        );
    }
    for (text, n) in &rx {
        let sent = sends.get(text).copied().unwrap_or(0);
        assert!(
            *n as usize <= sent,
            "'{text}' stored {n} times, sent {sent}\n{}",
            show_log()
        );
    }
    assert!(acked.len() > mo_sent, "receipts came too: {}", acked.len());

    // Every row reached the SMSC; those that reached it twice are at most the window, each
    // counted in submission_resends.
    let sends = sends_per_row(&env, &mut db);
    assert_eq!(sends.len(), ROWS as usize, "every row reached the SMSC");
    let twice: Vec<i64> = sends
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        twice.len() <= WINDOW,
        "{} rows sent twice: {twice:?}\n{}",
        twice.len(),
        show_log()
    );
    for id in &twice {
        let resends: i32 = db
            .query_one(
                "SELECT submission_resends FROM smpp_tx_queue WHERE id = $1",
                &[id],
            )
            .expect("read submission_resends")
            .get(0);
        assert!(resends >= 1, "row {id} sent twice, not counted");
    }

    // It says where it went, holds its instance's lock there, and `esmed status` names it.
    let log = show_log();
    let moved = format!(
        "connected to PostgreSQL at {}:{}, no longer {}:{}",
        standby.host(),
        standby.port(),
        env.cluster.host(),
        env.cluster.port()
    );
    assert!(log.contains(&moved), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(env.smsc.binds().len(), 1, "the session stayed bound\n{log}");
    let locks: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND classid = x'65736d65'::int::oid",
            &[],
        )
        .expect("read pg_locks")
        .get(0);
    assert_eq!(
        locks, 1,
        "the instance lock is held on the new primary\n{log}"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_esmed"))
        .arg("status")
        .arg("-c")
        .arg(&esmed.config)
        .output()
        .expect("run esmed status");
    let text = String::from_utf8_lossy(&status.stdout);
    let database = format!("database: {}:{}", standby.host(), standby.port());
    assert!(text.contains(&database), "{text}");
}

/// Runs `sql` on `cluster`'s database as the superuser, each statement on its own.
fn run_sql(cluster: &PgCluster, statements: &[&str]) {
    let mut db = cluster.superuser_client(DB).expect("connect as superuser");
    for sql in statements {
        db.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// The primary commits a received MO and the answer to the COMMIT is lost; the primary then
/// goes before the standby had that transaction's WAL (here: the standby stopped streaming
/// first, as an asynchronous standby lagging behind), the standby is promoted, and by the
/// time esmed reaches it the promoted server has handed the same transaction id out again,
/// to a transaction that committed. Asked whether "its" transaction committed, it says yes:
/// esmed must not believe it (the MO would be answered as stored, and stored nowhere), and
/// it does not, since the promoted server's replay ended before the transaction began.
#[test]
fn a_commit_in_doubt_across_a_failover_is_not_taken_for_a_reused_transaction_id() {
    let primary = PgCluster::start().expect("start the primary");
    let mut env = Env::with_cluster(
        "doubt-failover",
        primary,
        SmscConfig {
            deliver_resend_after: Duration::from_secs(120),
            ..support::smsc_config()
        },
    );
    let standby = env.cluster.start_standby().expect("start the standby");
    let proxy = PgProxy::start(env.cluster.port());
    let standby_proxy = PgProxy::start(standby.port());
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let esmed = start_esmed(&env, proxy.port(), standby_proxy.port());
    assert!(env.smsc.wait_for_bound(1, T), "{}", esmed.log());
    env.smsc
        .send_mo(MoMessage::text("447700900123", "ESMED", "before"));
    wait_until(T, "the first MO stored", &esmed, || {
        stored(&mut env.db()).contains_key("before")
    });

    let mut replica = standby
        .superuser_client(DB)
        .expect("connect to the standby");
    wait_until(T, "the first MO on the standby", &esmed, || {
        stored(&mut replica).contains_key("before")
    });
    drop(replica);
    // The standby stops streaming, and will refuse writes once promoted until the test
    // has used the transaction ids the old primary gave out since.
    run_sql(
        &standby,
        &[
            "ALTER SYSTEM SET primary_conninfo = ''",
            "ALTER SYSTEM SET default_transaction_read_only = on",
            "SELECT pg_reload_conf()",
        ],
    );
    let mut db = env.db();
    wait_until(T, "the standby detached", &esmed, || {
        let streaming: i64 = db
            .query_one("SELECT count(*) FROM pg_stat_replication", &[])
            .expect("read pg_stat_replication")
            .get(0);
        streaming == 0
    });

    // The answer to the COMMIT of the next MO is lost; esmed's next connections through the
    // proxy wait until the primary is gone.
    proxy.pause_after_cuts(Duration::from_secs(10));
    proxy.arm(Cut::AnswerToCommit(Tx::Inserting));
    env.smsc
        .send_mo(MoMessage::text("447700900123", "ESMED", "in doubt"));
    assert!(proxy.wait_for_cuts(1, T), "{}", esmed.log());
    let last_id: i64 = db
        .query_one("SELECT txid_current()", &[])
        .expect("read the primary's transaction id")
        .get(0);
    assert!(
        stored(&mut db).contains_key("in doubt"),
        "the old primary had it"
    );
    drop(db);
    env.cluster.stop_immediate().expect("stop the primary");
    standby.promote().expect("promote the standby");

    // The promoted server hands out the old primary's ids again, each committed.
    let mut db = standby
        .superuser_client(DB)
        .expect("connect to the new primary");
    db.batch_execute("SET default_transaction_read_only = off")
        .expect("writes for this session");
    loop {
        let id: i64 = db
            .query_one("SELECT txid_current()", &[])
            .expect("use a transaction id")
            .get(0);
        if id > last_id {
            break;
        }
    }
    run_sql(
        &standby,
        &[
            "ALTER SYSTEM RESET default_transaction_read_only",
            "SELECT pg_reload_conf()",
        ],
    );

    wait_until(T, "the MO in doubt answered", &esmed, || {
        env.smsc
            .deliver_sm_resps()
            .iter()
            .any(|r| r.pdu.command_status == CommandStatus::ESME_ROK && r.pdu.sequence_number > 1)
    });
    let (_, acked) = deliveries(&env);
    assert!(acked.contains("in doubt"), "{acked:?}");
    let rx = stored(&mut db);
    let log = esmed.log();
    assert_eq!(
        rx.get("in doubt"),
        Some(&1),
        "stored once on the new primary\n{log}"
    );
    assert_eq!(rx.get("before"), Some(&1), "{log}");
    assert!(log.contains("it did not commit here"), "{log}");

    // On the promoted server, which stays one that recovered once, a commit whose answer
    // is lost is judged by its transaction id again: it committed, and is stored once.
    standby_proxy.arm(Cut::AnswerToCommit(Tx::Inserting));
    let answered = env.smsc.deliver_sm_resps().len();
    env.smsc
        .send_mo(MoMessage::text("447700900123", "ESMED", "after"));
    assert!(standby_proxy.wait_for_cuts(1, T), "{}", esmed.log());
    wait_until(T, "the MO after answered", &esmed, || {
        env.smsc.deliver_sm_resps().len() > answered
    });
    let log = esmed.log();
    assert_eq!(stored(&mut db).get("after"), Some(&1), "stored once\n{log}");
    assert!(
        log.contains("PostgreSQL says it did: counting it done"),
        "{log}"
    );
}

/// A standby listed before the primary (the old primary, back as a standby after a
/// failover) is passed over: esmed works on the primary. And when no listed server takes
/// writes, the error names each one and why.
#[test]
fn a_standby_listed_first_is_passed_over_and_a_refusal_names_every_server() {
    let env = Env::new("standby-first");
    let standby = env.cluster.start_standby().expect("start the standby");
    env.add_server(&[]);
    env.insert_many(20, "standby first ");
    let log = env.dir.0.join("standby-first.log");
    let config = env.dir.0.join("standby-first.conf");
    let text = format!(
        "[database]\nhost = {0},{0}\nport = {1},{2}\nname = {DB}\nuser = esmed\n\
         pass = {ESMED_PASSWORD}\nsslmode = disable\n\
         [daemon]\ninstance = standby-first\nstats_interval = 0\n\
         [log]\nfile = {3}\nlevel = debug\nstderr = false\n",
        env.cluster.host(),
        standby.port(),
        env.cluster.port(),
        log.display()
    );
    std::fs::write(&config, text).expect("write esmed.conf");
    let esmed = Esmed::start(&config, log);
    env.wait_all("submission_done", T, &esmed);
    let primary = format!(
        "connected to PostgreSQL at {}:{}\n",
        env.cluster.host(),
        env.cluster.port()
    );
    assert!(esmed.log().contains(&primary), "{}", esmed.log());

    let database = esmed::config::DatabaseConfig {
        hosts: vec![
            esmed::config::DbHost::new(standby.host(), standby.port()),
            esmed::config::DbHost::new(standby.host(), 1),
        ],
        name: DB.to_string(),
        pass: esmed::config::Secret::new(ESMED_PASSWORD),
        ..esmed::config::DatabaseConfig::default()
    };
    let error = esmed::db::PgConnector::new(&database)
        .connect()
        .err()
        .expect("no server takes writes");
    let text = error.to_string();
    let read_only = format!(
        "database: no server would do: {}:{}: connect: error connecting to server: database \
         does not allow writes (a standby, or default_transaction_read_only is on); {}:1: \
         connect: error connecting to server: ",
        standby.host(),
        standby.port(),
        standby.host()
    );
    assert!(text.starts_with(&read_only), "{text}");
    assert!(
        error.is_connection_lost(),
        "retried, not taken as bad data: {text}"
    );
}

/// A server that takes the TCP connection and then never answers (a stopped postmaster, a
/// PostgreSQL hung on its disk while its machine's kernel still answers), listed first, is
/// given up after `connect_timeout` and the next server is used; each reconnect tries it
/// again and gives it up again. Without a deadline on the whole attempt esmed would wait on
/// it for ever and never reach the primary.
#[test]
fn a_server_that_accepts_and_never_answers_is_given_up_after_connect_timeout() {
    let env = Env::new("hung-first");
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let hung_port = hung.local_addr().expect("address").port();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held = Arc::clone(&held);
        thread::spawn(move || {
            for stream in hung.incoming().flatten() {
                held.lock().unwrap().push(stream);
            }
        });
    }
    env.add_server(&[]);
    env.insert_many(20, "hung first ");
    let log = env.dir.0.join("hung-first.log");
    let config = env.dir.0.join("hung-first.conf");
    let text = format!(
        "[database]\nhost = 127.0.0.1,{0}\nport = {1},{2}\nname = {DB}\nuser = esmed\n\
         pass = {ESMED_PASSWORD}\nsslmode = disable\nconnect_timeout = 1s\n\
         [daemon]\ninstance = hung-first\nstats_interval = 0\n\
         [log]\nfile = {3}\nlevel = debug\nstderr = false\n",
        env.cluster.host(),
        hung_port,
        env.cluster.port(),
        log.display()
    );
    std::fs::write(&config, text).expect("write esmed.conf");
    let esmed = Esmed::start(&config, log);
    env.wait_all("submission_done", T, &esmed);
    assert!(
        !held.lock().unwrap().is_empty(),
        "esmed tried the hung server first"
    );
    let given_up = format!(
        "passed over 127.0.0.1:{hung_port}: database: connect: 127.0.0.1:{hung_port} took \
         the connection but did not complete its start within 1 s"
    );
    assert!(esmed.log().contains(&given_up), "{}", esmed.log());
}
