//! End to end, monitoring: the esmed binary writes its esmed_status heartbeat while
//! it sends, `esmed status` shows it (as text and as JSON) with the right exit status, a
//! killed esmed's row goes stale, and a clean exit removes the row.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{wait_until, Env};

const T: Duration = Duration::from_secs(20);

fn esmed_status(config: &std::path::Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esmed"))
        .arg("status")
        .arg("-c")
        .arg(config)
        .args(extra)
        .output()
        .expect("run esmed status")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn heartbeat_shows_the_bound_session_and_its_rates_then_goes_stale_when_killed() {
    let env = Env::new("status");
    let server = env.add_server(&[
        ("name", "'main'"),
        ("esme_bind_transceiver", "TRUE"),
        ("smpp_window", "7"),
    ]);
    let mut esmed = env.esmed("watched", "heartbeat_interval = 1s\n");
    let mut db = env.db();
    let row = |db: &mut postgres::Client| {
        db.query_opt(
            "SELECT session_state, server_id, server_name, window_size, pid, submitted_total,
                    out_per_second, heartbeat_seconds FROM esmed_status WHERE instance = 'watched'",
            &[],
        )
        .unwrap()
    };
    wait_until(T, "a bound heartbeat row", &esmed, || {
        row(&mut db).is_some_and(|r| r.get::<_, String>(0) == "bound transceiver")
    });
    let first = row(&mut db).unwrap();
    assert_eq!(first.get::<_, Option<i32>>(1), Some(server));
    assert_eq!(first.get::<_, Option<String>>(2).as_deref(), Some("main"));
    assert_eq!(first.get::<_, Option<i32>>(3), Some(7));
    assert_eq!(first.get::<_, i32>(4), esmed.pid() as i32);
    assert_eq!(first.get::<_, f32>(7), 1.0);

    for n in 0..30 {
        env.insert(&format!("4470090{n:04}"), "hello");
    }
    // The beat after the sends has the total and a rate above zero (the burst fits in a
    // second or two; each beat's row stays for a second, and we look every 20 ms).
    let mut best_rate = 0.0f32;
    wait_until(
        T,
        "the total and a positive rate in the row",
        &esmed,
        || {
            if let Some(r) = row(&mut db) {
                best_rate = best_rate.max(r.get(6));
            }
            best_rate > 0.0 && row(&mut db).is_some_and(|r| r.get::<_, i64>(5) == 30)
        },
    );
    env.wait_all("submission_done", T, &esmed);

    let text = esmed_status(&esmed.config, &[]);
    let shown = stdout(&text);
    assert_eq!(text.status.code(), Some(0), "{shown}");
    assert!(shown.starts_with("INSTANCE"), "{shown}");
    assert!(shown.contains("watched"), "{shown}");
    assert!(shown.contains("bound transceiver"), "{shown}");
    assert!(shown.contains(&format!("{server} 'main'")), "{shown}");
    assert!(
        shown.contains("queue: 0 pending, 0 in flight, 0 waiting to retry, 30 done, 0 failed"),
        "{shown}"
    );
    assert!(
        shown.contains("inserted in the last hour: 30 done, 0 failed"),
        "{shown}"
    );

    let json = esmed_status(&esmed.config, &["--json"]);
    assert_eq!(json.status.code(), Some(0));
    let parsed = db
        .query_one(
            "SELECT j->'instances'->0->>'instance', j->'instances'->0->>'session_state',
                    (j->'instances'->0->>'fresh')::bool, (j->'queue'->>'done')::int,
                    (j->>'healthy')::bool, (j->'instances'->0->>'submitted_total')::int
             FROM (SELECT $1::text::jsonb AS j) s",
            &[&stdout(&json)],
        )
        .expect("esmed status --json is JSON");
    assert_eq!(parsed.get::<_, String>(0), "watched");
    assert_eq!(parsed.get::<_, String>(1), "bound transceiver");
    assert!(parsed.get::<_, bool>(2));
    assert_eq!(parsed.get::<_, i32>(3), 30);
    assert!(parsed.get::<_, bool>(4));
    assert_eq!(parsed.get::<_, i32>(5), 30);

    // SIGKILL: the row stays, stops being updated, and after three heartbeats is stale.
    esmed.kill();
    std::thread::sleep(Duration::from_millis(3500));
    let stale = esmed_status(&esmed.config, &[]);
    let shown = stdout(&stale);
    assert_eq!(stale.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("not running? (was: bound transceiver)"),
        "{shown}"
    );
    let json = stdout(&esmed_status(&esmed.config, &["--json"]));
    let fresh: bool = db
        .query_one(
            "SELECT ($1::text::jsonb->'instances'->0->>'fresh')::bool",
            &[&json],
        )
        .unwrap()
        .get(0);
    assert!(!fresh, "{json}");
}

#[test]
fn clean_exit_removes_the_row_and_lost_sessions_are_the_last_error() {
    let env = Env::new("status-exit");
    // Nothing listens on the server's port: the session keeps connecting and failing.
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = env.add_server(&[]);
    let mut db = env.db();
    db.execute(
        "UPDATE smpp_servers SET port = $1 WHERE id = $2",
        &[&i32::from(closed_port), &server],
    )
    .unwrap();
    let mut esmed = env.esmed("failing", "heartbeat_interval = 1s\n");
    wait_until(T, "a connecting row with an error", &esmed, || {
        db.query_opt(
            "SELECT 1 FROM esmed_status WHERE instance = 'failing'
             AND session_state = 'connecting' AND last_error IS NOT NULL
             AND last_error_at IS NOT NULL",
            &[],
        )
        .unwrap()
        .is_some()
    });
    let status = esmed_status(&esmed.config, &[]);
    let shown = stdout(&status);
    assert_eq!(
        status.status.code(),
        Some(1),
        "fresh but not bound:\n{shown}"
    );
    assert!(shown.contains("failing: last error at"), "{shown}");

    assert!(esmed.terminate(T).success());
    let rows: i64 = db
        .query_one("SELECT count(*) FROM esmed_status", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "a clean exit deletes the row");
    let none = esmed_status(&esmed.config, &[]);
    assert_eq!(none.status.code(), Some(1));
    assert!(stdout(&none).starts_with("no esmed instance"));
}

#[test]
fn unreachable_database_is_exit_2() {
    let dir = support::TempDir::new("status-nodb");
    let config = dir.0.join("esmed.conf");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    std::fs::write(
        &config,
        format!("[database]\nhost = 127.0.0.1\nport = {port}\nsslmode = disable\nconnect_timeout = 2s\n"),
    )
    .unwrap();
    let output = esmed_status(&config, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("esmed status: "));
    let missing = esmed_status(&dir.0.join("missing.conf"), &["--json"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// Database trouble is the last error too: after PostgreSQL was away, esmed_status says
/// which thread lost it, not only the log.
#[test]
fn a_lost_database_becomes_the_last_error() {
    let mut env = Env::new("dbdown");
    env.add_server(&[]);
    let esmed = env.esmed("dbdown", "heartbeat_interval = 1s\n");
    let mut db = env.db();
    wait_until(T, "a heartbeat row", &esmed, || {
        db.query_opt("SELECT 1 FROM esmed_status WHERE instance = 'dbdown'", &[])
            .unwrap()
            .is_some()
    });
    drop(db);
    env.cluster.stop_fast().expect("stop PostgreSQL");
    std::thread::sleep(Duration::from_millis(1500));
    env.cluster.start_again().expect("start PostgreSQL again");
    let mut db = env.db();
    // Any of the threads that hold a PostgreSQL connection may have seen the outage last.
    wait_until(T, "a database error as last_error", &esmed, || {
        db.query_opt(
            "SELECT 1 FROM esmed_status WHERE instance = 'dbdown'
             AND last_error ~ '^(poller|sweeper|DB writer|heartbeat|supervisor): '",
            &[],
        )
        .unwrap()
        .is_some()
    });
}

/// While PostgreSQL is away, the supervisor tries to read smpp_servers again after a growing
/// delay, one warning a try, instead of a warning every quarter of a second; once PostgreSQL
/// is back the queue moves on.
#[test]
fn an_outage_costs_the_server_watch_a_few_warnings_not_one_a_tick() {
    let mut env = Env::new("watch-backoff");
    env.add_server(&[]);
    let esmed = env.esmed("watch-backoff", "");
    assert!(env.smsc.wait_for_bound(1, T));
    env.cluster.stop_fast().expect("stop PostgreSQL");
    std::thread::sleep(Duration::from_secs(6));
    env.cluster.start_again().expect("start PostgreSQL again");
    env.insert("447700900777", "after the outage");
    env.wait_all("submission_done", T, &esmed);
    let log = esmed.log();
    let tries = log.matches("to read smpp_servers").count();
    // Every tick for six seconds would be 24; doubling from a quarter second gives about 6.
    assert!((1..=10).contains(&tries), "{tries} warnings\n{log}");
    assert!(log.contains("trying again in"), "{log}");
}
