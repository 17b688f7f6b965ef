//! End to end: delivery receipts matched to their messages (ids in other bases and
//! cases, receipts before their submit_sm_resp is stored, late and intermediate receipts,
//! multipart aggregate), concatenated MO reassembled across an esmed restart, invalid text,
//! and every deliver_sm_resp only after its row is committed; values too long for an index,
//! sets and receipt states PostgreSQL refuses, and references a new message reuses.

mod support;

use std::time::{Duration, Instant, SystemTime};

use esmed::db::writer::HOUSEKEEPING;
use esmed::smpp::receipt::MessageState;
use esmed::smpp::text::{encode, Coding};
use esmed::smpp::tlv::tag;
use esmed::smpp::{Body, CommandId, Pdu, Tlv};
use esmed_smsc::{
    Faults, IdFormat, MoMessage, ReceiptConfig, ReceiptIdFormat, ReceiptMode, SmscConfig,
};
use support::fake_smsc::{FakeSmsc, Request};
use support::{wait_until, Env, Esmed};

const T: Duration = Duration::from_secs(20);

fn smsc_with(receipts: ReceiptMode, id_format: IdFormat, first_message_id: u64) -> SmscConfig {
    SmscConfig {
        receipts,
        id_format,
        first_message_id,
        ..support::smsc_config()
    }
}

fn text_receipts(text_id_format: ReceiptIdFormat, tlvs: bool) -> ReceiptMode {
    ReceiptMode::After(ReceiptConfig {
        text_id_format,
        tlvs,
        ..ReceiptConfig::after(Duration::from_millis(100))
    })
}

fn receipts_on(env: &Env) {
    env.add_server(&[
        ("esme_bind_transceiver", "TRUE"),
        ("esme_registered_delivery", "TRUE"),
    ]);
}

/// (smpp_message_state, message_state_timestamp set) of a tx row.
fn tx_state(env: &Env, id: i64) -> (Option<String>, bool) {
    let row = env
        .db()
        .query_one(
            "SELECT smpp_message_state, message_state_timestamp IS NOT NULL \
             FROM smpp_tx_queue WHERE id = $1",
            &[&id],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn wait_state(env: &Env, esmed: &Esmed, id: i64, state: &str) {
    wait_until(T, &format!("row {id} {state}"), esmed, || {
        tx_state(env, id).0.as_deref() == Some(state)
    });
}

/// The receipts stored: (receipted_message_id, message_state, tx_id), in arrival order.
fn receipts(env: &Env) -> Vec<(String, String, Option<i64>)> {
    env.db()
        .query(
            "SELECT receipted_message_id, message_state, tx_id FROM smpp_rx_queue \
             WHERE is_receipt ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn count(env: &Env, sql: &str) -> i64 {
    env.db().query_one(sql, &[]).unwrap().get(0)
}

/// Three messages sent and receipted as `smsc` says; every receipt finds its row.
fn receipts_match(name: &str, smsc: SmscConfig, daemon_extra: &str) {
    let env = Env::with_smsc(name, smsc);
    receipts_on(&env);
    let ids: Vec<i64> = (0..3)
        .map(|n| env.insert(&format!("4477009001{n:02}"), "receipt please"))
        .collect();
    let esmed = env.esmed(name, daemon_extra);
    env.wait_all(
        "smpp_message_state IS NOT DISTINCT FROM 'DELIVERED'",
        T,
        &esmed,
    );
    let stored = receipts(&env);
    assert_eq!(stored.len(), 3, "{stored:?}");
    let mut linked: Vec<i64> = stored.iter().filter_map(|r| r.2).collect();
    linked.sort_unstable();
    assert_eq!(linked, ids, "each receipt linked to its own row");
    for &id in &ids {
        assert_eq!(tx_state(&env, id), (Some("DELIVERED".into()), true));
    }
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_unmatched"), 0);
    assert_acks_after_commit(&env);
}

// 0xA0000000: the hex form has letters, so `auto` can tell the bases apart.
const HEXY: u64 = 0xA000_0000;

#[test]
fn text_only_receipt_in_hex_for_decimal_ids() {
    let smsc = smsc_with(
        text_receipts(ReceiptIdFormat::HexUpper, false),
        IdFormat::Decimal,
        HEXY,
    );
    receipts_match("txt-hex", smsc, "");
}

#[test]
fn text_only_receipt_in_padded_decimal_for_hex_ids() {
    let smsc = smsc_with(
        text_receipts(ReceiptIdFormat::Decimal10, false),
        IdFormat::HexLower,
        HEXY,
    );
    receipts_match("txt-dec", smsc, "");
}

#[test]
fn text_only_receipt_in_lower_case_for_upper_case_ids() {
    let smsc = smsc_with(
        text_receipts(ReceiptIdFormat::HexLower, false),
        IdFormat::HexUpper,
        HEXY,
    );
    receipts_match("txt-case", smsc, "");
}

#[test]
fn tlv_receipt_wins_over_a_text_id_in_another_base() {
    let smsc = smsc_with(
        text_receipts(ReceiptIdFormat::HexLower, true),
        IdFormat::Decimal,
        1000,
    );
    receipts_match("tlv", smsc, "");
}

#[test]
fn ambiguous_bases_are_matched_when_configured() {
    // Ids 16, 17, 18 in decimal; the text says 10, 11, 12 (hex). Only text_hex can know.
    let smsc = smsc_with(
        text_receipts(ReceiptIdFormat::HexUpper, false),
        IdFormat::Decimal,
        16,
    );
    receipts_match("txt-hex-cfg", smsc, "receipt_id_match = text_hex\n");
}

/// A test SMSC whose receipt comes before its submit_sm_resp: the response waits 1.5 s.
fn receipt_before_its_resp() -> SmscConfig {
    SmscConfig {
        faults: Faults {
            response_delay: Some(Duration::from_millis(1500)),
            ..Faults::default()
        },
        ..smsc_with(
            text_receipts(ReceiptIdFormat::SameAsResp, true),
            IdFormat::Decimal,
            1,
        )
    }
}

#[test]
fn a_receipt_before_its_submit_sm_resp_is_kept_and_matched() {
    let smsc = receipt_before_its_resp();
    let env = Env::with_smsc("early", smsc);
    receipts_on(&env);
    let id = env.insert("447700900123", "early receipt");
    let esmed = env.esmed("early", "");
    wait_until(T, "the receipt waiting for its message", &esmed, || {
        count(&env, "SELECT count(*) FROM smpp_rx_unmatched") == 1
    });
    assert_eq!(env.count("submission_done"), 0, "the receipt came first");
    assert_eq!(receipts(&env)[0].2, None);
    wait_state(&env, &esmed, id, "DELIVERED");
    assert_eq!(receipts(&env)[0].2, Some(id));
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_unmatched"), 0);
}

/// A receipt waits only for its own message's result: while another message's result
/// cannot be committed (an application holds that row locked), a receipt for a message
/// already done is stored and acknowledged at once, not held back (up to five seconds) behind
/// every result handed over before it, which through a small deliver window would hold back
/// every receipt after it too.
#[test]
fn a_receipt_is_not_held_back_by_another_messages_result() {
    let env = Env::with_smsc(
        "own_result",
        smsc_with(ReceiptMode::Off, IdFormat::Decimal, 1),
    );
    receipts_on(&env);
    let done = env.insert("447700900123", "done first");
    let esmed = env.esmed("own_result", "");
    wait_until(T, "the first message done", &esmed, || {
        env.count("submission_done") == 1
    });
    let message_id: String = env
        .db()
        .query_one(
            "SELECT smpp_message_id FROM smpp_tx_queue WHERE id = $1",
            &[&done],
        )
        .unwrap()
        .get(0);

    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    let held = env.insert("447700900124", "its result held back");
    wait_until(T, "the second message submitted", &esmed, || {
        env.smsc.submits().len() == 2
    });
    let mut app = env.db();
    let mut lock = app.transaction().unwrap();
    lock.execute(
        "SELECT FROM smpp_tx_queue WHERE id = $1 FOR UPDATE",
        &[&held],
    )
    .unwrap();
    // Its submit_sm_resp comes and its result is handed over, but cannot be written.
    std::thread::sleep(Duration::from_millis(1000));

    env.smsc
        .send_receipt(&message_id, MessageState::Delivered)
        .unwrap();
    // Held back, it would be acknowledged only after five seconds.
    let deadline = Instant::now() + Duration::from_secs(4);
    while env.smsc.deliver_sm_resps().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !env.smsc.deliver_sm_resps().is_empty(),
        "the receipt is acknowledged while the other result is held\n{}",
        esmed.log()
    );
    assert_eq!(tx_state(&env, done).0.as_deref(), Some("DELIVERED"));
    assert_eq!(
        env.count("submission_done"),
        1,
        "the other result is still held"
    );
    lock.rollback().unwrap();
    wait_until(T, "the held result written", &esmed, || {
        env.count("submission_done") == 2
    });
    assert_eq!(
        receipts(&env),
        [(message_id, "DELIVERED".to_string(), Some(done))]
    );
}

/// A receipt waiting for its message whose state an operator's trigger refuses to write
/// does not take the message's result down with it: the row is done (not failed, not sent
/// again), and the receipt stops waiting, with a log line.
#[test]
fn a_waiting_receipt_whose_state_is_refused_leaves_its_message_done() {
    let smsc = receipt_before_its_resp();
    let env = Env::with_smsc("refused-state", smsc);
    receipts_on(&env);
    env.db()
        .batch_execute(
            "CREATE FUNCTION refuse_state() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.smpp_message_state IS DISTINCT FROM OLD.smpp_message_state THEN
                     RAISE EXCEPTION 'states are frozen';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_state BEFORE UPDATE ON smpp_tx_queue
                 FOR EACH ROW EXECUTE FUNCTION refuse_state();",
        )
        .unwrap();
    let id = env.insert("447700900123", "early receipt");
    let esmed = env.esmed("refused-state", "");
    wait_until(T, "the receipt waiting for its message", &esmed, || {
        count(&env, "SELECT count(*) FROM smpp_rx_unmatched") == 1
    });
    assert_eq!(env.count("submission_done"), 0, "the receipt came first");
    env.wait_all("submission_done OR submission_failed", T, &esmed);
    wait_until(T, "the receipt no longer waiting", &esmed, || {
        count(&env, "SELECT count(*) FROM smpp_rx_unmatched") == 0
    });
    let row = env
        .db()
        .query_one(
            "SELECT submission_done, submission_failed, submission_resends FROM smpp_tx_queue \
             WHERE id = $1",
            &[&id],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, i32>(2)
        ),
        (true, false, 0),
        "{}",
        esmed.log()
    );
    assert_eq!(env.smsc.submit_count(), 1, "sent once");
    assert_eq!(receipts(&env)[0].2, None);
    let log = esmed.log();
    assert!(log.contains("but writing the state was refused"), "{log}");
    assert!(log.contains("states are frozen"), "{log}");

    // A receipt for a message already known (matched as it is stored): the same.
    env.smsc.set_faults(Faults::default());
    let second = env.insert("447700900124", "receipt after the response");
    wait_until(T, "the second receipt stored", &esmed, || {
        receipts(&env).len() == 2
    });
    wait_until(T, "the second receipt no longer waiting", &esmed, || {
        count(&env, "SELECT count(*) FROM smpp_rx_unmatched") == 0
    });
    let done: (bool, bool) = {
        let row = env
            .db()
            .query_one(
                "SELECT submission_done, submission_failed FROM smpp_tx_queue WHERE id = $1",
                &[&second],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(done, (true, false));
    assert_eq!(receipts(&env)[1].2, None);
    assert_eq!(env.smsc.submit_count(), 2, "each sent once");
    assert!(env
        .smsc
        .deliver_sm_resps()
        .iter()
        .all(|r| r.pdu.command_status.is_ok()));
    let log = esmed.log();
    assert_eq!(
        log.matches("but writing the state was refused").count(),
        2,
        "{log}"
    );
}

#[test]
fn enroute_then_delivered_and_a_late_enroute_changes_nothing() {
    let smsc = smsc_with(
        ReceiptMode::After(ReceiptConfig {
            intermediate_enroute: true,
            ..ReceiptConfig::after(Duration::from_millis(400))
        }),
        IdFormat::Decimal,
        1,
    );
    let env = Env::with_smsc("enroute", smsc);
    receipts_on(&env);
    let id = env.insert("447700900123", "slow one");
    let esmed = env.esmed("enroute", "");
    // The row shows ENROUTE only between the two receipts (400 ms apart), which a busy
    // machine's polling may miss; the stored receipts say both came, in order.
    wait_state(&env, &esmed, id, "DELIVERED");
    wait_until(T, "both receipts", &esmed, || receipts(&env).len() == 2);
    env.smsc.send_receipt("1", MessageState::Enroute).unwrap();
    wait_until(T, "the late receipt", &esmed, || receipts(&env).len() == 3);
    let states: Vec<String> = receipts(&env).into_iter().map(|r| r.1).collect();
    assert_eq!(states, ["ENROUTE", "DELIVERED", "ENROUTE"]);
    assert!(receipts(&env).iter().all(|r| r.2 == Some(id)));
    // Give a wrong update time to land, then check nothing moved.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tx_state(&env, id).0.as_deref(), Some("DELIVERED"));
    // Sent in one part: the row itself holds the key receipts matched, and no parts rows.
    let key: Option<String> = env
        .db()
        .query_one(
            "SELECT smpp_message_id_key FROM smpp_tx_queue WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(key.as_deref(), Some("1"));
    let parts = count(
        &env,
        &format!("SELECT count(*) FROM smpp_tx_parts WHERE tx_id = {id}"),
    );
    assert_eq!(parts, 0);
}

#[test]
fn a_multipart_message_is_delivered_only_when_every_part_is() {
    let smsc = smsc_with(ReceiptMode::Off, IdFormat::Decimal, 1);
    let env = Env::with_smsc("multipart", smsc);
    receipts_on(&env);
    let failing = env.insert("447700900123", &"a".repeat(400));
    let fine = env.insert("447700900124", &"b".repeat(400));
    let esmed = env.esmed("multipart", "");
    env.wait_all("submission_done", T, &esmed);
    let parts = count(&env, "SELECT count(*) FROM smpp_tx_parts");
    assert_eq!(parts, 6, "three parts each");
    let part_ids = |tx: i64| -> Vec<String> {
        env.db()
            .query(
                "SELECT message_id FROM smpp_tx_parts WHERE tx_id = $1 ORDER BY part_no",
                &[&tx],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let (f, g) = (part_ids(failing), part_ids(fine));
    env.smsc
        .send_receipt(&f[0], MessageState::Delivered)
        .unwrap();
    wait_state(&env, &esmed, failing, "ENROUTE");
    env.smsc
        .send_receipt(&f[1], MessageState::Undeliverable)
        .unwrap();
    env.smsc
        .send_receipt(&f[2], MessageState::Delivered)
        .unwrap();
    for id in &g {
        env.smsc.send_receipt(id, MessageState::Delivered).unwrap();
    }
    wait_until(T, "six receipts linked", &esmed, || {
        receipts(&env).iter().filter(|r| r.2.is_some()).count() == 6
    });
    wait_state(&env, &esmed, failing, "UNDELIVERABLE");
    wait_state(&env, &esmed, fine, "DELIVERED");
    let states: Vec<String> = env
        .db()
        .query(
            "SELECT message_state FROM smpp_tx_parts WHERE tx_id = $1 ORDER BY part_no",
            &[&failing],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["DELIVERED", "UNDELIVERABLE", "DELIVERED"]);
}

/// User data with an 8-bit (`ref16` false) or 16-bit reference concatenation UDH.
fn udh_part(reference: u16, ref16: bool, total: u8, seq: u8, text: &[u8]) -> Vec<u8> {
    let concat = esmed::smpp::udh::Concat {
        reference,
        total,
        seq,
        ref16,
    };
    let mut bytes = concat.to_udh();
    bytes.extend_from_slice(text);
    bytes
}

fn sar_part(reference: u16, total: u8, seq: u8, text: &[u8]) -> MoMessage {
    let mut mo = MoMessage::raw("447700900303", "ESMED", text, 0, 0);
    mo.tlvs = vec![
        Tlv::u16(tag::SAR_MSG_REF_NUM, reference),
        Tlv::u8(tag::SAR_TOTAL_SEGMENTS, total),
        Tlv::u8(tag::SAR_SEGMENT_SEQNUM, seq),
    ];
    mo
}

/// (source, text, mo_parts, mo_incomplete, text_invalid, JSON parts, raw parts).
type ReassembledRow = (String, String, Option<i16>, bool, bool, i32, i32);

/// Part `seq` (1-based) of each of the three sets.
fn mo_parts(seq: usize) -> Vec<MoMessage> {
    let gsm = ["Hello ", "concatenated ", "world"];
    // The emoji's surrogate pair is split between parts 1 and 2.
    let ucs2 = encode("Привет 😀 мир!", Coding::Ucs2).unwrap();
    let ucs2 = [&ucs2[..16], &ucs2[16..22], &ucs2[22..]];
    let sar = ["SAR ", "in three ", "parts"];
    let n = seq as u8;
    vec![
        MoMessage::raw(
            "447700900301",
            "ESMED",
            &udh_part(0xAB, false, 3, n, gsm[seq - 1].as_bytes()),
            0,
            0x40,
        ),
        MoMessage::raw(
            "447700900302",
            "ESMED",
            &udh_part(0xBEEF, true, 3, n, ucs2[seq - 1]),
            8,
            0x40,
        ),
        sar_part(0x1234, 3, n, sar[seq - 1].as_bytes()),
    ]
}

#[test]
fn concatenated_mo_is_reassembled_out_of_order_across_a_restart() {
    let env = Env::new("concat");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let mut esmed = env.esmed("concat-1", "");
    let mut acked = 0;
    for (round, seq) in [3, 1, 2].into_iter().enumerate() {
        if round > 0 {
            // Restart between parts: what is stored must survive.
            esmed.terminate(T);
            esmed = env.esmed(&format!("concat-{}", round + 1), "");
        }
        wait_until(T, "esmed bound again", &esmed, || {
            env.smsc.binds().len() == round + 1 && env.smsc.bound_sessions().len() == 1
        });
        for mo in mo_parts(seq) {
            env.smsc.send_mo(mo);
        }
        acked += 3;
        assert!(
            env.smsc.wait_for_count(acked, T, CommandId::DeliverSmResp),
            "{}",
            esmed.log()
        );
        let rows = count(&env, "SELECT count(*) FROM smpp_rx_queue");
        let held = count(&env, "SELECT count(*) FROM smpp_rx_parts");
        assert_eq!(
            (rows, held),
            if round < 2 { (0, acked as i64) } else { (3, 0) }
        );
    }
    let rows = env
        .db()
        .query(
            "SELECT smpp_source_addr, smpp_short_message, mo_parts, mo_incomplete, text_invalid, \
                    jsonb_array_length(pdu_parsed::jsonb), array_length(string_to_array(pdu_raw, ','), 1) \
             FROM smpp_rx_queue ORDER BY smpp_source_addr",
            &[],
        )
        .unwrap();
    let got: Vec<ReassembledRow> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect();
    let whole = |source: &str, text: &str| {
        (
            source.to_string(),
            text.to_string(),
            Some(3i16),
            false,
            false,
            3,
            3,
        )
    };
    assert_eq!(
        got,
        [
            whole("447700900301", "Hello concatenated world"),
            whole("447700900302", "Привет 😀 мир!"),
            whole("447700900303", "SAR in three parts"),
        ]
    );
    assert_acks_after_commit(&env);
}

#[test]
fn an_incomplete_set_is_stored_as_it_is_after_the_timeout() {
    let env = Env::new("incomplete");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let esmed = env.esmed("incomplete", "mo_reassembly_timeout = 1s\n");
    assert!(env.smsc.wait_for_bound(1, T));
    env.smsc.send_mo(mo_parts(1).remove(0));
    env.smsc.send_mo(mo_parts(3).remove(0));
    wait_until(T, "the incomplete set stored", &esmed, || {
        count(&env, "SELECT count(*) FROM smpp_rx_queue") == 1
    });
    let row = env
        .db()
        .query_one(
            "SELECT smpp_short_message, mo_parts, mo_incomplete FROM smpp_rx_queue",
            &[],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, Option<i16>>(1),
            row.get::<_, bool>(2)
        ),
        ("Hello world".to_string(), Some(3), true)
    );
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_parts"), 0);
    assert!(esmed.log().contains("incomplete"));
}

/// An SMSC that missed the deliver_sm_resp delivers the part again, possibly after its set
/// was stored: it is acknowledged and not stored again (it used to start a new set and end,
/// after the timeout, as a fragment row); a new message reusing the reference has other bytes
/// and is a set of its own. The stored parts are forgotten after the timeout.
#[test]
fn a_part_delivered_again_after_its_set_was_stored_is_not_stored_twice() {
    let env = Env::new("again");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let esmed = env.esmed("again", "mo_reassembly_timeout = 2s\n");
    assert!(env.smsc.wait_for_bound(1, T));
    let rows = || count(&env, "SELECT count(*) FROM smpp_rx_queue");
    for seq in 1..=3 {
        for mo in mo_parts(seq) {
            env.smsc.send_mo(mo);
        }
    }
    wait_until(T, "three messages reassembled", &esmed, || rows() == 3);

    for mo in mo_parts(2) {
        env.smsc.send_mo(mo);
    }
    let reused = ["New ", "message ", "here"];
    for (seq, text) in (1..).zip(reused) {
        env.smsc.send_mo(MoMessage::raw(
            "447700900301",
            "ESMED",
            &udh_part(0xAB, false, 3, seq, text.as_bytes()),
            0,
            0x40,
        ));
    }
    assert!(
        env.smsc.wait_for_count(15, T, CommandId::DeliverSmResp),
        "{}",
        esmed.log()
    );
    let acked = Instant::now();
    wait_until(T, "the new message reassembled", &esmed, || rows() == 4);
    // Past the timeout and a housekeeping round (which stores the sets that timed out and
    // forgets the stored parts): still four rows, nothing waiting.
    wait_until(T, "stored parts forgotten", &esmed, || {
        count(&env, "SELECT count(*) FROM smpp_rx_parts_done") == 0
    });
    let past = Duration::from_secs(2) + HOUSEKEEPING + Duration::from_millis(500);
    std::thread::sleep(past.saturating_sub(acked.elapsed()));
    assert_eq!(rows(), 4);
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_parts"), 0);
    let texts: Vec<(String, bool)> = env
        .db()
        .query(
            "SELECT smpp_short_message, mo_incomplete FROM smpp_rx_queue ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        texts.last(),
        Some(&("New message here".to_string(), false)),
        "{texts:?}"
    );
    assert!(texts.iter().all(|(_, incomplete)| !incomplete), "{texts:?}");
    let log = esmed.log();
    assert_eq!(
        log.matches("delivered again after its message was stored")
            .count(),
        3,
        "{log}"
    );
    assert!(
        log.contains("MO part 2/3 (reference 171) from '447700900301'"),
        "{log}"
    );
    assert_acks_after_commit(&env);
}

#[test]
fn invalid_text_is_stored_flagged_and_acknowledged() {
    let env = Env::new("invalid");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let esmed = env.esmed("invalid", "");
    assert!(env.smsc.wait_for_bound(1, T));
    // A lone high surrogate in UCS2, and an octet above 0x7F in GSM 7-bit.
    env.smsc
        .send_mo(MoMessage::raw("1", "ESMED", &[0xD8, 0x3D, 0, b'A'], 8, 0));
    env.smsc
        .send_mo(MoMessage::raw("2", "ESMED", &[b'o', 0xFF, b'k'], 0, 0));
    env.smsc.send_mo(MoMessage::text("3", "ESMED", "Fine ÅÄÖ"));
    env.smsc.send_mo(MoMessage::text("4", "ESMED", "Привет"));
    assert!(
        env.smsc.wait_for_count(4, T, CommandId::DeliverSmResp),
        "{}",
        esmed.log()
    );
    let got: Vec<(String, bool, String)> = env
        .db()
        .query(
            "SELECT smpp_source_addr, text_invalid, smpp_short_message FROM smpp_rx_queue \
             ORDER BY smpp_source_addr",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let flags: Vec<bool> = got.iter().map(|r| r.1).collect();
    assert_eq!(flags, [true, true, false, false], "{got:?}");
    assert!(got[0].2.ends_with('A') && got[1].2.starts_with('o'));
    assert_eq!(
        (got[2].2.as_str(), got[3].2.as_str()),
        ("Fine ÅÄÖ", "Привет")
    );
    assert!(env
        .smsc
        .deliver_sm_resps()
        .iter()
        .all(|r| r.pdu.command_status.is_ok()));
    assert_acks_after_commit(&env);
}

/// Every rx row was committed before the SMSC got the deliver_sm_resp that answered it: the
/// last ack among its PDUs (one, or every part of a reassembled MO) follows the commit.
/// Rows are found by the raw PDUs they hold. (Rows updated after their insert, receipts
/// linked late, are not checked here: their xmin is the update's.)
fn assert_acks_after_commit(env: &Env) {
    let acks = env.smsc.deliver_sm_resps();
    let sent = env.smsc.sent();
    let sent_hex: Vec<(String, u32)> = sent
        .iter()
        .map(|s| {
            let hex = esmed::smpp::hex(&esmed::smpp::encode_to_vec(&s.pdu).unwrap());
            (hex, s.pdu.sequence_number)
        })
        .collect();
    let rows = env
        .db()
        .query(
            "SELECT pdu_raw, pg_xact_commit_timestamp(xmin) FROM smpp_rx_queue",
            &[],
        )
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let raw: String = row.get(0);
        let committed: SystemTime = row.get(1);
        let last_ack = raw
            .split(',')
            .filter_map(|part| sent_hex.iter().find(|(hex, _)| hex == part))
            .flat_map(|(_, seq)| acks.iter().filter(move |a| a.pdu.sequence_number == *seq))
            .map(|a| a.at)
            .max()
            .expect("the row's deliver_sm was answered");
        assert!(
            last_ack >= committed,
            "deliver_sm_resp at {last_ack:?} before the commit at {committed:?}"
        );
    }
}

/// Queue ids are 64-bit: rows numbered past 2³¹ (what a 32-bit id holds) are sent, one of
/// them in several parts, and the receipts, numbered past it too, find their rows.
#[test]
fn rows_and_receipts_with_ids_past_32_bits_are_sent_and_matched() {
    let smsc = smsc_with(
        ReceiptMode::After(ReceiptConfig::after(Duration::from_millis(50))),
        IdFormat::HexLower,
        1,
    );
    let env = Env::with_smsc("big-ids", smsc);
    receipts_on(&env);
    env.db()
        .batch_execute(
            "SELECT setval('smpp_tx_queue_id_seq', 3000000000);
             SELECT setval('smpp_rx_queue_id_seq', 5000000000);",
        )
        .unwrap();
    let ids = [
        env.insert("447700900201", "past two to the thirty-one"),
        env.insert("447700900202", &"long ".repeat(60)),
    ];
    assert!(ids.iter().all(|&id| id > 3_000_000_000), "{ids:?}");
    let esmed = env.esmed("big-ids", "");
    env.wait_all(
        "smpp_message_state IS NOT DISTINCT FROM 'DELIVERED'",
        T,
        &esmed,
    );
    let mut linked: Vec<i64> = receipts(&env).iter().filter_map(|r| r.2).collect();
    linked.sort_unstable();
    linked.dedup();
    assert_eq!(linked, ids, "each receipt linked to its row");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM smpp_rx_queue WHERE id <= 5000000000"
        ),
        0
    );
    assert_eq!(
        count(&env, "SELECT count(DISTINCT tx_id) FROM smpp_tx_parts"),
        1,
        "the long message's parts are stored under its id"
    );
}

/// (text, mo_parts, mo_incomplete, text_invalid) of every rx row from `source`, oldest first.
fn rows_from(env: &Env, source: &str) -> Vec<(String, Option<i16>, bool, bool)> {
    env.db()
        .query(
            "SELECT smpp_short_message, mo_parts, mo_incomplete, text_invalid FROM smpp_rx_queue \
             WHERE smpp_source_addr = $1 ORDER BY id",
            &[&source],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn udh8_part(source: &str, reference: u16, total: u8, seq: u8, text: &str) -> MoMessage {
    let bytes = udh_part(reference, false, total, seq, text.as_bytes());
    MoMessage::raw(source, "ESMED", &bytes, 0, 0x40)
}

/// A new message reusing the reference of an older set that never completed, with other
/// bytes at the same part numbers, ends that set (stored as it is, incomplete) and starts
/// its own; a part the SMSC delivers again while its set waits (same bytes) is still stored
/// once.
#[test]
fn a_reused_reference_ends_the_older_incomplete_set() {
    let env = Env::new("reused");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    // A long timeout: only the new message may end the old set here.
    let esmed = env.esmed("reused", "mo_reassembly_timeout = 60s\n");
    assert!(env.smsc.wait_for_bound(1, T));
    let source = "447700900404";
    env.smsc.send_mo(udh8_part(source, 0x77, 3, 1, "Old one "));
    env.smsc.send_mo(udh8_part(source, 0x77, 3, 2, "half"));
    env.smsc.send_mo(udh8_part(source, 0x77, 3, 2, "half"));
    assert!(env.smsc.wait_for_count(3, T, CommandId::DeliverSmResp));
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_parts"), 2);
    for (seq, text) in (1..).zip(["New ", "message ", "here"]) {
        env.smsc.send_mo(udh8_part(source, 0x77, 3, seq, text));
    }
    assert!(env.smsc.wait_for_count(6, T, CommandId::DeliverSmResp));
    wait_until(T, "both messages stored", &esmed, || {
        rows_from(&env, source).len() == 2
    });
    assert_eq!(
        rows_from(&env, source),
        [
            ("Old one half".to_string(), Some(3), true, false),
            ("New message here".to_string(), Some(3), false, false),
        ]
    );
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_parts"), 0);
    let log = esmed.log();
    assert!(
        log.contains("a new message reuses its reference before it was complete"),
        "{log}"
    );
    assert!(env
        .smsc
        .deliver_sm_resps()
        .iter()
        .all(|r| r.pdu.command_status.is_ok()));
}

/// Two messages with the same reference whose parts reach esmed so close together that they
/// are stored in one transaction: the older set is still ended (stored incomplete) before the
/// new message's parts start their own, so no part is dropped and no message is made of
/// another's parts.
#[test]
fn a_reused_reference_within_one_batch_keeps_both_messages_apart() {
    let env = Env::new("reused-batch");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let esmed = env.esmed("reused-batch", "mo_reassembly_timeout = 60s\n");
    assert!(env.smsc.wait_for_bound(1, T));
    let source = "447700900405";
    // While the received table is locked, the first message waits in its commit and the
    // parts behind it gather for the next batch.
    let mut locker = env.db();
    let mut lock = locker.transaction().unwrap();
    lock.batch_execute("LOCK TABLE smpp_rx_queue IN SHARE MODE")
        .unwrap();
    env.smsc
        .send_mo(MoMessage::raw(source, "ESMED", b"first", 0, 0));
    std::thread::sleep(Duration::from_millis(300));
    env.smsc.send_mo(udh8_part(source, 0x78, 2, 1, "Old "));
    env.smsc.send_mo(udh8_part(source, 0x78, 2, 1, "New "));
    env.smsc.send_mo(udh8_part(source, 0x78, 2, 2, "one"));
    std::thread::sleep(Duration::from_millis(500));
    lock.commit().unwrap();
    assert!(env.smsc.wait_for_count(4, T, CommandId::DeliverSmResp));
    // Wrongly joined parts would make two rows: wait for the parts to leave their table.
    wait_until(T, "the parts stored as messages", &esmed, || {
        count(&env, "SELECT count(*) FROM smpp_rx_parts") == 0 && rows_from(&env, source).len() >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rows_from(&env, source),
        [
            ("first".to_string(), None, false, false),
            ("Old ".to_string(), Some(2), true, false),
            ("New one".to_string(), Some(2), false, false),
        ]
    );
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_parts"), 0);
}

/// An operator's constraint and trigger on smpp_rx_queue refuse two concatenated messages:
/// one for its text (stored without it), one whatever it holds (its parts set aside, with a
/// log line, and not tried again). Their parts are acknowledged all the same, and the rest
/// of housekeeping goes on: another set times out and is stored incomplete, and a receipt
/// is matched late, though another receipt's state is refused by a trigger on its message
/// (that receipt stops waiting, with a log line).
#[test]
fn a_set_postgresql_refuses_blocks_no_other_housekeeping() {
    let env = Env::new("refused-set");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    env.db()
        .batch_execute(
            "ALTER TABLE smpp_rx_queue ADD CONSTRAINT no_poison
                 CHECK (smpp_short_message NOT LIKE '%poison%');
             CREATE FUNCTION refuse_blocked() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.smpp_source_addr = '447700900666' THEN
                     RAISE EXCEPTION 'sender 447700900666 is blocked';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_blocked BEFORE INSERT ON smpp_rx_queue
                 FOR EACH ROW EXECUTE FUNCTION refuse_blocked();
             CREATE FUNCTION refuse_state() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.smpp_message_id = 'late2'
                    AND NEW.smpp_message_state IS DISTINCT FROM OLD.smpp_message_state THEN
                     RAISE EXCEPTION 'row late2 is frozen';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_state BEFORE UPDATE ON smpp_tx_queue
                 FOR EACH ROW EXECUTE FUNCTION refuse_state();
             INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message,
                     submission_done, smpp_message_id)
                 VALUES ('447700900777', 'sent by another esmed', true, 'late1'),
                        ('447700900778', 'its state is refused', true, 'late2');",
        )
        .unwrap();
    let esmed = env.esmed("refused-set", "mo_reassembly_timeout = 3s\n");
    assert!(env.smsc.wait_for_bound(1, T));
    // Receipts whose messages are not known yet: they wait.
    for (source, id) in [("447700900777", "late1"), ("447700900778", "late2")] {
        let text = format!(
            "id:{id} sub:001 dlvrd:001 submit date:2612071200 done date:2612071201 \
             stat:DELIVRD err:000 text:x"
        );
        env.smsc
            .send_mo(MoMessage::raw(source, "ESMED", text.as_bytes(), 0, 0x04));
    }
    for seq in 1..=2 {
        let text = ["a poison ", "pill"][usize::from(seq - 1)];
        env.smsc
            .send_mo(udh8_part("447700900555", 0x10, 2, seq, text));
        let text = ["blocked ", "sender"][usize::from(seq - 1)];
        env.smsc
            .send_mo(udh8_part("447700900666", 0x11, 2, seq, text));
    }
    // One part of two: it times out.
    env.smsc
        .send_mo(udh8_part("447700900888", 0x12, 2, 1, "lonely"));
    assert!(
        env.smsc.wait_for_count(7, T, CommandId::DeliverSmResp),
        "{}",
        esmed.log()
    );
    // The receipts' messages become known (as another esmed would store them).
    wait_until(T, "the receipts waiting", &esmed, || {
        count(&env, "SELECT count(DISTINCT rx_id) FROM smpp_rx_unmatched") == 2
    });
    env.db()
        .execute(
            "UPDATE smpp_tx_queue SET smpp_message_id_key = smpp_message_id \
             WHERE smpp_message_id IN ('late1', 'late2')",
            &[],
        )
        .unwrap();
    wait_until(T, "the lonely part stored", &esmed, || {
        !rows_from(&env, "447700900888").is_empty()
    });
    wait_until(T, "the receipt matched", &esmed, || {
        count(
            &env,
            "SELECT count(*) FROM smpp_rx_queue WHERE is_receipt AND tx_id IS NOT NULL",
        ) == 1
    });
    assert_eq!(
        rows_from(&env, "447700900888"),
        [("lonely".to_string(), Some(2), true, false)]
    );
    assert_eq!(
        rows_from(&env, "447700900555"),
        [(String::new(), Some(2), false, true)],
        "stored without its text"
    );
    assert!(rows_from(&env, "447700900666").is_empty());
    let refused: Vec<(i16, String)> = env
        .db()
        .query(
            "SELECT seq, reason FROM smpp_rx_parts_refused WHERE source_addr = '447700900666' \
             ORDER BY seq",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused.iter().all(|(_, reason)| reason.contains("blocked")),
        "{refused:?}"
    );
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_parts"), 0);
    // Later rounds find nothing to retry: the set is said aside once, and nothing fails.
    std::thread::sleep(HOUSEKEEPING * 2 + Duration::from_millis(500));
    let log = esmed.log();
    assert_eq!(
        log.matches("are set aside in smpp_rx_parts_refused and not tried again")
            .count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("reference 17, 2 parts): its message was refused, even without its text"),
        "{log}"
    );
    assert!(log.contains("stored it without its text"), "{log}");
    assert!(!log.contains("housekeeping of"), "{log}");
    // The receipt whose state was refused stops waiting, once, and blocks no other.
    assert_eq!(
        log.matches("but writing the state was refused").count(),
        1,
        "{log}"
    );
    assert!(log.contains("row late2 is frozen"), "{log}");
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_unmatched"), 0);
    let late2: Option<i64> = env
        .db()
        .query_one(
            "SELECT tx_id FROM smpp_rx_queue WHERE smpp_source_addr = '447700900778'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(late2, None);
    assert!(env
        .smsc
        .deliver_sm_resps()
        .iter()
        .all(|r| r.pdu.command_status.is_ok()));
    assert_eq!(env.smsc.sent().len(), 7, "nothing delivered twice");
}

/// `len` characters that no compression shortens much (PostgreSQL compresses an index entry
/// before it refuses it as too long): lower-case hex from a fixed generator, not starting
/// with 0.
fn incompressible(len: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let mut out = String::from("f");
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(char::from(b"0123456789abcdef"[(x % 16) as usize]));
    }
    out
}

/// A deliver_sm body written octet by octet, so its fields may be as long as a peer makes
/// them (the codec refuses to write more than SMPP allows).
fn raw_deliver_sm(source: &[u8], esm_class: u8, short_message: &[u8], tlvs: &[Tlv]) -> Vec<u8> {
    let mut body = vec![0, 1, 1];
    body.extend_from_slice(source);
    body.extend_from_slice(&[5, 0]);
    body.extend_from_slice(b"ESMED\0");
    body.extend_from_slice(&[esm_class, 0, 0, 0, 0, 0, 0, 0, 0]);
    body.push(u8::try_from(short_message.len()).unwrap());
    body.extend_from_slice(short_message);
    for tlv in tlvs {
        body.extend_from_slice(&tlv.tag.to_be_bytes());
        body.extend_from_slice(&u16::try_from(tlv.value.len()).unwrap().to_be_bytes());
        body.extend_from_slice(&tlv.value);
    }
    body
}

/// A peer sending values far over SMPP's limits: a 5,000-octet message id in the
/// submit_sm_resp and in its receipt, and a two-part MO from a 3,000-octet source address.
/// The index keys are cut (with a hash of the whole), so everything is stored, the receipt
/// matches its message, and the raw PDUs keep the whole values.
#[test]
fn values_too_long_for_an_index_are_stored_and_matched() {
    let env = Env::new("long-keys");
    let id = incompressible(5000, 7);
    let source = incompressible(3000, 11);
    let (id2, source2) = (id.clone(), source.clone());
    let fake = FakeSmsc::start(
        None,
        Box::new(move |request: &Request| {
            if !matches!(request.pdu.body, Body::SubmitSm(_)) {
                return None;
            }
            let other = |seq, command_id, body| Pdu::new(seq, Body::Other { command_id, body });
            let mut resp = id2.as_bytes().to_vec();
            resp.push(0);
            let mut tlv_id = id2.to_uppercase().into_bytes();
            tlv_id.push(0);
            let receipt_tlvs = [
                Tlv::new(tag::RECEIPTED_MESSAGE_ID, tlv_id).unwrap(),
                Tlv::u8(tag::MESSAGE_STATE, 2),
            ];
            let mut address = source2.as_bytes().to_vec();
            address.push(0);
            let part = |seq, text: &str| {
                let user_data = udh_part(0x99, false, 2, seq, text.as_bytes());
                raw_deliver_sm(&address, 0x40, &user_data, &[])
            };
            Some(vec![
                other(request.pdu.sequence_number, 0x8000_0004, resp),
                other(
                    9001,
                    5,
                    raw_deliver_sm(b"447700900999\0", 0x04, b"", &receipt_tlvs),
                ),
                other(9002, 5, part(2, "source")),
                other(9003, 5, part(1, "long ")),
            ])
        }),
    );
    env.add_server_at(fake.port(), &[("esme_bind_transceiver", "TRUE")]);
    let tx_id = env.insert("447700900999", "long ids please");
    let esmed = env.esmed("long-keys", "");
    env.wait_all(
        "smpp_message_state IS NOT DISTINCT FROM 'DELIVERED'",
        T,
        &esmed,
    );
    let (message_id, key): (String, String) = {
        let row = env
            .db()
            .query_one(
                "SELECT smpp_message_id, smpp_message_id_key FROM smpp_tx_queue WHERE id = $1",
                &[&tx_id],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(message_id, id, "the whole id is kept");
    assert!(key.len() <= 256 && id.starts_with(key.split('#').next().unwrap()));
    assert_eq!(
        receipts(&env),
        [(id.to_uppercase(), "DELIVERED".to_string(), Some(tx_id))]
    );
    wait_until(T, "the MO stored", &esmed, || {
        count(
            &env,
            "SELECT count(*) FROM smpp_rx_queue WHERE NOT is_receipt",
        ) == 1
    });
    let row = env
        .db()
        .query_one(
            "SELECT smpp_source_addr, smpp_short_message, mo_incomplete, pdu_raw              FROM smpp_rx_queue WHERE NOT is_receipt",
            &[],
        )
        .unwrap();
    let stored_source: String = row.get(0);
    assert!(stored_source.len() <= 256, "{}", stored_source.len());
    assert!(source.starts_with(stored_source.split('#').next().unwrap()));
    assert_eq!(
        (row.get::<_, String>(1), row.get::<_, bool>(2)),
        ("long source".to_string(), false)
    );
    let raw: String = row.get(3);
    assert!(
        raw.contains(&esmed::smpp::hex(source.as_bytes())),
        "pdu_raw keeps the address"
    );
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_parts"), 0);
    assert_eq!(count(&env, "SELECT count(*) FROM smpp_rx_unmatched"), 0);
}
