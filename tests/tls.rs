//! End to end, SMPP over TLS: esmed with smpp_tls on against the test SMSC serving
//! TLS with a CA made in the test. Plain TCP is what every other e2e suite runs.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use esmed_smsc::{ReceiptConfig, ReceiptMode};
use support::tls::TestPki;
use support::{wait_until, Env};

const T: Duration = Duration::from_secs(20);

fn quoted(path: &std::path::Path) -> String {
    format!("'{}'", path.display())
}

#[test]
fn messages_and_receipts_go_through_a_tls_smsc_with_a_private_ca() {
    let pki = TestPki::new("esmed e2e CA");
    let smsc = esmed_smsc::SmscConfig {
        receipts: ReceiptMode::After(ReceiptConfig::after(Duration::from_millis(20))),
        ..pki.smsc_config()
    };
    let env = Env::with_smsc("tls-ok", smsc);
    let ca = pki.write_ca(&env.dir.0, "ca.pem");
    // host is 127.0.0.1 and smpp_tls_server_name is NULL: the IP address is verified.
    env.add_server(&[
        ("esme_bind_transceiver", "TRUE"),
        ("esme_registered_delivery", "TRUE"),
        ("smpp_tls", "TRUE"),
        ("smpp_tls_ca_file", &quoted(&ca)),
    ]);
    for n in 0..20 {
        env.insert(&format!("4477009002{n:02}"), &format!("over TLS {n}"));
    }
    // A long one: several PDUs coalesced into one TLS write.
    env.insert("447700900300", &"long text over TLS ".repeat(30));
    let mut esmed = env.esmed("tls-ok", "");
    env.wait_all(
        "submission_done AND smpp_message_state IS NOT DISTINCT FROM 'DELIVERED'",
        T,
        &esmed,
    );
    assert!(env.smsc.submits().len() >= 22, "every part arrived");
    let log = esmed.log();
    assert!(log.contains("over TLS (SMSC system_id"), "{log}");
    assert!(!log.contains("smpp_tls_verify is OFF"), "{log}");

    // Clean stop over TLS: unbind answered, then close_notify.
    assert!(esmed.terminate(T).success());
    assert_eq!(env.smsc.unbinds().len(), 1);
}

#[test]
fn a_wrong_or_missing_ca_refuses_the_smsc_and_sends_nothing() {
    let pki = TestPki::new("the SMSC's CA");
    let env = Env::with_smsc("tls-bad", pki.smsc_config());
    let other = TestPki::new("some other CA").write_ca(&env.dir.0, "other-ca.pem");
    let id = env.add_server(&[
        ("smpp_tls", "TRUE"),
        ("smpp_tls_ca_file", &quoted(&other)),
        ("smpp_tls_server_name", "'localhost'"),
    ]);
    let row = env.insert("447700900123", "must wait for a trusted SMSC");
    let esmed = env.esmed("tls-bad", "");
    wait_until(T, "the certificate error in the log", &esmed, || {
        esmed
            .log()
            .contains("TLS: invalid peer certificate: UnknownIssuer for localhost")
    });

    let missing = env.dir.0.join("missing-ca.pem");
    env.db()
        .execute(
            &format!(
                "UPDATE smpp_servers SET smpp_tls_ca_file = {} WHERE id = $1",
                quoted(&missing)
            ),
            &[&id],
        )
        .unwrap();
    wait_until(T, "the missing CA file in the log", &esmed, || {
        esmed.log().contains(&format!(
            "TLS: cannot read the CA file {}",
            missing.display()
        ))
    });
    assert!(
        env.smsc.binds().is_empty(),
        "no bind without a trusted TLS link"
    );
    assert_eq!(env.count("submission_done OR submission_failed"), 0);
    assert_eq!(env.count("submission_attempts > 0"), 0);

    // The right CA: the waiting row goes out.
    let ca = pki.write_ca(&env.dir.0, "ca.pem");
    env.db()
        .execute(
            &format!(
                "UPDATE smpp_servers SET smpp_tls_ca_file = {} WHERE id = $1",
                quoted(&ca)
            ),
            &[&id],
        )
        .unwrap();
    env.wait_all("submission_done", T, &esmed);
    assert_eq!(env.smsc.submits().len(), 1, "row {row}");
}

/// An SMSC that wants a client certificate: without one, or with one it does not trust, esmed
/// is refused, says why and sends nothing; with smpp_tls_cert_file and smpp_tls_key_file set
/// to a certificate it trusts, esmed binds and sends.
#[test]
fn an_smsc_asking_for_a_client_certificate_gets_ours() {
    let pki = TestPki::new("the SMSC's CA");
    let clients = TestPki::new("the ESMEs' CA");
    let env = Env::with_smsc("tls-mutual", pki.smsc_config_asking(&clients));
    let ca = pki.write_ca(&env.dir.0, "ca.pem");
    let id = env.add_server(&[("smpp_tls", "TRUE"), ("smpp_tls_ca_file", &quoted(&ca))]);
    let row = env.insert("447700900123", "only with a client certificate");
    let esmed = env.esmed("tls-mutual", "");
    wait_until(T, "the refusal in the log", &esmed, || {
        esmed.log().contains(
            "TLS: received fatal alert: CertificateRequired for 127.0.0.1 (the SMSC wants a \
             client certificate: set smpp_tls_cert_file and smpp_tls_key_file)",
        )
    });
    assert!(env.smsc.binds().is_empty(), "{}", esmed.log());
    assert_eq!(env.count("submission_attempts > 0"), 0);

    let use_identity = |(cert, key): (PathBuf, PathBuf)| {
        env.db()
            .execute(
                &format!(
                    "UPDATE smpp_servers SET smpp_tls_cert_file = {}, smpp_tls_key_file = {} \
                     WHERE id = $1",
                    quoted(&cert),
                    quoted(&key)
                ),
                &[&id],
            )
            .unwrap();
    };
    // A certificate from a CA the SMSC does not know, its key readable by anyone.
    let stranger = TestPki::new("a stranger's CA").write_client(&env.dir.0, "stranger");
    std::fs::set_permissions(&stranger.1, std::fs::Permissions::from_mode(0o644)).unwrap();
    use_identity(stranger);
    wait_until(T, "the rejected certificate in the log", &esmed, || {
        esmed.log().contains(
            "TLS: received fatal alert: UnknownCA for 127.0.0.1 (the SMSC did not accept our \
             client certificate, smpp_tls_cert_file)",
        )
    });
    assert!(env.smsc.binds().is_empty(), "{}", esmed.log());
    let exposed = |name: &str| {
        esmed.log().contains(&format!(
            "{name}-key.pem can be read by other users (mode 644)"
        ))
    };
    assert!(exposed("stranger"), "{}", esmed.log());

    use_identity(clients.write_client(&env.dir.0, "esme"));
    env.wait_all("submission_done", T, &esmed);
    assert!(!exposed("esme"), "{}", esmed.log());
    assert_eq!(env.smsc.submits().len(), 1, "row {row}");
    assert_eq!(env.smsc.binds().len(), 1);
}

/// `esmed status` for `config`: stdout, and whether it exited 0.
fn esmed_status(config: &std::path::Path, extra: &[&str]) -> (String, bool) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_esmed"))
        .arg("status")
        .arg("-c")
        .arg(config)
        .args(extra)
        .output()
        .expect("run esmed status");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.success(),
    )
}

/// Whether esmed_status says the bound session runs TLS without checking the certificate.
fn tls_unverified(env: &Env, instance: &str) -> Option<bool> {
    env.db()
        .query_opt(
            "SELECT tls_unverified FROM esmed_status
             WHERE instance = $1 AND session_state LIKE 'bound%'",
            &[&instance],
        )
        .unwrap()
        .map(|row| row.get(0))
}

/// smpp_tls_verify = false is not only a log line at start: esmed_status says it for as long
/// as the session is bound that way, and `esmed status` shows it, as text and as JSON.
#[test]
fn verification_off_connects_to_anyone_and_warns() {
    let pki = TestPki::new("unknown CA");
    let env = Env::with_smsc("tls-noverify", pki.smsc_config());
    env.add_server(&[
        ("smpp_tls", "TRUE"),
        ("smpp_tls_verify", "FALSE"),
        ("smpp_tls_server_name", "'smsc.example.net'"),
    ]);
    env.insert("447700900123", "insecure but sent");
    let esmed = env.esmed("tls-noverify", "heartbeat_interval = 1s\n");
    env.wait_all("submission_done", T, &esmed);
    assert!(
        esmed.log().contains("smpp_tls_verify is OFF"),
        "{}",
        esmed.log()
    );
    wait_until(T, "tls_unverified in esmed_status", &esmed, || {
        tls_unverified(&env, "tls-noverify") == Some(true)
    });
    let (text, bound) = esmed_status(&esmed.config, &[]);
    assert!(bound, "{text}");
    assert!(
        text.contains(
            "tls-noverify: TLS WITHOUT CERTIFICATE CHECK (smpp_tls_verify = false): anyone on \
             the path can pose as the SMSC"
        ),
        "{text}"
    );
    let (json, _) = esmed_status(&esmed.config, &["--json"]);
    let flag: bool = env
        .db()
        .query_one(
            "SELECT ($1::text::jsonb->'instances'->0->>'tls_unverified')::bool",
            &[&json],
        )
        .unwrap()
        .get(0);
    assert!(flag, "{json}");
}

/// A checked certificate is not flagged.
#[test]
fn verified_tls_is_not_flagged_in_the_status() {
    let pki = TestPki::new("esmed e2e CA");
    let env = Env::with_smsc("tls-verified", pki.smsc_config());
    let ca = pki.write_ca(&env.dir.0, "ca.pem");
    env.add_server(&[("smpp_tls", "TRUE"), ("smpp_tls_ca_file", &quoted(&ca))]);
    let esmed = env.esmed("tls-verified", "heartbeat_interval = 1s\n");
    wait_until(T, "a bound heartbeat row", &esmed, || {
        tls_unverified(&env, "tls-verified").is_some()
    });
    assert_eq!(tls_unverified(&env, "tls-verified"), Some(false));
    let (text, _) = esmed_status(&esmed.config, &[]);
    assert!(!text.contains("WITHOUT CERTIFICATE CHECK"), "{text}");
    let (json, _) = esmed_status(&esmed.config, &["--json"]);
    assert!(json.contains("\"tls_unverified\":false"), "{json}");
}

#[test]
fn a_plain_client_gets_nothing_from_a_tls_smsc() {
    // esmed without smpp_tls against a TLS-only SMSC: the bind bytes are no TLS handshake.
    let pki = TestPki::new("plain CA");
    let env = Env::with_smsc("tls-plain", pki.smsc_config());
    env.add_server(&[("smpp_session_init_timer", "2")]);
    env.insert("447700900123", "never sent");
    let esmed = env.esmed("tls-plain", "");
    wait_until(T, "a failed bind in the log", &esmed, || {
        esmed.log().contains("retrying in")
    });
    assert!(env.smsc.binds().is_empty());
    assert_eq!(env.count("submission_done"), 0);
}
