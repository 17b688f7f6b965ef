//! End to end, TLS to PostgreSQL: a cluster serving TLS with a certificate from a CA made in
//! the test, letting esmed's role in over TLS only (the superuser, which plays the
//! application, comes in plain). esmed must get through with every sslmode that uses TLS,
//! be seen encrypted in pg_stat_ssl, and stop at start, saying why, when the certificate is
//! not to be trusted or TLS cannot be had.

mod support;

use std::time::Duration;

use esmed::config::{DatabaseConfig, DbHost, Secret, SslMode};
use esmed::db::{DbError, PgConnector};
use esmed_testkit::{PgCluster, PgClusterOptions, ServerTls};
use support::tls::TestPki;
use support::{smsc_config, wait_until, Env, DB, ESMED_PASSWORD};

const T: Duration = Duration::from_secs(20);

fn tls_only_env(name: &str, pki: &TestPki) -> Env {
    tls_env(name, pki, None)
}

/// With `clients`, esmed's role must also show a certificate from that CA.
fn tls_env(name: &str, pki: &TestPki, clients: Option<&TestPki>) -> Env {
    let cluster = PgCluster::start_with(PgClusterOptions {
        tls: Some(ServerTls {
            cert_pem: pki.chain_pem.clone(),
            key_pem: pki.key_pem.clone(),
            client_ca_pem: clients.map(|c| c.ca_pem.clone()),
        }),
        ..PgClusterOptions::default()
    })
    .expect("start PostgreSQL with TLS");
    Env::with_cluster(name, cluster, smsc_config())
}

/// `[database]` for the test's cluster, as esmed's role with its password; the rest defaults.
fn database_of(env: &Env) -> DatabaseConfig {
    DatabaseConfig {
        hosts: vec![DbHost::new(env.cluster.host(), env.cluster.port())],
        name: DB.to_string(),
        pass: Secret::new(ESMED_PASSWORD),
        ..DatabaseConfig::default()
    }
}

/// The [database] lines for verify-full against the CAs in `ca`.
fn verify_full(ca: &std::path::Path) -> String {
    format!("sslmode = verify-full\nsslrootcert = {}", ca.display())
}

/// esmed's connections that pg_stat_ssl shows encrypted.
fn encrypted_connections(env: &Env) -> i64 {
    env.db()
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.usename = 'esmed' AND s.ssl",
            &[],
        )
        .expect("read pg_stat_ssl")
        .get(0)
}

#[test]
fn esmed_works_over_tls_with_each_sslmode_that_asks_for_it() {
    let pki = TestPki::new("esmed PostgreSQL CA");
    let env = tls_only_env("pg-tls", &pki);
    let ca = pki.write_ca(&env.dir.0, "root.crt");
    env.add_server(&[]);
    let modes = [
        // allow: the plain connection is refused (hostssl), so it comes over TLS.
        ("allow", String::from("sslmode = allow")),
        ("prefer", String::from("sslmode = prefer")),
        ("require", String::from("sslmode = require")),
        (
            "verify-ca",
            format!("sslmode = verify-ca\nsslrootcert = {}", ca.display()),
        ),
        // The certificate names 127.0.0.1, the host esmed connects to.
        ("verify-full", verify_full(&ca)),
    ];
    for (n, (mode, lines)) in modes.iter().enumerate() {
        let row = env.insert(&format!("4477009004{n:02}"), &format!("sent with {mode}"));
        let mut esmed = env.esmed_with_tls(mode, lines, "");
        env.wait_all("submission_done", T, &esmed);
        // The poller, both DB writers, the supervisor and the heartbeat each hold one (some
        // connect only after the first row is done).
        wait_until(
            T,
            &format!("four encrypted connections ({mode})"),
            &esmed,
            || encrypted_connections(&env) >= 4,
        );
        assert!(esmed.terminate(T).success(), "{mode}");
        let sent = env.smsc.submits().len();
        assert!(sent > n, "row {row} reached the SMSC ({mode})");
    }
}

/// allow and prefer differ where the server takes both: allow stays plain, prefer encrypts.
/// The superuser may come in either way (pg_hba.conf's `host` line), so it shows the difference.
#[test]
fn allow_connects_plain_where_the_server_lets_it_and_prefer_uses_tls() {
    let pki = TestPki::new("esmed PostgreSQL CA");
    let env = tls_only_env("pg-tls-allow", &pki);
    let encrypted = |sslmode: SslMode| -> bool {
        let database = DatabaseConfig {
            user: esmed_testkit::pg::SUPERUSER.to_string(),
            pass: Secret::default(),
            sslmode,
            ..database_of(&env)
        };
        let mut client = PgConnector::new(&database).connect().expect("connect");
        client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .expect("read pg_stat_ssl")
            .get(0)
    };
    assert!(
        !encrypted(SslMode::Allow),
        "allow: plain when the server takes it"
    );
    assert!(
        encrypted(SslMode::Prefer),
        "prefer: TLS when the server offers it"
    );
    assert!(!encrypted(SslMode::Disable), "disable");
}

#[test]
fn an_untrusted_certificate_or_no_tls_stops_the_start_and_says_why() {
    let pki = TestPki::new("the database's CA");
    let env = tls_only_env("pg-tls-refused", &pki);
    let stranger = TestPki::new("some other CA").write_ca(&env.dir.0, "other.crt");
    let mut esmed = env.esmed_with_tls("wrong-ca", &verify_full(&stranger), "");
    assert_eq!(esmed.wait(T).code(), Some(1));
    let log = esmed.log();
    assert!(
        log.contains("cannot run: PostgreSQL refused the connection")
            && log.contains("invalid peer certificate: UnknownIssuer"),
        "{log}"
    );

    // Without TLS this server lets esmed's role nowhere: pg_hba.conf says so.
    let mut esmed = env.esmed_with_tls("plain", "sslmode = disable", "");
    assert_eq!(esmed.wait(T).code(), Some(1));
    let log = esmed.log();
    assert!(log.contains("no encryption"), "{log}");

    // A server without TLS when verify-full asks for it.
    let plain = Env::new("pg-no-tls");
    let ca = pki.write_ca(&plain.dir.0, "root.crt");
    let mut esmed = plain.esmed_with_tls("no-tls", &verify_full(&ca), "");
    assert_eq!(esmed.wait(T).code(), Some(1));
    let log = esmed.log();
    assert!(log.contains("server does not support TLS"), "{log}");
}

#[test]
fn a_server_asking_for_a_client_certificate_gets_ours_and_refuses_none() {
    let pki = TestPki::new("the database's CA");
    let clients = TestPki::new("the clients' CA");
    let env = tls_env("pg-tls-client", &pki, Some(&clients));
    let ca = pki.write_ca(&env.dir.0, "root.crt");
    let (cert, key) = clients.write_client(&env.dir.0, "esmed");
    env.add_server(&[]);
    let verify = verify_full(&ca);

    let mut esmed = env.esmed_with_tls("no-cert", &verify, "");
    assert_eq!(esmed.wait(T).code(), Some(1));
    let log = esmed.log();
    assert!(log.contains("requires a valid client certificate"), "{log}");

    env.insert("447700900500", "sent with a client certificate");
    let lines = format!(
        "{verify}\nsslcert = {}\nsslkey = {}",
        cert.display(),
        key.display()
    );
    let mut esmed = env.esmed_with_tls("cert", &lines, "");
    env.wait_all("submission_done", T, &esmed);
    // Some of esmed's connections are made only after the first row is done.
    wait_until(T, "four encrypted connections", &esmed, || {
        encrypted_connections(&env) >= 4
    });
    assert!(esmed.terminate(T).success());
}

/// The NOTIFY that wakes the poller for a new row comes over the TLS connection too: with the
/// fallback look once a minute, a row inserted while esmed idles is still sent at once.
#[test]
fn a_row_inserted_while_esmed_idles_is_sent_at_once_over_tls() {
    let pki = TestPki::new("esmed PostgreSQL CA");
    let env = tls_only_env("pg-tls-notify", &pki);
    let ca = pki.write_ca(&env.dir.0, "root.crt");
    env.add_server(&[]);
    let lines = verify_full(&ca);
    let mut esmed = env.esmed_with_tls("notify", &lines, "poll_interval = 60s");
    assert!(env.smsc.wait_for_bound(1, T), "esmed bound");
    env.insert("447700900600", "woken by NOTIFY over TLS");
    assert!(env.smsc.wait_for_submits(1, Duration::from_secs(10)));
    assert!(esmed.terminate(T).success());
}

/// The trust store is read again for each connection, as the SMPP side's is, so a renewed CA
/// or certificate file needs no restart: what is in the file now decides.
#[test]
fn each_connection_reads_the_trust_store_as_it_is_now() {
    let pki = TestPki::new("esmed PostgreSQL CA");
    let env = tls_only_env("pg-tls-reread", &pki);
    let ca = pki.write_ca(&env.dir.0, "root.crt");
    let database = DatabaseConfig {
        sslmode: SslMode::VerifyFull,
        sslrootcert: Some(ca.clone()),
        ..database_of(&env)
    };
    let connector = PgConnector::new(&database);
    assert!(connector.connect().is_ok(), "the database's CA");

    std::fs::write(&ca, TestPki::new("another CA").ca_pem).expect("replace the CA file");
    let error = connector.connect().err().expect("another CA only");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");

    std::fs::remove_file(&ca).expect("remove the CA file");
    let error = connector.connect().err().expect("no CA file");
    assert!(matches!(error, DbError::Tls(_)), "{error}");
    assert!(error.to_string().contains("root.crt"), "{error}");

    pki.write_ca(&env.dir.0, "root.crt");
    assert!(connector.connect().is_ok(), "the CA file back");
}
