//! End to end, sending side: a real PostgreSQL, the test SMSC over TCP and the esmed
//! binary. Every test asserts the row-level outcome against what the SMSC received.

mod support;

use std::time::Duration;

use esmed::smpp::reference::{
    SUBMIT_SM_HELLO, UCS2_SAR_PART_2, UCS2_TEXT, UCS2_UDH_PART_1, UCS2_UDH_PART_2,
};
use esmed::smpp::{Body, CommandStatus};
use esmed_smsc::{Faults, Smsc};
use support::{body_of_hex_dump, wait_until, Env};

const T: Duration = Duration::from_secs(20);

/// The body bytes (after the header) of every submit_sm the SMSC got, by destination.
fn submit_bodies(env: &Env) -> Vec<(String, Vec<u8>)> {
    env.smsc
        .submits()
        .into_iter()
        .map(|r| {
            let destination = match &r.pdu.body {
                Body::SubmitSm(sm) => sm.destination.addr.to_string(),
                _ => String::new(),
            };
            (destination, r.raw[16..].to_vec())
        })
        .collect()
}

#[test]
fn gsm_ucs2_and_long_messages_reach_the_smsc_byte_for_byte() {
    let env = Env::new("bytes");
    env.add_server(&[
        ("esme_source_addr", "'ESMED'"),
        ("esme_bind_transceiver", "TRUE"),
        ("esme_registered_delivery", "TRUE"),
    ]);
    let mut db = env.db();
    db.execute(
        "INSERT INTO smpp_tx_queue (id, smpp_destination_addr, smpp_short_message) VALUES \
         (42, '447700900123', $1)",
        &[&UCS2_TEXT],
    )
    .unwrap();
    let hello = env.insert("447700900123", "Hello");
    let emoji = env.insert("447700900124", "Price: 10€ 😀");
    let esmed = env.esmed("bytes", "");
    env.wait_all("submission_done", T, &esmed);

    let bodies = submit_bodies(&env);
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    let russian: Vec<&Vec<u8>> = bodies
        .iter()
        .filter(|(_, b)| b.get(31) == Some(&0x08) && b.get(24) == Some(&0x40))
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        russian,
        vec![
            &body_of_hex_dump(UCS2_UDH_PART_1),
            &body_of_hex_dump(UCS2_UDH_PART_2)
        ]
    );
    assert!(
        bodies
            .iter()
            .any(|(_, b)| *b == body_of_hex_dump(SUBMIT_SM_HELLO)),
        "not the golden submit_sm body"
    );
    let emoji_body = &bodies.iter().find(|(d, _)| d == "447700900124").unwrap().1;
    assert_eq!(emoji_body[31], 0x08, "an emoji forces UCS2 (data_coding 8)");

    // Results: done, the SMSC's message id (part 1's for the long one), one attempt, parts kept.
    for id in [42, hello, emoji] {
        let row = db
            .query_one(
                "SELECT submission_done, submission_failed, smpp_message_id, submission_attempts, \
                 submission_timestamp IS NOT NULL, claimed_by IS NULL FROM smpp_tx_queue WHERE id = $1",
                &[&id],
            )
            .unwrap();
        assert!(row.get::<_, bool>(0) && !row.get::<_, bool>(1), "row {id}");
        assert!(
            !row.get::<_, Option<String>>(2)
                .unwrap_or_default()
                .is_empty(),
            "row {id} id"
        );
        assert_eq!(row.get::<_, i32>(3), 1, "row {id} attempts");
        assert!(
            row.get::<_, bool>(4) && row.get::<_, bool>(5),
            "row {id} stamps/lease"
        );
    }
    let parts: Vec<(i16, String)> = db
        .query(
            "SELECT part_no, message_id FROM smpp_tx_parts WHERE tx_id = 42 ORDER BY part_no",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(parts.len(), 2);
    let first: String = db
        .query_one(
            "SELECT smpp_message_id FROM smpp_tx_queue WHERE id = 42",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(first, parts[0].1, "the row's message id is part 1's");
}

#[test]
fn a_transient_error_is_retried_and_then_succeeds() {
    let env = Env::new("transient");
    env.smsc.set_faults(Faults {
        transient_error_every: Some((1, CommandStatus::ESME_RSYSERR)),
        ..Faults::default()
    });
    env.add_server(&[]);
    let id = env.insert("447700900123", "retry me");
    let esmed = env.esmed("transient", "");
    assert!(env.smsc.wait_for_submits(1, T), "first submit");
    env.smsc.set_faults(Faults::default());
    env.wait_all("submission_done", T, &esmed);
    let row = env
        .db()
        .query_one(
            "SELECT submission_attempts, submission_info FROM smpp_tx_queue WHERE id = $1",
            &[&id],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    assert!(row.get::<_, String>(1).starts_with("ESME_RSYSERR"));
    assert_eq!(env.smsc.submits().len(), 2);
}

#[test]
fn a_permanent_error_fails_the_row_with_the_status_name_and_the_queue_goes_on() {
    let env = Env::new("permanent");
    env.smsc.set_faults(Faults {
        permanent_error_prefix: Some(("4470".into(), CommandStatus::ESME_RINVDSTADR)),
        ..Faults::default()
    });
    env.add_server(&[]);
    let bad = env.insert("447012345678", "to a bad number");
    let good = env.insert("447712345678", "to a good number");
    let esmed = env.esmed("permanent", "");
    env.wait_all("submission_done OR submission_failed", T, &esmed);
    let mut db = env.db();
    let info: String = db
        .query_one(
            "SELECT submission_info FROM smpp_tx_queue WHERE id = $1 AND submission_failed",
            &[&bad],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        info,
        "ESME_RINVDSTADR (0x0000000B): invalid destination address"
    );
    assert_eq!(env.count(&format!("id = {good} AND submission_done")), 1);
    assert_eq!(
        env.smsc.submits().len(),
        2,
        "a permanent error is not retried"
    );
}

#[test]
fn attempts_run_out_and_the_row_fails() {
    let env = Env::new("attempts");
    env.smsc.set_faults(Faults {
        transient_error_every: Some((1, CommandStatus::ESME_RSYSERR)),
        ..Faults::default()
    });
    env.add_server(&[("esme_max_submission_attempts", "2")]);
    env.insert("447700900123", "never accepted");
    let esmed = env.esmed("attempts", "");
    env.wait_all("submission_failed", T, &esmed);
    let row = env
        .db()
        .query_one(
            "SELECT submission_attempts, submission_info FROM smpp_tx_queue",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    let info: String = row.get(1);
    assert!(
        info.starts_with("ESME_RSYSERR") && info.ends_with("giving up after 2 attempts"),
        "{info}"
    );
    assert_eq!(env.smsc.submits().len(), 2);
}

#[test]
fn throttling_slows_down_without_using_attempts() {
    let env = Env::new("throttle");
    env.smsc.set_faults(Faults {
        throttle_every: Some(3),
        ..Faults::default()
    });
    env.add_server(&[("esme_max_submission_attempts", "1")]);
    for n in 0..30 {
        env.insert(&format!("4477009{n:05}"), "throttled now and then");
    }
    let esmed = env.esmed("throttle", "");
    env.wait_all("submission_done AND submission_attempts = 1", T, &esmed);
    let accepted = env.smsc.submits().len();
    assert!(
        accepted > 30,
        "some submits were throttled and repeated: {accepted}"
    );
}

#[test]
fn bad_rows_fail_with_a_clear_reason_and_the_queue_goes_on() {
    let env = Env::new("badrows");
    env.add_server(&[]);
    let cases = [
        ("44770abc", "hi", "only digits"),
        ("4477009001234567890123", "hi", "at most 20"),
        ("447700900123", "", "empty message text"),
        ("447700900123", "bell \u{7}", "control character U+0007"),
        ("447700900123", &"long ".repeat(400), "limit is 10"),
    ];
    let ids: Vec<(i64, &str)> = cases
        .iter()
        .map(|(dest, text, why)| {
            let id: i64 = env
                .db()
                .query_one(
                    "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
                     VALUES (left($1, 21), $2) RETURNING id",
                    &[dest, text],
                )
                .unwrap()
                .get(0);
            (id, *why)
        })
        .collect();
    let good = env.insert("447700900123", "fine");
    let esmed = env.esmed("badrows", "");
    env.wait_all("submission_done OR submission_failed", T, &esmed);
    let mut db = env.db();
    for (id, why) in ids {
        let info: String = db
            .query_one(
                "SELECT submission_info FROM smpp_tx_queue WHERE id = $1 AND submission_failed",
                &[&id],
            )
            .unwrap()
            .get(0);
        assert!(info.contains(why), "row {id}: {info:?} should say {why:?}");
    }
    assert_eq!(env.count(&format!("id = {good} AND submission_done")), 1);
    assert_eq!(env.smsc.submits().len(), 1);
}

#[test]
fn no_enabled_server_idles_until_one_is_enabled() {
    let env = Env::new("idle");
    let server = env.add_server(&[]);
    env.db()
        .execute("UPDATE smpp_servers SET enabled = FALSE", &[])
        .unwrap();
    env.insert("447700900123", "waiting");
    let esmed = env.esmed("idle", "");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        env.smsc.binds().is_empty(),
        "no bind without an enabled server"
    );
    assert_eq!(env.count("submission_done OR claimed_by IS NOT NULL"), 0);
    env.db()
        .execute(
            "UPDATE smpp_servers SET enabled = TRUE WHERE id = $1",
            &[&server],
        )
        .unwrap();
    env.wait_all("submission_done", T, &esmed);
}

#[test]
fn a_server_row_esmed_cannot_use_as_written_is_reported_not_guessed() {
    let env = Env::new("badport");
    let server = env.add_server(&[("smpp_enquire_link_timer", "0")]);
    env.db()
        .execute(
            "UPDATE smpp_servers SET port = 70000 WHERE id = $1",
            &[&server],
        )
        .unwrap();
    env.insert("447700900123", "waiting for a usable port");
    let esmed = env.esmed("badport", "heartbeat_interval = 1s\n");
    let refused = format!(
        "server {server}: port 70000 is not a TCP port (1-65535): not connecting; esmed reads \
         the row again when it changes"
    );
    wait_until(T, "the port refused in the log", &esmed, || {
        esmed.log().contains(&refused)
    });
    // And in what `esmed status` reads.
    wait_until(
        T,
        "the refusal as the status row's last error",
        &esmed,
        || {
            env.db()
                .query_opt(
                    "SELECT 1 FROM esmed_status WHERE instance = 'badport' AND last_error = $1",
                    &[&refused],
                )
                .unwrap()
                .is_some()
        },
    );
    assert!(env.smsc.binds().is_empty(), "no bind anywhere");
    assert_eq!(env.count("submission_done OR claimed_by IS NOT NULL"), 0);
    env.db()
        .execute(
            "UPDATE smpp_servers SET port = $1 WHERE id = $2",
            &[&i32::from(env.smsc.port()), &server],
        )
        .unwrap();
    env.wait_all("submission_done", T, &esmed);
    let log = esmed.log();
    assert!(
        log.contains(&format!(
            "server {server}: smpp_enquire_link_timer = 0 is below 1 second; using 1"
        )),
        "{log}"
    );
}

#[test]
fn a_changed_server_row_rebinds_to_the_new_server() {
    let env = Env::new("rebind");
    let second = Smsc::start(support::smsc_config()).unwrap();
    let server = env.add_server(&[]);
    let esmed = env.esmed("rebind", "");
    env.insert("447700900001", "to the first SMSC");
    env.wait_all("submission_done", T, &esmed);
    env.db()
        .execute(
            "UPDATE smpp_servers SET port = $1 WHERE id = $2",
            &[&i32::from(second.port()), &server],
        )
        .unwrap();
    assert!(
        second.wait_for_bound(1, T),
        "bound to the second SMSC\n{}",
        esmed.log()
    );
    assert!(!env.smsc.unbinds().is_empty(), "the first session unbound");
    env.insert("447700900002", "to the second SMSC");
    env.wait_all("submission_done", T, &esmed);
    assert_eq!(env.smsc.submits().len(), 1);
    assert_eq!(second.submits().len(), 1);
}

#[test]
fn sigterm_with_messages_in_flight_loses_and_duplicates_nothing() {
    let env = Env::new("sigterm");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "5")]);
    for n in 0..40 {
        env.insert(&format!("4477009{n:05}"), "in flight at SIGTERM");
    }
    let mut esmed = env.esmed("sigterm1", "");
    assert!(env.smsc.wait_for_submits(5, T));
    let status = esmed.terminate(T);
    assert!(status.success(), "exit status {status:?}\n{}", esmed.log());
    assert!(!env.smsc.unbinds().is_empty(), "unbind seen by the SMSC");
    let sent = env.smsc.submits().len() as i64;
    assert_eq!(
        env.count("submission_done"),
        sent,
        "every answered submit was recorded"
    );
    assert_eq!(
        env.count("claimed_by IS NOT NULL"),
        0,
        "nothing left claimed"
    );
    assert_eq!(env.count("submission_failed"), 0);

    let esmed = env.esmed("sigterm2", "");
    env.wait_all("submission_done", T, &esmed);
    let destinations: Vec<String> = submit_bodies(&env).into_iter().map(|(d, _)| d).collect();
    let unique: std::collections::HashSet<&String> = destinations.iter().collect();
    assert_eq!(destinations.len(), 40, "each row submitted exactly once");
    assert_eq!(unique.len(), 40);
}

/// With a transmitter and a receiver bind, SIGTERM drains both at once: the receiver does not
/// wait for the transmitter's outstanding responses before its own stop begins, so the stop
/// takes one shutdown_timeout at most, not one per bind.
#[test]
fn sigterm_stops_both_binds_at_once() {
    let env = Env::new("sigterm-both");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(1500)),
        ..Faults::default()
    });
    env.add_server(&[("esme_bind_receiver", "TRUE"), ("smpp_window", "5")]);
    for n in 0..5 {
        env.insert(&format!("4477009{n:05}"), "in flight at SIGTERM");
    }
    let mut esmed = env.esmed("sigterm-both", "");
    assert!(env.smsc.wait_for_submits(5, T));
    let status = esmed.terminate(T);
    let log = esmed.log();
    assert!(status.success(), "exit status {status:?}\n{log}");
    let line_of = |text: &str| {
        log.lines()
            .position(|line| line.contains(text))
            .unwrap_or_else(|| panic!("no line with '{text}'\n{log}"))
    };
    assert!(
        line_of("receiver: stopping: no new rows") < line_of("transmitter: unbound and closed"),
        "the receiver's stop waited for the transmitter's\n{log}"
    );
    assert_eq!(env.smsc.unbinds().len(), 2, "{log}");
    assert_eq!(env.count("submission_done"), 5);
}

/// Behind a slow SMSC esmed holds claimed only what is in flight plus the rows it keeps ready
/// (claim_batch, or twice the window if more), never the whole queue: the rest stays free
/// for another esmed, and a killed esmed leaves few rows waiting for their leases.
#[test]
fn claimed_rows_follow_the_window_not_the_queue() {
    let env = Env::new("ready");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(400)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "20")]);
    env.insert_many(500, "slow SMSC ");
    let esmed = env.esmed("ready", "claim_batch = 8");
    assert!(env.smsc.wait_for_submits(20, T), "{}", esmed.log());
    // In flight at most 20, answered and waiting for their commit at most the 20 of the last
    // round trip (a commit on a busy machine can take longer than the sampling interval), ready
    // 2 x 20 = 40: claim_batch = 8 alone would hold 28.
    let mut most = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        let claimed = env.count("claimed_by IS NOT NULL AND NOT submission_done");
        assert!(claimed <= 80, "{claimed} rows claimed\n{}", esmed.log());
        most = most.max(claimed);
    }
    assert!(
        most > 28,
        "only {most} rows claimed at most\n{}",
        esmed.log()
    );
}

/// A row made sendable again behind the poller's cursor without an INSERT, so without a
/// NOTIFY (here an operator resets a failed row), is found by the sweeper's claim from the
/// head within poll_interval (500 ms in tests) while the backlog after the cursor drains: the
/// poller itself claims on from its cursor and goes back to the head only when that runs out.
#[test]
fn a_row_reset_behind_the_cursor_is_swept_up_while_the_backlog_drains() {
    let env = Env::new("sweep");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(20)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "2")]);
    let reset = env.insert("447700900001", "failed, then reset by the operator");
    env.db()
        .execute(
            "UPDATE smpp_tx_queue SET submission_failed = true WHERE id = $1",
            &[&reset],
        )
        .unwrap();
    env.insert_many(400, "backlog ");
    let esmed = env.esmed("sweep", "claim_batch = 4");
    wait_until(T, "the first rows sent", &esmed, || {
        env.count("submission_done") >= 20
    });
    env.db()
        .execute(
            "UPDATE smpp_tx_queue SET submission_failed = false WHERE id = $1",
            &[&reset],
        )
        .unwrap();
    wait_until(T, "the reset row sent", &esmed, || {
        env.count(&format!("id = {reset} AND submission_done")) == 1
    });
    let pending = env.count("NOT submission_done");
    assert!(
        pending > 50,
        "the reset row waited for the backlog ({pending} rows left)\n{}",
        esmed.log()
    );
    env.wait_all("submission_done", T, &esmed);
    assert_eq!(env.smsc.submits().len(), 401, "each row sent once");
}

#[test]
fn two_esmed_processes_on_one_queue_never_send_a_row_twice() {
    let env = Env::new("two");
    env.add_server(&[("smpp_window", "20")]);
    env.insert_many(600, "shared queue ");
    let first = env.esmed("first", "claim_batch = 20");
    let second = env.esmed("second", "claim_batch = 20");
    env.wait_all("submission_done", Duration::from_secs(60), &first);
    let destinations: Vec<String> = submit_bodies(&env).into_iter().map(|(d, _)| d).collect();
    let unique: std::collections::HashSet<&String> = destinations.iter().collect();
    assert_eq!(
        destinations.len(),
        600,
        "\n{}\n{}",
        first.log(),
        second.log()
    );
    assert_eq!(unique.len(), 600);
    assert!(env.smsc.bound_sessions().len() >= 2 || env.smsc.binds().len() >= 2);
}

fn send_russian_with_mode(mode: &str) -> Vec<Vec<u8>> {
    let env = Env::new(mode);
    env.add_server(&[
        ("esme_source_addr", "'ESMED'"),
        ("esme_bind_transceiver", "TRUE"),
        ("esme_registered_delivery", "TRUE"),
        ("smpp_long_message_mode", &format!("'{mode}'")),
    ]);
    env.db()
        .execute(
            "INSERT INTO smpp_tx_queue (id, smpp_destination_addr, smpp_short_message) VALUES \
             (42, '447700900123', $1)",
            &[&UCS2_TEXT],
        )
        .unwrap();
    let esmed = env.esmed(mode, "");
    env.wait_all("submission_done", T, &esmed);
    submit_bodies(&env)
        .into_iter()
        .map(|(_, body)| body)
        .collect()
}

#[test]
fn long_messages_go_as_sar_tlvs_when_the_server_asks() {
    let bodies = send_russian_with_mode("sar");
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1], body_of_hex_dump(UCS2_SAR_PART_2));
    // Part 1: no UDH, 132 octets of text, then the three SAR TLVs for part 1 of 2.
    assert_eq!(bodies[0][24], 0x00, "esm_class without UDHI");
    assert_eq!(bodies[0][33], 132);
    assert_eq!(
        bodies[0][bodies[0].len() - 16..],
        [2, 0x0C, 0, 2, 0, 0x2A, 2, 0x0E, 0, 1, 2, 2, 0x0F, 0, 1, 1]
    );
}

#[test]
fn long_messages_go_in_one_message_payload_when_the_server_asks() {
    let bodies = send_russian_with_mode("payload");
    assert_eq!(bodies.len(), 1);
    // sm_length 0, then TLV 04 24 00 9A and the 154 UCS2 octets, starting 04 12.
    assert_eq!(
        bodies[0][32..40],
        [0x00, 0x00, 0x04, 0x24, 0x00, 0x9A, 0x04, 0x12]
    );
    assert_eq!(bodies[0].len(), 34 + 4 + 154);
}

#[test]
fn the_rate_cap_spreads_submits_over_time() {
    let env = Env::new("rate");
    env.add_server(&[("smpp_rate_limit", "20")]);
    for n in 0..30 {
        env.insert(&format!("4477009{n:05}"), "rate capped");
    }
    let esmed = env.esmed("rate", "");
    env.wait_all("submission_done", T, &esmed);
    let arrivals: Vec<std::time::SystemTime> = env.smsc.submits().iter().map(|r| r.at).collect();
    // 20 per second with a burst of 2: no second-long stretch may hold more than 22.
    for (i, start) in arrivals.iter().enumerate() {
        let within = arrivals[i..]
            .iter()
            .take_while(|t| t.duration_since(*start).unwrap_or_default() < Duration::from_secs(1))
            .count();
        assert!(within <= 22, "{within} submits within one second");
    }
}

#[test]
fn the_link_is_kept_alive_and_a_smsc_unbind_leads_to_a_rebind() {
    let env = Env::new("keepalive");
    env.add_server(&[("smpp_enquire_link_timer", "1")]);
    let esmed = env.esmed("keepalive", "");
    assert!(
        env.smsc
            .wait_for_count(2, T, esmed::smpp::CommandId::EnquireLink),
        "two enquire_link within the timer\n{}",
        esmed.log()
    );
    env.smsc.disconnect_all();
    assert!(
        env.smsc
            .wait_for_count(2, T, esmed::smpp::CommandId::BindTransmitter),
        "rebind"
    );
    env.insert("447700900123", "after the rebind");
    env.wait_all("submission_done", T, &esmed);
}

/// A text longer than any message esmed could send (the column takes up to 1 GB) is refused
/// inside the claim by its length, without being read; the rows around it are sent.
#[test]
fn a_huge_text_is_refused_by_its_length_without_being_read() {
    let env = Env::new("huge");
    env.add_server(&[]);
    let before = env.insert("447700900001", "before");
    let huge: i64 = env
        .db()
        .query_one(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
             VALUES ('447700900002', repeat('x', 5000000)) RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    let after = env.insert("447700900003", "after");
    let esmed = env.esmed("huge", "");
    env.wait_all("submission_done OR submission_failed", T, &esmed);
    let row = env
        .db()
        .query_one(
            "SELECT submission_failed, submission_info, claimed_by IS NULL FROM smpp_tx_queue \
             WHERE id = $1",
            &[&huge],
        )
        .unwrap();
    let info: String = row.get(1);
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(2), "{info}");
    assert!(
        info.starts_with("text is 5000000 octets, more than esmed can send"),
        "{info}"
    );
    assert!(esmed
        .log()
        .contains(&format!("row {huge}: text is 5000000 octets")));
    let done = env.count(&format!("submission_done AND id IN ({before}, {after})"));
    assert_eq!(done, 2);
    assert_eq!(env.smsc.submits().len(), 2);
}
