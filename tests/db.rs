//! The schema (`sql/db.sql`, `sql/upgrade-0.1.sql`) and every query of `esmed::db`, against a
//! real private PostgreSQL cluster per test (`esmed_testkit::PgCluster`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use esmed::db::{self, AcceptedPart, RegisteredDelivery, RxRow, TxOutcome, TxResult};
use esmed_testkit::PgCluster;
use postgres::error::SqlState;
use postgres::Client;

const LEASE: Duration = Duration::from_secs(60);

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A cluster with database `esmed` made by sql/db.sql.
fn fresh_cluster() -> PgCluster {
    let started = Instant::now();
    let cluster = PgCluster::start().unwrap();
    cluster.create_database("esmed").unwrap();
    cluster
        .load_schema("esmed", &repo_file("sql/db.sql"))
        .unwrap();
    eprintln!("cluster + schema ready in {:?}", started.elapsed());
    cluster
}

fn clients(cluster: &PgCluster, db: &str) -> (Client, Client) {
    (
        cluster.superuser_client(db).unwrap(),
        cluster.esmed_client(db, "pw'x").unwrap(),
    )
}

/// How far back receipts look first for their message (`[daemon] receipt_match_window`).
const RECEIPT_WINDOW: Duration = Duration::from_secs(3600);

/// The insert_timestamp of the rows [`insert_messages`] inserts, which [`result`] gives
/// back as a claim would (esmed finds a row by its id and insert_timestamp).
fn inserted() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn insert_messages(c: &mut Client, values: &str) -> Vec<i64> {
    let sql = format!(
        "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_priority_flag, smpp_short_message, \
             insert_timestamp) \
         SELECT d, p::smpp_priority_flag, m, $1 FROM (VALUES {values}) AS v(d, p, m) RETURNING id"
    );
    c.query(&sql, &[&inserted()])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn part(part_no: i16, part_count: i16, message_id: &str) -> AcceptedPart {
    AcceptedPart {
        part_no,
        part_count,
        message_id: message_id.into(),
    }
}

/// A result for a row [`insert_messages`] inserted.
fn result(id: i64, outcome: TxOutcome) -> TxResult {
    TxResult {
        id,
        insert_timestamp: inserted(),
        outcome,
        attempts: 1,
        resends: 0,
    }
}

#[test]
fn a_server_row_loads_with_defaults_and_a_too_long_password_is_refused() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    // A server as an operator might insert it: 'my-password' has 11 characters and the table
    // keeps the old esme_password varchar(9) (SMPP allows 8), so it is rejected as too long.
    let error = admin
        .batch_execute(
            "insert into smpp_servers (enabled, host, port, esme_system_id, esme_password) values (TRUE, 'server-address', 2775, 'my-login', 'my-password');",
        )
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::STRING_DATA_RIGHT_TRUNCATION));
    admin
        .batch_execute(
            "insert into smpp_servers (enabled, host, port, esme_system_id, esme_password) values (TRUE, 'server-address', 2775, 'my-login', 'my-passwd');
             insert into smpp_tx_queue (smpp_destination_addr, smpp_short_message) values ('some-phone-number', 'Hello, there!');",
        )
        .unwrap();

    let server = db::load_enabled_server(&mut esmed).unwrap().unwrap();
    assert_eq!(
        (
            server.host.as_str(),
            server.port,
            server.esme_system_id.as_str()
        ),
        ("server-address", 2775, "my-login")
    );
    assert_eq!(server.esme_password.expose(), "my-passwd");
    assert!(!format!("{server:?}").contains("my-passwd"));
    assert_eq!(
        (
            server.smpp_window,
            server.smpp_rate_limit,
            server.esme_max_submission_attempts
        ),
        (10, 0, 3)
    );
    assert_eq!(
        (
            server.esme_dest_addr_ton,
            server.esme_dest_addr_npi,
            server.esme_source_addr_ton
        ),
        (1, 1, None)
    );
    assert_eq!(
        server.smpp_text_coding,
        esmed::smpp::text::CodingPolicy::Gsm7
    );
    assert_eq!(
        server.smpp_long_message_mode,
        esmed::smpp::concat::LongMode::Udh8
    );
    assert!(!server.esme_bind_receiver && !server.esme_bind_transceiver);
    assert!(server.smpp_permanent_statuses.is_empty());
    // TLS off after the upgrade; verification would be on.
    assert!(!server.smpp_tls && server.smpp_tls_verify);
    assert_eq!(server.smpp_tls_ca_file, None);
    assert_eq!(server.smpp_tls_server_name, None);
    assert_eq!(
        (server.smpp_tls_cert_file, server.smpp_tls_key_file),
        (None, None)
    );

    let claimed = db::claim(&mut esmed, 10, LEASE, "a").unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].destination, "some-phone-number");
    assert_eq!(claimed[0].short_message, "Hello, there!");
    assert_eq!((claimed[0].priority, claimed[0].attempts), (0, 0));
    assert_eq!(
        claimed[0].registered_delivery,
        RegisteredDelivery::NotRequested
    );

    admin
        .batch_execute("UPDATE smpp_servers SET enabled = false")
        .unwrap();
    assert_eq!(db::load_enabled_server(&mut esmed).unwrap(), None);
}

#[test]
fn at_most_one_server_is_enabled() {
    let cluster = fresh_cluster();
    let (mut admin, _) = clients(&cluster, "esmed");
    let enabled = |c: &mut Client| -> Vec<String> {
        let rows = c
            .query(
                "SELECT host FROM smpp_servers WHERE enabled ORDER BY id",
                &[],
            )
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    };
    let insert = "INSERT INTO smpp_servers (enabled, host, esme_system_id, esme_password) VALUES ";
    admin
        .batch_execute(&format!("{insert} (true, 'a', 'x', 'y')"))
        .unwrap();
    admin
        .batch_execute(&format!("{insert} (true, 'b', 'x', 'y')"))
        .unwrap();
    assert_eq!(enabled(&mut admin), ["b"]);
    admin
        .batch_execute("UPDATE smpp_servers SET enabled = true WHERE host = 'a'")
        .unwrap();
    assert_eq!(enabled(&mut admin), ["a"]);
    admin
        .batch_execute(&format!(
            "{insert} (true, 'c', 'x', 'y'), (true, 'd', 'x', 'y')"
        ))
        .unwrap();
    assert_eq!(enabled(&mut admin), ["d"]);
    admin
        .batch_execute(&format!("{insert} (false, 'e', 'x', 'y')"))
        .unwrap();
    assert_eq!(enabled(&mut admin), ["d"]);
}

#[test]
fn statement_level_notify_one_per_statement() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    db::listen(&mut esmed).unwrap();

    let started = Instant::now();
    admin
        .batch_execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
             SELECT '4670' || n, 'bulk ' || n FROM generate_series(1, 100000) n",
        )
        .unwrap();
    eprintln!("100,000-row insert took {:?}", started.elapsed());
    let changes = db::wait_for_changes(&mut esmed, Duration::from_secs(2)).unwrap();
    // Anything late would show up here.
    let late = db::wait_for_changes(&mut esmed, Duration::from_millis(300)).unwrap();
    assert_eq!(
        changes,
        db::TableChanges {
            servers: false,
            tx_queue: true,
            notifications: 1
        }
    );
    assert_eq!(late.notifications, 0);

    for sql in [
        "INSERT INTO smpp_servers (host, esme_system_id, esme_password) VALUES ('h', 'x', 'y')",
        "UPDATE smpp_servers SET port = 2776",
        "DELETE FROM smpp_servers",
    ] {
        admin.batch_execute(sql).unwrap();
        let changes = db::wait_for_changes(&mut esmed, Duration::from_secs(2)).unwrap();
        assert_eq!(
            changes,
            db::TableChanges {
                servers: true,
                tx_queue: false,
                notifications: 1
            },
            "{sql}"
        );
    }
    // Updates of the queue (esmed's own writes) notify no one.
    admin
        .batch_execute("UPDATE smpp_tx_queue SET submission_done = true WHERE id < 10")
        .unwrap();
    assert_eq!(
        db::wait_for_changes(&mut esmed, Duration::from_millis(300))
            .unwrap()
            .notifications,
        0
    );
}

#[test]
fn claim_orders_by_priority_then_id_and_skips_unsendable_rows() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    let ids = insert_messages(
        &mut admin,
        "('1', 'LEVEL_0', 'a'), ('2', 'LEVEL_3', 'b'), ('3', 'LEVEL_1', 'c'), ('4', 'LEVEL_3', 'd'),
         ('5', 'LEVEL_0', 'done'), ('6', 'LEVEL_0', 'failed'), ('7', 'LEVEL_0', 'later')",
    );
    admin
        .execute(
            "UPDATE smpp_tx_queue SET submission_done = true WHERE id = $1",
            &[&ids[4]],
        )
        .unwrap();
    admin
        .execute(
            "UPDATE smpp_tx_queue SET submission_failed = true WHERE id = $1",
            &[&ids[5]],
        )
        .unwrap();
    admin
        .execute(
            "UPDATE smpp_tx_queue SET next_attempt_at = now() + interval '1 hour' WHERE id = $1",
            &[&ids[6]],
        )
        .unwrap();

    assert_eq!(db::first_sendable(&mut esmed).unwrap(), Some((3, ids[1])));
    let first = db::claim(&mut esmed, 3, LEASE, "a").unwrap();
    assert_eq!(db::first_sendable(&mut esmed).unwrap(), Some((0, ids[0])));
    let order: Vec<i64> = first.iter().map(|t| t.id).collect();
    assert_eq!(order, [ids[1], ids[3], ids[2]]);
    assert_eq!(
        first.iter().map(|t| t.priority).collect::<Vec<_>>(),
        [3, 3, 1]
    );
    let rest = db::claim(&mut esmed, 10, LEASE, "a").unwrap();
    assert_eq!(rest.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[0]]);
    assert_eq!(db::first_sendable(&mut esmed).unwrap(), None);
    assert!(db::claim(&mut esmed, 10, LEASE, "b").unwrap().is_empty());

    let lease: (String, bool) = {
        let row = admin
            .query_one(
                "SELECT claimed_by, claimed_until > now() + interval '50 seconds' FROM smpp_tx_queue WHERE id = $1",
                &[&ids[0]],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(lease, ("a".to_string(), true));
    assert_eq!(
        db::release_untracked(&mut esmed, "a", &[]).unwrap().len(),
        4
    );
    let taken: Vec<i64> = db::claim(&mut esmed, 10, LEASE, "b")
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(taken.len(), 4);
    let renewal = db::renew_held(&mut esmed, LEASE, "b", &taken).unwrap();
    assert_eq!((renewal.renewed, renewal.locked), (4, 0));
}

/// A claim rewrites every row it takes; with the schema's fillfactor the new version stays on
/// the row's page (a HOT update: no index touched, the table does not grow). With the
/// fillfactor of earlier versions (60) a third of the rows of this size moved page. The
/// fillfactor check at esmed's start reads what the table really has.
#[test]
fn claims_leave_every_row_on_its_page() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    admin
        .execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
             SELECT '4470' || i, repeat('long message text ', 9) || i
             FROM generate_series(1, 2000) i",
            &[],
        )
        .unwrap();
    let pages = |c: &mut Client| -> Vec<(i64, String)> {
        c.query(
            "SELECT id, split_part(trim(both '()' from ctid::text), ',', 1) \
             FROM smpp_tx_queue ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let before = pages(&mut admin);
    assert_eq!(db::claim(&mut esmed, 2000, LEASE, "a").unwrap().len(), 2000);
    let after = pages(&mut admin);
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    assert_eq!(moved, 0, "rows that left their page when claimed");

    assert_eq!(db::schema::queue_fillfactor(&mut esmed).unwrap(), 40);
    assert_eq!(db::schema::fillfactor_advice(40), None);
    admin
        .batch_execute("ALTER TABLE smpp_tx_queue RESET (fillfactor)")
        .unwrap();
    assert_eq!(db::schema::queue_fillfactor(&mut esmed).unwrap(), 100);
}

#[test]
fn concurrent_claimers_never_get_the_same_row() {
    let cluster = fresh_cluster();
    let (mut admin, _) = clients(&cluster, "esmed");
    admin
        .batch_execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
             SELECT '4670' || n, 'm' FROM generate_series(1, 4000) n",
        )
        .unwrap();
    // Connect everyone first and start together, so that no claimer drains the queue
    // while another is still authenticating.
    let clients: Vec<_> = (0..4)
        .map(|_| cluster.esmed_client("esmed", "pw").unwrap())
        .collect();
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let workers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut client)| {
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let instance = format!("instance-{n}");
                let mut got = Vec::new();
                loop {
                    let batch = db::claim(&mut client, 25, LEASE, &instance).unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.iter().map(|t| t.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        let got = worker.join().unwrap();
        assert!(!got.is_empty(), "every claimer got some rows");
        all.extend(got);
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 4000);
    assert_eq!(unique.len(), 4000);
}

/// Leases are renewed for the rows a process holds, not for every row under its name: a row
/// claimed under the name but not held (lost track of) is released instead, counted as a
/// possible duplicate; a row another transaction has locked is skipped, never waited for; and
/// a claim never takes back a row whose lease ran out under the claimer's own name.
#[test]
fn only_held_rows_are_renewed_and_the_others_released() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    let ids = insert_messages(
        &mut admin,
        "('1', 'LEVEL_0', 'a'), ('2', 'LEVEL_0', 'b'), ('3', 'LEVEL_0', 'c')",
    );
    let short = Duration::from_secs(1);
    assert_eq!(db::claim(&mut esmed, 10, short, "a").unwrap().len(), 3);
    let held = [ids[0], ids[1]];
    let renewal = db::renew_held(&mut esmed, LEASE, "a", &held).unwrap();
    assert_eq!((renewal.renewed, renewal.locked), (2, 0));
    let renewed = |c: &mut Client, id: i64| -> bool {
        c.query_one(
            "SELECT claimed_until > now() + interval '30 seconds' FROM smpp_tx_queue WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0)
    };
    assert!(renewed(&mut admin, ids[0]) && renewed(&mut admin, ids[1]));
    assert!(
        !renewed(&mut admin, ids[2]),
        "a row not held is not renewed"
    );

    // An application locks a held row: the renewal skips it at once.
    let mut app = cluster.superuser_client("esmed").unwrap();
    let mut lock = app.transaction().unwrap();
    lock.execute(
        "SELECT 1 FROM smpp_tx_queue WHERE id = $1 FOR UPDATE",
        &[&ids[0]],
    )
    .unwrap();
    let renewal = db::renew_held(&mut esmed, LEASE, "a", &held).unwrap();
    assert_eq!((renewal.renewed, renewal.locked), (1, 1));
    lock.rollback().unwrap();

    // The lease of the row not held runs out: "a" does not take it back itself.
    thread::sleep(Duration::from_millis(1100));
    assert!(db::claim(&mut esmed, 10, LEASE, "a").unwrap().is_empty());
    assert_eq!(
        db::release_untracked(&mut esmed, "a", &held).unwrap(),
        [ids[2]]
    );
    let row = admin
        .query_one(
            "SELECT claimed_by, submission_resends FROM smpp_tx_queue WHERE id = $1",
            &[&ids[2]],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, i32>(1), 1, "a possible duplicate, counted");
    assert_eq!(db::claim(&mut esmed, 10, LEASE, "a").unwrap()[0].id, ids[2]);
}

/// A text longer than esmed could send fails inside the claim, without being read; a
/// retried row gets its accepted parts from the same statement.
#[test]
fn a_claim_fails_a_huge_text_unread_and_returns_accepted_parts() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    let ids = insert_messages(&mut admin, "('1', 'LEVEL_0', 'a'), ('2', 'LEVEL_0', 'b')");
    let octets = db::MAX_TEXT_OCTETS + 1;
    admin
        .execute(
            "UPDATE smpp_tx_queue SET smpp_short_message = repeat('x', $2::int) WHERE id = $1",
            &[&ids[0], &(octets as i32)],
        )
        .unwrap();
    admin
        .execute(
            "UPDATE smpp_tx_queue SET submission_attempts = 1 WHERE id = $1",
            &[&ids[1]],
        )
        .unwrap();
    admin
        .execute(
            "INSERT INTO smpp_tx_parts (tx_id, part_no, part_count, message_id, message_id_key) \
             VALUES ($1, 2, 2, 'P2', 'p2'), ($1, 1, 2, 'P1', 'p1')",
            &[&ids[1]],
        )
        .unwrap();
    let claimed = db::claim(&mut esmed, 10, LEASE, "a").unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, ids[1]);
    assert_eq!(
        claimed[0].accepted_parts,
        [part(1, 2, "P1"), part(2, 2, "P2")]
    );
    let row = admin
        .query_one(
            "SELECT submission_failed, submission_info, claimed_by FROM smpp_tx_queue \
             WHERE id = $1",
            &[&ids[0]],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(
        row.get::<_, String>(1),
        format!(
            "text is {octets} octets, more than esmed can send in any coding (at most {}): \
             not sent",
            db::MAX_TEXT_OCTETS
        )
    );
    assert_eq!(row.get::<_, Option<String>>(2), None);
}

/// Two sessions cannot hold one instance name; the lock goes with the session that held it.
#[test]
fn an_instance_name_is_held_by_one_session_at_a_time() {
    let cluster = fresh_cluster();
    let mut first = cluster.esmed_client("esmed", "pw").unwrap();
    let mut second = cluster.esmed_client("esmed", "pw").unwrap();
    assert_eq!(
        db::instance::take_name(&mut first, "host", false).unwrap(),
        "host"
    );
    assert_eq!(
        db::instance::take_name(&mut second, "host", false).unwrap(),
        "host-2"
    );
    let refusal = db::instance::take_name(&mut second, "host", true)
        .unwrap_err()
        .to_string();
    assert!(
        refusal.starts_with(
            "[daemon] instance 'host' is in use by another running esmed (its \
             PostgreSQL connection: server process "
        ),
        "{refusal}"
    );
    drop(first);
    let mut third = cluster.esmed_client("esmed", "pw").unwrap();
    assert_eq!(
        db::instance::take_name(&mut third, "host", true).unwrap(),
        "host"
    );
}

#[test]
fn expired_lease_is_reclaimable_and_the_old_holder_cannot_write() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    let ids = insert_messages(&mut admin, "('1', 'LEVEL_0', 'a')");
    assert_eq!(
        db::claim(&mut esmed, 10, Duration::from_millis(200), "a")
            .unwrap()
            .len(),
        1
    );
    assert!(db::claim(&mut esmed, 10, LEASE, "b").unwrap().is_empty());
    thread::sleep(Duration::from_millis(300));
    assert_eq!(db::claim(&mut esmed, 10, LEASE, "b").unwrap()[0].id, ids[0]);

    let done = result(
        ids[0],
        TxOutcome::Done {
            parts: vec![part(1, 1, "from-a")],
        },
    );
    let summary = db::write_results(&mut esmed, &[done], "a").unwrap();
    assert_eq!((summary.written, summary.skipped), (0, vec![ids[0]]));
    let row = admin
        .query_one(
            "SELECT submission_done, claimed_by FROM smpp_tx_queue WHERE id = $1",
            &[&ids[0]],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, bool>(0), row.get::<_, String>(1)),
        (false, "b".to_string())
    );
    let parts: i64 = admin
        .query_one("SELECT count(*) FROM smpp_tx_parts", &[])
        .unwrap()
        .get(0);
    assert_eq!(parts, 0);
}

/// The writer matches receipts that waited for these keys: a written single-part row's key
/// (normalised as stored), a multi-part row's part keys, and nothing of a skipped row.
#[test]
fn written_results_report_the_receipt_keys_they_stored() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    let ids = insert_messages(
        &mut admin,
        "('1', 'LEVEL_0', 'a'), ('2', 'LEVEL_0', 'b'), ('3', 'LEVEL_0', 'c')",
    );
    assert_eq!(db::claim(&mut esmed, 2, LEASE, "a").unwrap().len(), 2);
    assert_eq!(db::claim(&mut esmed, 1, LEASE, "b").unwrap().len(), 1);
    let done = |id, parts| result(id, TxOutcome::Done { parts });
    let results = [
        done(ids[0], vec![part(1, 1, "00AB")]),
        done(ids[1], vec![part(1, 2, "P1"), part(2, 2, "P2")]),
        done(ids[2], vec![part(1, 1, "CD")]),
    ];
    let summary = db::write_results(&mut esmed, &results, "a").unwrap();
    assert_eq!((summary.written, summary.skipped), (2, vec![ids[2]]));
    let mut keys = summary.part_keys;
    keys.sort();
    assert_eq!(keys, ["ab", "p1", "p2"]);
    let stored: Option<String> = admin
        .query_one(
            "SELECT smpp_message_id_key FROM smpp_tx_queue WHERE id = $1",
            &[&ids[0]],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored.as_deref(), Some("ab"));
}

#[test]
fn write_results_for_every_outcome() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    queue_round_trip(&mut admin, &mut esmed);
}

/// Claims four rows and writes one result of each kind; checks every column they touch.
/// Shared with the upgrade test.
fn queue_round_trip(admin: &mut Client, esmed: &mut Client) {
    let ids = insert_messages(admin, "('1', 'LEVEL_0', 'a'), ('2', 'LEVEL_0', 'b'), ('3', 'LEVEL_0', 'c'), ('4', 'LEVEL_0', 'd')");
    let claimed = db::claim(esmed, 10, LEASE, "a").unwrap();
    assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), ids);
    let parts = vec![part(2, 2, "B2"), part(1, 2, "B1")];
    let results = [
        TxResult {
            id: ids[0],
            insert_timestamp: inserted(),
            outcome: TxOutcome::Done {
                parts: parts.clone(),
            },
            attempts: 1,
            resends: 1,
        },
        result(
            ids[1],
            TxOutcome::Failed {
                info: "ESME_RINVDSTADR: invalid destination".into(),
                parts: vec![],
            },
        ),
        result(
            ids[2],
            TxOutcome::Retry {
                info: "ESME_RSYSERR".into(),
                delay: Duration::from_millis(400),
                parts: vec![part(1, 3, "C1")],
            },
        ),
        TxResult {
            id: ids[3],
            insert_timestamp: inserted(),
            outcome: TxOutcome::Release,
            attempts: 0,
            resends: 0,
        },
    ];
    let summary = db::write_results(esmed, &results, "a").unwrap();
    assert_eq!((summary.written, summary.skipped.len()), (4, 0));

    let rows = admin
        .query(
            "SELECT id, submission_done, submission_failed, smpp_message_id, submission_timestamp IS NOT NULL,
                    submission_attempts, submission_resends, submission_info, claimed_by,
                    next_attempt_at > now()
             FROM smpp_tx_queue WHERE id = ANY($1) ORDER BY id",
            &[&ids],
        )
        .unwrap();
    type Cols = (
        bool,
        bool,
        Option<String>,
        bool,
        i32,
        i32,
        Option<String>,
        Option<String>,
        Option<bool>,
    );
    let cols = |i: usize| -> Cols {
        let r = &rows[i];
        (
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
            r.get(7),
            r.get(8),
            r.get(9),
        )
    };
    assert_eq!(
        cols(0),
        (true, false, Some("B1".into()), true, 1, 1, None, None, None)
    );
    let failed_info = Some("ESME_RINVDSTADR: invalid destination".to_string());
    assert_eq!(
        cols(1),
        (false, true, None, false, 1, 0, failed_info, None, None)
    );
    assert_eq!(
        cols(2),
        (
            false,
            false,
            None,
            false,
            1,
            0,
            Some("ESME_RSYSERR".into()),
            None,
            Some(true)
        )
    );
    assert_eq!(cols(3), (false, false, None, false, 0, 0, None, None, None));

    let stored = admin
        .query("SELECT tx_id, part_no, part_count, message_id FROM smpp_tx_parts ORDER BY tx_id, part_no", &[])
        .unwrap();
    let stored: Vec<(i64, i16, i16, String)> = stored
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        stored,
        [
            (ids[0], 1, 2, "B1".into()),
            (ids[0], 2, 2, "B2".into()),
            (ids[2], 1, 3, "C1".into())
        ]
    );

    // The released row comes back at once; the retried one after its delay, with its part.
    let again = db::claim(esmed, 10, LEASE, "a").unwrap();
    assert_eq!(again.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[3]]);
    thread::sleep(Duration::from_millis(500));
    let retried = db::claim(esmed, 10, LEASE, "a").unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!((retried[0].id, retried[0].attempts), (ids[2], 1));
    assert_eq!(retried[0].accepted_parts, [part(1, 3, "C1")]);

    // Finishing it keeps part 1 (same id) and adds the rest.
    let all_parts = vec![part(1, 3, "C1"), part(2, 3, "C2"), part(3, 3, "C3")];
    db::write_results(
        esmed,
        &[result(ids[2], TxOutcome::Done { parts: all_parts })],
        "a",
    )
    .unwrap();
    let row = admin
        .query_one(
            "SELECT smpp_message_id, submission_attempts FROM smpp_tx_queue WHERE id = $1",
            &[&ids[2]],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        ("C1".to_string(), 2)
    );
    let count: i64 = admin
        .query_one(
            "SELECT count(*) FROM smpp_tx_parts WHERE tx_id = $1",
            &[&ids[2]],
        )
        .unwrap()
        .get(0);
    assert_eq!(count, 3);
    db::write_results(esmed, &[], "a").unwrap();
}

#[test]
fn insert_rx_stores_every_column() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    rx_round_trip(&mut admin, &mut esmed);
}

fn rx_round_trip(admin: &mut Client, esmed: &mut Client) {
    let mo = RxRow {
        pdu_raw: "0000001000000005".into(),
        pdu_parsed: r#"{"command":"deliver_sm"}"#.into(),
        source_addr: "46701234567".into(),
        destination_addr: "12345".into(),
        short_message: "Hej 😀".into(),
        esm_class: 0,
        data_coding: 8,
        ..RxRow::default()
    };
    let receipt = RxRow {
        is_receipt: true,
        receipted_message_id: Some("abc".into()),
        message_state: Some("DELIVERED".into()),
        error_code: Some("000".into()),
        text_invalid: true,
        esm_class: 4,
        ..mo.clone()
    };
    db::insert_rx(esmed, &[(&mo, None), (&receipt, Some(7))]).unwrap();
    db::insert_rx(esmed, &[]).unwrap();
    let rows = admin
        .query(
            "SELECT pdu_raw, pdu_parsed::jsonb ->> 'command', smpp_source_addr, smpp_destination_addr,
                    smpp_short_message, esm_class, data_coding, is_receipt, receipted_message_id,
                    message_state, error_code, tx_id, text_invalid, insert_timestamp IS NOT NULL
             FROM smpp_rx_queue ORDER BY id",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 2);
    let (raw, command, text): (String, String, String) =
        (rows[0].get(0), rows[0].get(1), rows[0].get(4));
    assert_eq!(
        (raw.as_str(), command.as_str(), text.as_str()),
        ("0000001000000005", "deliver_sm", "Hej 😀")
    );
    assert_eq!(
        (
            rows[0].get::<_, bool>(7),
            rows[0].get::<_, Option<i64>>(11),
            rows[0].get::<_, bool>(13)
        ),
        (false, None, true)
    );
    let receipt: (i32, bool, String, String, String, i64, bool) = (
        rows[1].get(5),
        rows[1].get(7),
        rows[1].get(8),
        rows[1].get(9),
        rows[1].get(10),
        rows[1].get(11),
        rows[1].get(12),
    );
    assert_eq!(
        receipt,
        (
            4,
            true,
            "abc".into(),
            "DELIVERED".into(),
            "000".into(),
            7,
            true
        )
    );
}

#[test]
fn esmed_role_has_least_privilege() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    privileges_are_least(&mut admin, &mut esmed);
}

fn privileges_are_least(admin: &mut Client, esmed: &mut Client) {
    admin
        .batch_execute("CREATE TABLE IF NOT EXISTS app_secrets (x int)")
        .unwrap();
    for sql in [
        "DELETE FROM smpp_tx_queue",
        "DELETE FROM smpp_rx_queue",
        "DELETE FROM smpp_tx_parts",
        "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) VALUES ('1', 'x')",
        "UPDATE smpp_servers SET enabled = false",
        "SELECT * FROM smpp_rx_queue",
        "UPDATE smpp_rx_queue SET smpp_short_message = 'x'",
        "UPDATE smpp_tx_parts SET tx_id = 1 WHERE false; DELETE FROM smpp_tx_parts",
        "UPDATE smpp_rx_parts_done SET seq = 1",
        "SELECT * FROM app_secrets",
        "TRUNCATE smpp_tx_queue",
    ] {
        let error = esmed.batch_execute(sql).unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {error}"
        );
    }
    let is_superuser: String = esmed.query_one("SHOW is_superuser", &[]).unwrap().get(0);
    assert_eq!(is_superuser, "off");
}

/// Everything about the schema a user or esmed could notice, as sorted text lines.
fn schema_fingerprint(c: &mut Client) -> Vec<String> {
    let queries = [
        "SELECT format('column %s.%s #%s %s %s null=%s default=%s', table_name, column_name, ordinal_position,
                data_type, coalesce(character_maximum_length::text, ''), is_nullable, column_default)
         FROM information_schema.columns WHERE table_schema = 'public'",
        "SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        "SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT format('trigger %s', pg_get_triggerdef(oid)) FROM pg_trigger WHERE NOT tgisinternal",
        "SELECT format('function %s %s', proname, md5(prosrc)) FROM pg_proc
         WHERE pronamespace = 'public'::regnamespace",
        "SELECT format('grant %s %s %s', table_name, privilege_type, grantee)
         FROM information_schema.role_table_grants WHERE grantee = 'esmed'",
        "SELECT format('sequence %s %s', c.relname, array_to_string(c.relacl, ','))
         FROM pg_class c WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace",
        "SELECT format('storage %s %s', c.relname, array_to_string(c.reloptions, ','))
         FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace",
        "SELECT format('view %s %s', viewname, md5(definition)) FROM pg_views
         WHERE schemaname = 'public'",
        "SELECT format('type %s %s', t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder))
         FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname",
        "SELECT format('sequence %s as %s max %s', c.relname, s.seqtypid::regtype, s.seqmax)
         FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid",
        "SELECT format('schema public acl %s', array_to_string(nspacl, ','))
         FROM pg_namespace WHERE nspname = 'public'",
        "SELECT format('role setting %s', array_to_string(s.setconfig, ','))
         FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
         WHERE s.setrole = 'esmed'::regrole AND d.datname = current_database()",
    ];
    let mut lines: Vec<String> = Vec::new();
    for sql in queries {
        lines.extend(
            c.query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0)),
        );
    }
    lines.sort();
    lines
}

const OLD_ROWS: &str = "
    INSERT INTO smpp_servers (enabled, name, host, port, esme_system_id, esme_password, esme_source_addr)
        VALUES (false, 'old', 'smsc-old', 2775, 'u1', 'p1', 'ACME'), (true, 'main', 'smsc', 2776, 'u2', 'p2', NULL);
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, smpp_priority_flag,
            smpp_registered_delivery, smpp_message_id, submission_attempts, submission_done)
        VALUES ('461', 'done', 'LEVEL_1', 'SMSC_DELIVERY_RECEIPT_REQUESTED', 'id-1', 1, true);
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, submission_failed, submission_info)
        VALUES ('462', 'failed', true, 'ESME_RINVDSTADR');
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
        VALUES ('463', repeat('x', 254)), ('464', 'pending ÅÄÖ');
    INSERT INTO smpp_rx_queue (pdu_raw, pdu_parsed, smpp_source_addr, smpp_short_message)
        VALUES ('00', '{}', '461', 'hello');";

/// The old columns of every old table, as JSON lines, for before/after comparison.
fn old_rows(c: &mut Client) -> Vec<String> {
    let sql = "
        SELECT 's ' || json_build_array(id, enabled, name, host, port, esme_system_id, esme_password,
            esme_source_addr, esme_bind_transceiver, esme_registered_delivery,
            esme_max_submission_attempts, smpp_session_init_timer, smpp_enquire_link_timer,
            smpp_inactivity_timer, smpp_response_timer, smpp_pdu_read_timer)::text FROM smpp_servers
        UNION ALL
        SELECT 't ' || json_build_array(id, insert_timestamp, smpp_destination_addr, smpp_priority_flag,
            smpp_registered_delivery, smpp_short_message, smpp_message_id, smpp_message_state,
            message_state_timestamp, submission_timestamp, submission_attempts, submission_done,
            submission_failed, submission_info)::text FROM smpp_tx_queue
        UNION ALL
        SELECT 'r ' || json_build_array(id, insert_timestamp, pdu_raw, pdu_parsed, smpp_source_addr,
            smpp_short_message)::text FROM smpp_rx_queue
        ORDER BY 1";
    c.query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A database of an earlier esmed 0.2 development build (before client certificates and
/// smpp_rx_parts_done) gets the fresh schema from sql/upgrade-0.2-dev.sql, and a second run
/// changes nothing.
#[test]
fn upgrade_from_a_0_2_development_schema_gives_the_fresh_schema() {
    let cluster = fresh_cluster();
    cluster.create_database("dev").unwrap();
    let fresh_sql = esmed_testkit::pg::read_sql(&repo_file("sql/db.sql")).unwrap();
    let dev_sql = fresh_sql.replace(
        "    smpp_tls_cert_file varchar,\n    smpp_tls_key_file varchar,\n",
        "",
    );
    assert_ne!(dev_sql, fresh_sql, "the columns as db.sql has them");
    let (mut admin, _) = clients(&cluster, "dev");
    admin.batch_execute(&dev_sql).unwrap();
    admin
        .batch_execute("DROP TABLE smpp_rx_parts_done")
        .unwrap();
    let (_, mut esmed) = clients(&cluster, "dev");
    assert_eq!(
        esmed::db::schema::missing_columns(&mut esmed).unwrap(),
        [
            "smpp_servers.smpp_tls_key_file",
            "smpp_rx_parts_done.text_bytes"
        ]
    );
    let (mut fresh_admin, _) = clients(&cluster, "esmed");
    let fresh = schema_fingerprint(&mut fresh_admin);
    for _ in 0..2 {
        cluster
            .load_schema("dev", &repo_file("sql/upgrade-0.2-dev.sql"))
            .unwrap();
        assert_eq!(schema_fingerprint(&mut admin), fresh);
    }
    assert!(esmed::db::schema::missing_columns(&mut esmed)
        .unwrap()
        .is_empty());
    privileges_are_least(&mut admin, &mut esmed);
}

#[test]
fn upgrade_from_0_1_keeps_every_row_and_gives_the_fresh_schema() {
    let cluster = fresh_cluster();
    cluster.create_database("old").unwrap();
    cluster
        .load_schema("old", &repo_file("tests/fixtures/db-0.1.sql"))
        .unwrap();
    let (mut admin, _) = clients(&cluster, "old");
    admin.batch_execute(OLD_ROWS).unwrap();
    let before = old_rows(&mut admin);
    assert_eq!(before.len(), 7);
    let old_schema = schema_fingerprint(&mut admin);

    // Ids of every shape, sent lately by the old daemon, to compare the upgrade's keys with
    // esmed's own.
    let shapes = ["000A1b", "X-1", "000", "Abc-0", "12345"];
    for id in shapes {
        admin
            .execute(
                "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message,
                     smpp_message_id, submission_done, submission_timestamp)
                 VALUES ('470', 'shape', $1, true, now())",
                &[&id],
            )
            .unwrap();
    }
    let before = old_rows(&mut admin);

    let started = Instant::now();
    cluster
        .load_schema("old", &repo_file("sql/upgrade-0.1.sql"))
        .unwrap();
    eprintln!("upgrade took {:?}", started.elapsed());
    assert_eq!(old_rows(&mut admin), before);
    for id in shapes {
        let key: Option<String> = admin
            .query_one(
                "SELECT smpp_message_id_key FROM smpp_tx_queue WHERE smpp_message_id = $1",
                &[&id],
            )
            .unwrap()
            .get(0);
        assert_eq!(
            key.as_deref(),
            Some(esmed::smpp::receipt::stored_key(id).as_str()),
            "{id}"
        );
    }
    admin
        .batch_execute("DELETE FROM smpp_tx_queue WHERE smpp_destination_addr = '470'")
        .unwrap();

    let (mut fresh_admin, _) = clients(&cluster, "esmed");
    let (upgraded, fresh) = (
        schema_fingerprint(&mut admin),
        schema_fingerprint(&mut fresh_admin),
    );
    assert!(
        fresh.len() > 80,
        "the fingerprint covers the schema: {fresh:#?}"
    );
    assert_ne!(old_schema, fresh);
    assert_eq!(upgraded, fresh);

    // A receipt for what the old daemon sent finds its row.
    let (_, mut esmed) = clients(&cluster, "old");
    let receipt = esmed::db::receipts::ReceiptKeys::new(
        7,
        "ID-1",
        true,
        esmed::smpp::receipt::IdMatch::Exact,
    );
    let matched =
        esmed::db::receipts::match_receipts(&mut esmed, &[receipt], RECEIPT_WINDOW).unwrap();
    assert_eq!(matched.len(), 1);
    assert!(matched[0].single && matched[0].part_no == 1);

    // The upgraded database behaves like a fresh one.
    let server = db::load_enabled_server(&mut esmed).unwrap().unwrap();
    assert_eq!(
        (server.host.as_str(), server.port, server.smpp_window),
        ("smsc", 2776, 10)
    );
    let pending = db::claim(&mut esmed, 10, LEASE, "a").unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|t| t.destination.as_str())
            .collect::<Vec<_>>(),
        ["463", "464"]
    );
    db::release_untracked(&mut esmed, "a", &[]).unwrap();
    admin
        .batch_execute("UPDATE smpp_tx_queue SET submission_done = true")
        .unwrap();
    queue_round_trip(&mut admin, &mut esmed);
    admin.batch_execute("DELETE FROM smpp_rx_queue").unwrap();
    rx_round_trip(&mut admin, &mut esmed);
    privileges_are_least(&mut admin, &mut esmed);
    db::listen(&mut esmed).unwrap();
    admin
        .batch_execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
             SELECT n::text, repeat('long ', 100) FROM generate_series(1, 1000) n",
        )
        .unwrap();
    let changes = db::wait_for_changes(&mut esmed, Duration::from_secs(2)).unwrap();
    assert_eq!(changes.notifications, 1);
}

/// A standby reached after a failover answers every write with read_only_sql_transaction:
/// that is no reason to give up on the rows (they would be sent again), but to keep them and
/// try again on a new connection.
#[test]
fn a_read_only_server_is_transient_not_bad_data() {
    let cluster = fresh_cluster();
    let mut esmed = cluster.esmed_client("esmed", "pw").unwrap();
    esmed
        .batch_execute("SET default_transaction_read_only = on")
        .unwrap();
    let error = db::claim(&mut esmed, 1, LEASE, "a").unwrap_err();
    assert!(error.to_string().contains("25006"), "{error}");
    assert!(!error.is_connection_lost(), "{error}");
    assert!(error.is_transient(), "{error}");
    // Bad data stays bad data.
    esmed
        .batch_execute("SET default_transaction_read_only = off")
        .unwrap();
    let error = esmed
        .batch_execute("SELECT 1/0")
        .map_err(|e| db::DbError::Postgres {
            what: "divide",
            source: e,
        })
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
}

#[test]
fn cluster_survives_a_restart_and_cleans_up() {
    let mut cluster = fresh_cluster();
    let root = cluster.socket_dir().to_path_buf();
    let port = cluster.port();
    assert_ne!(port, 5432);
    let mut esmed = cluster.esmed_client("esmed", "pw").unwrap();
    cluster.stop_fast().unwrap();
    let error = db::claim(&mut esmed, 1, LEASE, "a").unwrap_err();
    assert!(error.is_connection_lost(), "{error}");
    cluster.start_again().unwrap();
    assert_eq!(cluster.port(), port);
    let mut esmed = cluster.esmed_client("esmed", "pw").unwrap();
    assert!(db::claim(&mut esmed, 1, LEASE, "a").unwrap().is_empty());
    drop(esmed);
    drop(cluster);
    assert!(!root.exists());
}

#[test]
fn durable_cluster_keeps_fsync_and_fast_one_does_not() {
    let options = esmed_testkit::PgClusterOptions {
        durable: true,
        ..Default::default()
    };
    let durable = PgCluster::start_with(options).unwrap();
    let fast = PgCluster::start().unwrap();
    let fsync = |cluster: &PgCluster| -> String {
        let mut c = cluster.superuser_client("postgres").unwrap();
        c.query_one("SHOW fsync", &[]).unwrap().get(0)
    };
    assert_eq!(
        (fsync(&durable), fsync(&fast)),
        ("on".to_string(), "off".to_string())
    );
    assert!(durable.socket_dir().starts_with(std::env::temp_dir()));
    assert_ne!(durable.port(), fast.port());
}

/// A known data set: 2 pending (one high priority), 1 in flight, 1 waiting to retry, 3 done
/// (one inserted 3 hours ago, one 3 days ago), 2 failed, and receipts in two states.
const VIEW_ROWS: &str = "
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, insert_timestamp)
        VALUES ('1', 'pending old', now() - interval '90 seconds'), ('2', 'pending', now());
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, claimed_by, claimed_until)
        VALUES ('3', 'in flight', 'a', now() + interval '1 minute');
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, next_attempt_at)
        VALUES ('4', 'retry', now() + interval '1 minute');
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, submission_done,
            insert_timestamp)
        VALUES ('5', 'done', true, now()), ('6', 'done', true, now() - interval '3 hours'),
               ('7', 'done long ago', true, now() - interval '3 days');
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, submission_failed)
        VALUES ('8', 'failed', true), ('9', 'failed', true);
    INSERT INTO smpp_rx_queue (is_receipt, message_state, tx_id) VALUES
        (true, 'DELIVERED', 5), (true, 'DELIVERED', NULL), (true, 'UNDELIVERABLE', 6),
        (false, NULL, NULL);";

fn rows_as_text(c: &mut Client, sql: &str) -> Vec<String> {
    let sql = format!("SELECT row(v.*)::text FROM ({sql}) v");
    c.query(&sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn operator_views_count_a_known_data_set() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    admin.batch_execute(VIEW_ROWS).unwrap();
    assert_eq!(
        rows_as_text(&mut esmed, "SELECT * FROM esmed_queue_depth"),
        [
            "(pending,2)",
            "(in_flight,1)",
            "(retry_waiting,1)",
            "(done,3)",
            "(failed,2)"
        ]
    );
    // Summed, since the rows of "now" may straddle an hour boundary.
    assert_eq!(
        rows_as_text(
            &mut esmed,
            "SELECT sum(queued), sum(done), sum(failed), sum(unfinished),
                    bool_and(hour = date_trunc('hour', hour)), min(hour) < now() - interval '2 hours'
             FROM esmed_hourly"
        ),
        ["(8,2,2,4,t,t)"],
        "the row from 3 days ago is outside the 48 hours"
    );
    assert_eq!(
        rows_as_text(
            &mut esmed,
            "SELECT * FROM esmed_receipts_by_state ORDER BY 1"
        ),
        ["(DELIVERED,2,1)", "(UNDELIVERABLE,1,1)"]
    );
    let oldest = esmed
        .query_one(
            "SELECT age_seconds, unfinished FROM esmed_oldest_pending",
            &[],
        )
        .unwrap();
    let age: f64 = oldest.get(0);
    assert!((89.0..120.0).contains(&age), "{age}");
    assert_eq!(oldest.get::<_, i64>(1), 4);
    admin
        .batch_execute("UPDATE smpp_tx_queue SET submission_done = true")
        .unwrap();
    let empty = esmed
        .query_one(
            "SELECT age_seconds, unfinished FROM esmed_oldest_pending",
            &[],
        )
        .unwrap();
    assert_eq!((empty.get::<_, f64>(0), empty.get::<_, i64>(1)), (0.0, 0));
}

/// With many finished rows, the pending side of the views reads only the partial index, and
/// asking for one state never runs the other states' table scans.
#[test]
fn pending_counts_use_the_partial_index() {
    let cluster = fresh_cluster();
    let (mut admin, _) = clients(&cluster, "esmed");
    admin
        .batch_execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, submission_done)
             SELECT n::text, 'x', n % 1000 <> 0 FROM generate_series(1, 20000) n;
             ANALYZE smpp_tx_queue;",
        )
        .unwrap();
    let plan = |c: &mut Client, sql: &str| -> String {
        c.query(&format!("EXPLAIN (ANALYZE, COSTS OFF) {sql}"), &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for sql in [
        "SELECT * FROM esmed_queue_depth WHERE state = 'pending'",
        "SELECT * FROM esmed_oldest_pending",
    ] {
        let plan = plan(&mut admin, sql);
        assert!(plan.contains("smpp_tx_queue_pending"), "{sql}:\n{plan}");
        assert!(
            plan.lines()
                .filter(|line| line.contains("Seq Scan"))
                .all(|line| line.contains("never executed")),
            "{sql}:\n{plan}"
        );
    }
}

#[test]
fn heartbeat_row_is_written_read_and_removed_by_the_esmed_role() {
    use esmed::observe::heartbeat::{delete_status, write_status, StatusRow};
    use esmed::observe::status_table::StatusColumns;
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    let mut row = StatusRow {
        columns: StatusColumns {
            instance: "a".into(),
            host: "h".into(),
            pid: 7,
            server_id: Some(1),
            server_name: Some("main".into()),
            session_state: "bound transceiver".into(),
            window_in_use: 3,
            window_size: Some(10),
            out_per_second: 2.5,
            in_per_second: 0.5,
            submitted_total: 10,
            done_total: 9,
            failed_total: 1,
            received_total: 2,
            last_error: None,
            tls_unverified: true,
        },
        last_error_at: None,
        heartbeat_seconds: 5.0,
    };
    write_status(&mut esmed, &row, true).unwrap();
    let report = esmed::observe::report::gather(&mut esmed).unwrap();
    assert_eq!(report.instances.len(), 1);
    let shown = &report.instances[0];
    assert!(shown.fresh && report.healthy());
    // Every column reads back as written.
    assert_eq!(shown.columns, row.columns);
    // A later beat keeps started_at; an error carries its time.
    admin
        .batch_execute("UPDATE esmed_status SET started_at = '2020-01-01Z'")
        .unwrap();
    row.columns.last_error = Some("lost".into());
    row.last_error_at = Some(std::time::SystemTime::now());
    write_status(&mut esmed, &row, false).unwrap();
    let again = &esmed::observe::report::gather(&mut esmed)
        .unwrap()
        .instances[0];
    assert!(
        again.started_at.starts_with("2020-01-01"),
        "{}",
        again.started_at
    );
    assert_eq!(again.columns.last_error.as_deref(), Some("lost"));
    assert!(again.last_error_at.is_some());
    // Three heartbeats without an update: stale.
    admin
        .batch_execute("UPDATE esmed_status SET updated_at = now() - interval '16 seconds'")
        .unwrap();
    let stale = esmed::observe::report::gather(&mut esmed).unwrap();
    assert!(!stale.instances[0].fresh && !stale.healthy());
    delete_status(&mut esmed, "a").unwrap();
    assert!(esmed::observe::report::gather(&mut esmed)
        .unwrap()
        .instances
        .is_empty());
}

/// Regression: when the table was analyzed while nothing was claimed, the planner thought
/// `claimed_by = $instance` matched one row and wrote results with a seq scan of the whole
/// table, nested-looped against the batch (seconds per batch on a big queue). Writing results
/// must reach the rows through the primary key, whatever the statistics say.
#[test]
fn writing_results_never_scans_the_whole_table() {
    let cluster = fresh_cluster();
    let (mut admin, _) = clients(&cluster, "esmed");
    admin
        .batch_execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, submission_done) \
             SELECT '4477', 'x', n > 2000 FROM generate_series(1, 50000) n; \
             ANALYZE smpp_tx_queue;",
        )
        .unwrap();
    let claimed = db::claim(&mut admin, 1000, LEASE, "planner").unwrap();
    assert_eq!(claimed.len(), 1000);
    let seq_scans = |c: &mut Client| -> i64 {
        c.batch_execute("SELECT pg_stat_force_next_flush(); SELECT pg_stat_clear_snapshot();")
            .unwrap();
        c.query_one(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'smpp_tx_queue'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let before = seq_scans(&mut admin);
    let results: Vec<TxResult> = claimed
        .iter()
        .map(|row| TxResult {
            insert_timestamp: row.insert_timestamp,
            ..result(
                row.id,
                TxOutcome::Done {
                    parts: vec![part(1, 1, &format!("m{}", row.id))],
                },
            )
        })
        .collect();
    let summary = db::write_results(&mut admin, &results, "planner").unwrap();
    assert_eq!(summary.written, 1000);
    assert_eq!(
        seq_scans(&mut admin),
        before,
        "a result update scanned the whole table"
    );
}

/// claim_after continues inside one priority level after the given id, and nowhere else.
#[test]
fn claim_after_continues_within_the_level() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    let ids = insert_messages(
        &mut admin,
        "('1', 'LEVEL_1', 'a'), ('2', 'LEVEL_1', 'b'), ('3', 'LEVEL_1', 'c'), ('4', 'LEVEL_1', 'd'),
         ('5', 'LEVEL_2', 'higher'), ('6', 'LEVEL_0', 'lower')",
    );
    let first = db::claim_after(&mut esmed, 2, LEASE, "a", (1, ids[0])).unwrap();
    assert_eq!(
        first.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ids[1], ids[2]]
    );
    let rest = db::claim_after(&mut esmed, 10, LEASE, "a", (1, ids[2])).unwrap();
    assert_eq!(rest.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[3]]);
    assert!(db::claim_after(&mut esmed, 10, LEASE, "a", (1, ids[3]))
        .unwrap()
        .is_empty());
    // What the cursor passed by is found by a claim from the head, highest priority first.
    let head = db::claim(&mut esmed, 10, LEASE, "a").unwrap();
    assert_eq!(
        head.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ids[4], ids[0], ids[5]]
    );
}

/// Regression: on a queue not analyzed since a big INSERT, the planner collected and sorted
/// every pending row for each claim (a bitmap scan), more than doubling PostgreSQL's CPU per
/// message. A claiming connection set up with prepare_claimer reads about `limit` rows.
#[test]
fn a_claim_reads_about_as_many_rows_as_it_claims() {
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    admin
        .batch_execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
             SELECT '4477', 'x' FROM generate_series(1, 50000) n",
        )
        .unwrap();
    db::prepare_claimer(&mut esmed).unwrap();
    let before = rows_read(&mut admin, &mut esmed, &["smpp_tx_queue"]);
    let claimed = db::claim(&mut esmed, 100, LEASE, "a").unwrap();
    let after_id = claimed.last().map(|t| (t.priority, t.id)).unwrap();
    let more = db::claim_after(&mut esmed, 100, LEASE, "a", after_id).unwrap();
    assert_eq!((claimed.len(), more.len()), (100, 100));
    let read = rows_read(&mut admin, &mut esmed, &["smpp_tx_queue"]) - before;
    assert!(read < 2_000, "two claims of 100 read {read} rows");
}

/// Regression: right after a big INSERT (statistics stale) the receipt match was planned as a
/// hash join over every part, 10 ms per batch at 100,000 parts. Matching a batch of receipts
/// looks each key up in the index, whatever the statistics say.
#[test]
fn matching_receipts_reads_only_the_parts_it_finds() {
    use esmed::db::receipts::{match_receipts, ReceiptKeys};
    use esmed::smpp::receipt::IdMatch;
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    admin
        .batch_execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, submission_done) \
             SELECT '4477', 'x', true FROM generate_series(1, 50000); \
             INSERT INTO smpp_tx_parts (tx_id, part_no, part_count, message_id, message_id_key) \
             SELECT id, 1, 1, to_hex(id), to_hex(id) FROM smpp_tx_queue;",
        )
        .unwrap();
    let before = rows_read(&mut admin, &mut esmed, &["smpp_tx_parts"]);
    let receipts: Vec<ReceiptKeys> = (1..=50)
        .map(|i| ReceiptKeys::new(i, &format!("{:x}", i * 997), false, IdMatch::Exact))
        .collect();
    let matches = match_receipts(&mut esmed, &receipts, RECEIPT_WINDOW).unwrap();
    assert_eq!(matches.len(), 50);
    assert!(matches.iter().all(|m| m.tx_id == m.token * 997));
    let read = rows_read(&mut admin, &mut esmed, &["smpp_tx_parts"]) - before;
    assert!(read < 1_000, "matching 50 receipts read {read} parts");
}

/// A receipt's best-ranked key wins over its other keys; the other keys are tried when the
/// best found nothing (they are looked up in a second pass only then).
#[test]
fn a_receipts_best_key_wins_and_its_other_keys_stand_in() {
    use esmed::db::receipts::{match_receipts, ReceiptKeys};
    use esmed::smpp::receipt::IdMatch;
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    // 0x1e240 = 123456 and 0x1e241 = 123457: in auto mode a receipt id "1e240" has the keys
    // "1e240" (best) and "123456".
    let ids: Vec<i64> = admin
        .query(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, \
                 submission_done, submission_timestamp, smpp_message_id_key) \
             SELECT '4477', 'x', true, now(), k FROM unnest(ARRAY['1e240', '123456', '123457']) k \
             RETURNING id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let receipts: Vec<ReceiptKeys> = ["1e240", "1E241", "1e242"]
        .iter()
        .zip(1..)
        .map(|(id, token)| ReceiptKeys::new(token, id, false, IdMatch::Auto))
        .collect();
    assert!(receipts.iter().all(|r| r.keys.len() == 2), "{receipts:?}");
    let mut matches: Vec<(i64, i64)> = match_receipts(&mut esmed, &receipts, RECEIPT_WINDOW)
        .unwrap()
        .iter()
        .map(|m| (m.token, m.tx_id))
        .collect();
    matches.sort();
    assert_eq!(matches, [(1, ids[0]), (2, ids[2])]);
}

/// Regression: plans PostgreSQL cached for the prepared statements while the tables were
/// nearly empty kept scanning them whole once they were big (receipt state updates went from
/// 0.8 to 7.6 ms per batch in the benchmark). Run as the DB writer runs them (prepared, inside
/// a transaction planned as Planning::Lookups), a batch of receipts reads only the rows it touches,
/// even with plans made on empty tables.
#[test]
fn plans_cached_on_empty_tables_still_find_rows_through_indexes() {
    use esmed::db::receipts::{apply_states, match_receipts, PartState, ReceiptKeys};
    use esmed::db::sql::{Planning, Prepared, Statements};
    use esmed::smpp::receipt::{IdMatch, MessageState};
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    // The worst case: the plan made on the first execution is used from then on.
    esmed
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .unwrap();
    let mut statements = Statements::default();
    let receipt_batch = |esmed: &mut Client, statements: &mut Statements, first: i64| {
        let mut tx = esmed.transaction().unwrap();
        tx.batch_execute(&Planning::Lookups.for_transaction())
            .unwrap();
        let mut sql = Prepared::new(&mut tx, statements);
        let receipts: Vec<ReceiptKeys> = (first..first + 50)
            .map(|id| ReceiptKeys::new(id, &format!("{id:x}"), false, IdMatch::Exact))
            .collect();
        let matches = match_receipts(&mut sql, &receipts, RECEIPT_WINDOW).unwrap();
        let states: Vec<PartState> = matches
            .iter()
            .map(|m| PartState {
                tx_id: m.tx_id,
                part_no: m.part_no,
                single: m.single,
                insert_timestamp: m.insert_timestamp,
                state: MessageState::Delivered,
            })
            .collect();
        apply_states(&mut sql, &states).unwrap();
        tx.commit().unwrap();
        matches.len()
    };
    // Odd ids: sent in one part (key on the row); even ids: two parts (keys in smpp_tx_parts).
    let add_sent_rows = |admin: &mut Client, n: i32| {
        admin
            .batch_execute(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS added (id int); TRUNCATE added; \
                 WITH t AS (INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, \
                     submission_done, submission_timestamp) \
                     SELECT '4477', 'x', true, now() FROM generate_series(1, {n}) RETURNING id) \
                 INSERT INTO added SELECT id FROM t; \
                 UPDATE smpp_tx_queue SET smpp_message_id_key = to_hex(id) \
                 WHERE id IN (SELECT id FROM added WHERE id % 2 = 1); \
                 INSERT INTO smpp_tx_parts (tx_id, part_no, part_count, message_id, message_id_key) \
                 SELECT id, part, 2, to_hex(id) || '/' || part, \
                        CASE part WHEN 1 THEN to_hex(id) ELSE to_hex(id) || 'p2' END \
                 FROM added, generate_series(1, 2) part WHERE id % 2 = 0;"
            ))
            .unwrap();
    };
    add_sent_rows(&mut admin, 2);
    assert_eq!(receipt_batch(&mut esmed, &mut statements, 1), 2);
    add_sent_rows(&mut admin, 50_000);
    let before = rows_read(&mut admin, &mut esmed, &["smpp_tx_parts", "smpp_tx_queue"]);
    assert_eq!(receipt_batch(&mut esmed, &mut statements, 20_000), 50);
    let read = rows_read(&mut admin, &mut esmed, &["smpp_tx_parts", "smpp_tx_queue"]) - before;
    assert!(
        read < 2_000,
        "a batch of 50 receipts read {read} rows with plans cached on empty tables"
    );
}

/// The poller's claims, prepared and with plans cached while the queue held one row, read
/// about as many rows as they claim once the queue is big.
#[test]
fn claims_with_plans_cached_on_an_empty_queue_stay_cheap() {
    use esmed::db::sql::{Prepared, Statements};
    let cluster = fresh_cluster();
    let (mut admin, mut esmed) = clients(&cluster, "esmed");
    db::prepare_claimer(&mut esmed).unwrap();
    esmed
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .unwrap();
    let mut statements = Statements::default();
    let add_pending = |admin: &mut Client, n: i32| {
        admin
            .execute(
                "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
                 SELECT '4477', 'x' FROM generate_series(1, $1)",
                &[&n],
            )
            .unwrap();
    };
    add_pending(&mut admin, 1);
    let first = db::claim(
        &mut Prepared::new(&mut esmed, &mut statements),
        100,
        LEASE,
        "a",
    );
    let first = first.unwrap();
    let after = (first[0].priority, first[0].id);
    assert!(db::claim_after(
        &mut Prepared::new(&mut esmed, &mut statements),
        100,
        LEASE,
        "a",
        after
    )
    .unwrap()
    .is_empty());
    add_pending(&mut admin, 50_000);
    let before = rows_read(&mut admin, &mut esmed, &["smpp_tx_queue"]);
    let mut sql = Prepared::new(&mut esmed, &mut statements);
    let claimed = db::claim(&mut sql, 100, LEASE, "a").unwrap();
    let after = claimed.last().map(|t| (t.priority, t.id)).unwrap();
    let more = db::claim_after(&mut sql, 100, LEASE, "a", after).unwrap();
    assert_eq!((claimed.len(), more.len()), (100, 100));
    let read = rows_read(&mut admin, &mut esmed, &["smpp_tx_queue"]) - before;
    assert!(
        read < 2_000,
        "two cached-plan claims of 100 read {read} rows"
    );
}

/// Rows read so far from `tables` (index fetches plus sequential reads) by the statistics
/// PostgreSQL has once `worker`, the connection that did the reading, flushed its counts.
fn rows_read(admin: &mut Client, worker: &mut Client, tables: &[&str]) -> i64 {
    worker
        .batch_execute("SELECT pg_stat_force_next_flush()")
        .unwrap();
    admin
        .batch_execute("SELECT pg_stat_force_next_flush(); SELECT pg_stat_clear_snapshot();")
        .unwrap();
    admin
        .query_one(
            "SELECT coalesce(sum(coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0)), 0)::int8 \
             FROM pg_stat_user_tables WHERE relname = ANY($1)",
            &[&tables],
        )
        .unwrap()
        .get(0)
}

/// The way the README says to load the schema: psql runs db.sql, which includes
/// esmed-objects.sql with `\ir`; the result is the schema the tests load.
#[test]
fn psql_loads_the_schema_files_as_the_readme_says() {
    let cluster = fresh_cluster();
    cluster.create_database("viapsql").unwrap();
    let psql = ["/usr/bin/psql", "/usr/local/bin/psql"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("psql (package postgresql-client) is installed with the server");
    let status = std::process::Command::new(psql)
        .args([
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            cluster.host(),
            "-U",
            "postgres",
        ])
        .args(["-p", &cluster.port().to_string(), "-d", "viapsql", "-f"])
        .arg(repo_file("sql/db.sql"))
        .env("PGCONNECT_TIMEOUT", "10")
        .status()
        .unwrap();
    assert!(status.success(), "psql -f sql/db.sql: {status}");
    let (mut by_psql, _) = clients(&cluster, "viapsql");
    let (mut by_tests, _) = clients(&cluster, "esmed");
    assert_eq!(
        schema_fingerprint(&mut by_psql),
        schema_fingerprint(&mut by_tests)
    );
}

/// Rows of every table of an esmed 0.2 database, each as JSON without the columns added
/// since (so that the same rows compare equal before and after the upgrade).
fn rows_0_2(c: &mut Client) -> Vec<String> {
    let sql = "
        SELECT 'servers ' || to_jsonb(t)::text FROM smpp_servers t
        UNION ALL SELECT 'tx ' || (to_jsonb(t) - 'result_seq')::text FROM smpp_tx_queue t
        UNION ALL SELECT 'tx_parts ' || to_jsonb(t)::text FROM smpp_tx_parts t
        UNION ALL SELECT 'rx ' || (to_jsonb(t) - 'result_seq')::text FROM smpp_rx_queue t
        UNION ALL SELECT 'unmatched ' || to_jsonb(t)::text FROM smpp_rx_unmatched t
        UNION ALL SELECT 'rx_parts ' || to_jsonb(t)::text FROM smpp_rx_parts t
        UNION ALL SELECT 'rx_parts_done ' || to_jsonb(t)::text FROM smpp_rx_parts_done t
        UNION ALL SELECT 'status ' || (to_jsonb(t) - 'tls_unverified')::text FROM esmed_status t
        ORDER BY 1";
    c.query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const ROWS_0_2: &str = "
    INSERT INTO smpp_servers (enabled, host, port, esme_system_id, esme_password, smpp_window)
        VALUES (true, 'smsc', 2776, 'u', 'p', 20);
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, submission_done,
            smpp_message_id, smpp_message_id_key, submission_attempts)
        VALUES ('461', 'done', true, 'A1', 'a1', 1), ('462', 'long, done', true, 'B1', NULL, 1);
    INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, claimed_by,
            claimed_until)
        VALUES ('463', 'in flight', 'host:1', now() + interval '1 minute'), ('464', 'pending', NULL, NULL);
    INSERT INTO smpp_tx_parts (tx_id, part_no, part_count, message_id, message_id_key)
        SELECT id, n, 2, 'B' || n, 'b' || n FROM smpp_tx_queue, generate_series(1, 2) n
        WHERE smpp_destination_addr = '462';
    INSERT INTO smpp_rx_queue (pdu_raw, pdu_parsed, smpp_source_addr, smpp_short_message,
            is_receipt, receipted_message_id, message_state, tx_id)
        SELECT '00', '{}', '461', 'id:A1 stat:DELIVRD', true, 'A1', 'DELIVERED', id
        FROM smpp_tx_queue WHERE smpp_destination_addr = '461';
    INSERT INTO smpp_rx_queue (pdu_raw, pdu_parsed, smpp_source_addr, smpp_short_message,
            is_receipt, receipted_message_id, message_state)
        VALUES ('01', '{}', '469', 'id:Z9 stat:DELIVRD', true, 'Z9', 'DELIVERED');
    INSERT INTO smpp_rx_unmatched (rx_id, match_key, match_rank, message_state)
        SELECT id, 'z9', 0, 'DELIVERED' FROM smpp_rx_queue WHERE pdu_raw = '01';
    INSERT INTO smpp_rx_parts (source_addr, destination_addr, ref_kind, reference, total, seq,
            pdu_raw, pdu_parsed, esm_class, data_coding, text_bytes)
        VALUES ('4477', 'ESMED', 'udh8', 7, 2, 1, '02', '{}', 64, 0, '\\x48');
    INSERT INTO smpp_rx_parts_done (source_addr, destination_addr, ref_kind, reference, total,
            seq, text_bytes)
        VALUES ('4477', 'ESMED', 'udh8', 6, 2, 1, '\\x49');
    INSERT INTO esmed_status (instance, host, pid, session_state, heartbeat_seconds)
        VALUES ('host:1', 'host', 1, 'idle', 5);";

/// A database made by esmed 0.2's db.sql (tests/fixtures/db-0.2.sql) is upgraded in place
/// by sql/upgrade-0.2.sql: every row kept, the fresh schema's fingerprint, 64-bit ids, rows
/// whose done/failed flags were NULL made pending (recent) or failed (older than a day), and
/// a second run changes nothing.
#[test]
fn upgrade_from_0_2_keeps_every_row_and_gives_the_fresh_schema() {
    let cluster = fresh_cluster();
    cluster.create_database("v02").unwrap();
    cluster
        .load_schema("v02", &repo_file("tests/fixtures/db-0.2.sql"))
        .unwrap();
    let (mut admin, _) = clients(&cluster, "v02");
    admin.batch_execute(ROWS_0_2).unwrap();
    let before = rows_0_2(&mut admin);
    assert_eq!(before.len(), 13, "{before:#?}");
    // The NULL flags 0.2 allowed: never claimed, never counted.
    admin
        .batch_execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message,
                 submission_done, submission_failed, insert_timestamp)
             VALUES ('470', 'null, recent', NULL, false, now() - interval '1 hour'),
                    ('471', 'null, old', false, NULL, now() - interval '3 days'),
                    ('472', 'null, done', true, NULL, now() - interval '3 days')",
        )
        .unwrap();

    for _ in 0..2 {
        cluster
            .load_schema("v02", &repo_file("sql/upgrade-0.2.sql"))
            .unwrap();
    }
    let nulls: Vec<(String, bool, bool, Option<String>)> = admin
        .query(
            "DELETE FROM smpp_tx_queue WHERE smpp_destination_addr IN ('470', '471', '472')
             RETURNING smpp_destination_addr, submission_done, submission_failed, submission_info",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let mut nulls = nulls;
    nulls.sort();
    assert_eq!(
        nulls[0],
        ("470".into(), false, false, None),
        "recent: pending"
    );
    assert_eq!((nulls[1].1, nulls[1].2), (false, true), "old: failed");
    assert!(
        nulls[1].3.as_deref().unwrap_or("").contains("was NULL"),
        "{nulls:?}"
    );
    assert_eq!(
        nulls[2],
        ("472".into(), true, false, None),
        "done stays done"
    );
    assert_eq!(rows_0_2(&mut admin), before);

    let (mut fresh_admin, _) = clients(&cluster, "esmed");
    assert_eq!(
        schema_fingerprint(&mut admin),
        schema_fingerprint(&mut fresh_admin)
    );

    // The upgraded database hands out ids past 2^31 and esmed works with them.
    let (_, mut esmed) = clients(&cluster, "v02");
    assert!(esmed::db::schema::missing_columns(&mut esmed)
        .unwrap()
        .is_empty());
    admin
        .batch_execute("SELECT setval('smpp_tx_queue_id_seq', 4000000000)")
        .unwrap();
    let ids = insert_messages(&mut admin, "('480', 'LEVEL_0', 'big')");
    assert_eq!(ids, [4_000_000_001]);
    admin
        .batch_execute("UPDATE smpp_tx_queue SET claimed_by = NULL, claimed_until = NULL")
        .unwrap();
    let claimed = db::claim(&mut esmed, 10, LEASE, "a").unwrap();
    let mut claimed_ids: Vec<i64> = claimed.iter().map(|t| t.id).collect();
    claimed_ids.sort_unstable();
    assert_eq!(claimed_ids.last(), Some(&4_000_000_001), "{claimed:?}");
    let summary = db::write_results(
        &mut esmed,
        &[result(
            ids[0],
            TxOutcome::Done {
                parts: vec![part(1, 1, "F00D")],
            },
        )],
        "a",
    )
    .unwrap();
    assert_eq!(summary.written, 1);
    privileges_are_least(&mut admin, &mut esmed);
}

/// An unprivileged role cannot plant a function where esmed's unqualified calls would find
/// it (PostgreSQL 14 and older let every role create objects in schema public), on a new
/// schema and on an upgraded one; the esmed role's search_path is pinned.
#[test]
fn an_unprivileged_role_cannot_plant_functions_where_esmed_looks() {
    let cluster = PgCluster::start().unwrap();
    let mut postgres = cluster.superuser_client("postgres").unwrap();
    // Every database made from template1 from now on has PostgreSQL 14's defaults.
    let mut template = cluster.superuser_client("template1").unwrap();
    template
        .batch_execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        .unwrap();
    drop(template);
    postgres
        .batch_execute("CREATE ROLE mallory LOGIN PASSWORD 'm'")
        .unwrap();
    for (db, schema, upgrade) in [
        ("fresh", "sql/db.sql", None),
        (
            "old",
            "tests/fixtures/db-0.2.sql",
            Some("sql/upgrade-0.2.sql"),
        ),
    ] {
        cluster.create_database(db).unwrap();
        cluster.load_schema(db, &repo_file(schema)).unwrap();
        if let Some(upgrade) = upgrade {
            let mut mallory = cluster.connect(db, "mallory", Some("m")).unwrap();
            mallory
                .batch_execute("CREATE TABLE before_upgrade (x int)")
                .expect("the 0.2 schema left schema public open, as PostgreSQL 14 does");
            cluster.load_schema(db, &repo_file(upgrade)).unwrap();
        }
        let mut mallory = cluster.connect(db, "mallory", Some("m")).unwrap();
        let error = mallory
            .batch_execute(
                "CREATE FUNCTION public.unnest(varchar[]) RETURNS SETOF varchar
                 LANGUAGE sql AS 'SELECT ''planted''::varchar'",
            )
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{db}: {error}"
        );
        let mut esmed = cluster.esmed_client(db, "pw").unwrap();
        let path: String = esmed.query_one("SHOW search_path", &[]).unwrap().get(0);
        assert_eq!(path, "pg_catalog, public", "{db}");
        let error = esmed
            .batch_execute("CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{db}"
        );
    }
}

/// A row whose done or failed flag is NULL would be neither pending nor finished: never
/// claimed, never counted. The columns refuse NULL.
#[test]
fn a_message_cannot_have_null_flags() {
    let cluster = fresh_cluster();
    let (mut admin, _) = clients(&cluster, "esmed");
    for column in ["submission_done", "submission_failed"] {
        let error = admin
            .batch_execute(&format!(
                "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, {column})
                 VALUES ('4477', 'x', NULL)"
            ))
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::NOT_NULL_VIOLATION),
            "{column}"
        );
    }
    // The older daemon's inserts, which name neither column, still work.
    let ids = insert_messages(&mut admin, "('4477', 'LEVEL_0', 'x')");
    let flags: (bool, bool) = admin
        .query_one(
            "SELECT submission_done, submission_failed FROM smpp_tx_queue WHERE id = $1",
            &[&ids[0]],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(flags, (false, false));
}
