//! End to end, receiving side: every deliver_sm is stored (raw hex,
//! parsed JSON, addresses, decoded text, receipt fields) and acknowledged only after its row is
//! committed.

mod support;

use std::time::{Duration, SystemTime};

use esmed::smpp::tlv::tag;
use esmed::smpp::{Body, CommandId, Tlv};
use esmed_smsc::{MoMessage, SmscConfig};
use support::{wait_until, Env};

const T: Duration = Duration::from_secs(20);

#[test]
fn mo_messages_are_stored_then_acknowledged() {
    let env = Env::new("mo");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let esmed = env.esmed("mo", "");
    assert!(env.smsc.wait_for_bound(1, T));
    env.smsc
        .send_mo(MoMessage::text("447700900123", "ESMED", "Hello back"));
    env.smsc
        .send_mo(MoMessage::text("447700900124", "ESMED", "Привет 😀"));
    assert!(
        env.smsc.wait_for_count(2, T, CommandId::DeliverSmResp),
        "{}",
        esmed.log()
    );
    let rows = env
        .db()
        .query(
            "SELECT smpp_source_addr, smpp_short_message, pdu_raw, pdu_parsed::jsonb->>'command', \
             data_coding, is_receipt, insert_timestamp FROM smpp_rx_queue ORDER BY id",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 2);
    let acks = env.smsc.deliver_sm_resps();
    let sent = env.smsc.sent();
    for (row, expected) in rows.iter().zip([
        ("447700900123", "Hello back", 0),
        ("447700900124", "Привет 😀", 8),
    ]) {
        assert_eq!(row.get::<_, String>(0), expected.0);
        assert_eq!(row.get::<_, String>(1), expected.1);
        assert_eq!(row.get::<_, String>(3), "deliver_sm");
        assert_eq!(row.get::<_, i32>(4), expected.2);
        assert!(!row.get::<_, bool>(5));
        let raw: String = row.get(2);
        assert_eq!(raw, raw.to_lowercase());
        let stored_at: SystemTime = row.get(6);
        // The deliver_sm with this raw hex was answered after its row existed.
        let deliver = sent
            .iter()
            .find(|s| esmed::smpp::hex(&esmed::smpp::encode_to_vec(&s.pdu).unwrap()) == raw)
            .expect("the stored raw bytes are the deliver_sm the SMSC sent");
        let ack = acks
            .iter()
            .find(|a| a.pdu.sequence_number == deliver.pdu.sequence_number)
            .unwrap();
        assert!(
            ack.at >= stored_at,
            "acknowledged before the row was stored"
        );
        assert!(matches!(ack.pdu.body, Body::DeliverSmResp(_)));
    }
}

#[test]
fn a_receipt_is_stored_with_its_message_id_and_state() {
    let env = Env::with_smsc(
        "receipt",
        esmed_smsc::SmscConfig {
            receipts: esmed_smsc::ReceiptMode::After(esmed_smsc::ReceiptConfig::after(
                Duration::from_millis(100),
            )),
            ..support::smsc_config()
        },
    );
    env.add_server(&[
        ("esme_bind_transceiver", "TRUE"),
        ("esme_registered_delivery", "TRUE"),
    ]);
    let id = env.insert("447700900123", "receipt please");
    let esmed = env.esmed("receipt", "");
    env.wait_all("submission_done", T, &esmed);
    wait_until(T, "the receipt row", &esmed, || {
        env.db()
            .query("SELECT 1 FROM smpp_rx_queue WHERE is_receipt", &[])
            .unwrap()
            .len()
            == 1
    });
    let row = env
        .db()
        .query_one(
            "SELECT r.receipted_message_id, r.message_state, t.smpp_message_id \
             FROM smpp_rx_queue r, smpp_tx_queue t WHERE r.is_receipt AND t.id = $1",
            &[&id],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(1), "DELIVERED");
    assert_eq!(row.get::<_, String>(0), row.get::<_, String>(2));
}

#[test]
fn a_transmitter_with_the_receiver_bind_gets_receipts_and_mo_too() {
    let env = Env::with_smsc(
        "rxbind",
        esmed_smsc::SmscConfig {
            receipts: esmed_smsc::ReceiptMode::After(esmed_smsc::ReceiptConfig::after(
                Duration::from_millis(100),
            )),
            ..support::smsc_config()
        },
    );
    env.add_server(&[
        ("esme_bind_receiver", "TRUE"),
        ("esme_registered_delivery", "TRUE"),
    ]);
    let esmed = env.esmed("rxbind", "");
    assert!(
        env.smsc.wait_for_bound(2, T),
        "transmitter and receiver\n{}",
        esmed.log()
    );
    // The SMSC marks a session bound before its journal records the bind PDU.
    env.smsc.wait_for(T, |all| {
        all.iter()
            .filter(|r| {
                matches!(
                    r.pdu.command_id(),
                    CommandId::BindTransmitter | CommandId::BindReceiver
                )
            })
            .count()
            >= 2
    });
    let kinds: Vec<CommandId> = env
        .smsc
        .binds()
        .iter()
        .map(|b| b.pdu.command_id())
        .collect();
    assert!(
        kinds.contains(&CommandId::BindTransmitter) && kinds.contains(&CommandId::BindReceiver)
    );
    env.insert("447700900123", "receipt via the receiver");
    env.smsc.send_mo(MoMessage::text(
        "447700900555",
        "ESMED",
        "MO via the receiver",
    ));
    wait_until(T, "a receipt and an MO row", &esmed, || {
        env.db()
            .query("SELECT 1 FROM smpp_rx_queue", &[])
            .unwrap()
            .len()
            == 2
    });
    let submit = &env.smsc.submits()[0];
    match &submit.pdu.body {
        Body::SubmitSm(sm) => assert_eq!(sm.registered_delivery, 1, "receipts requested"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn results_and_messages_survive_a_postgresql_restart() {
    let mut env = Env::new("pgrestart");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    for n in 0..20 {
        env.insert(&format!("4477009{n:05}"), "before the restart");
    }
    let esmed = env.esmed("pgrestart", "");
    env.wait_all("submission_done", T, &esmed);
    env.cluster.stop_fast().expect("stop PostgreSQL");
    env.smsc.send_mo(MoMessage::text(
        "447700900123",
        "ESMED",
        "sent while the database is down",
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        env.smsc.deliver_sm_resps().is_empty(),
        "no deliver_sm_resp while its row cannot be committed"
    );
    env.cluster.start_again().expect("start PostgreSQL again");
    assert!(
        env.smsc.wait_for_count(1, T, CommandId::DeliverSmResp),
        "{}",
        esmed.log()
    );
    for n in 20..30 {
        env.insert(&format!("4477009{n:05}"), "after the restart");
    }
    env.wait_all("submission_done", T, &esmed);
    assert_eq!(env.smsc.submits().len(), 30, "nothing resent");
    assert_eq!(
        env.db()
            .query("SELECT 1 FROM smpp_rx_queue", &[])
            .unwrap()
            .len(),
        1
    );
    let binds = env.smsc.binds().len();
    assert_eq!(binds, 1, "the SMPP session stayed up");
}

/// PostgreSQL refuses NUL in text. A Latin-1 text ending in a 0x00 pad octet, an IA5 text and
/// a UCS2 text with NUL inside, a receipt whose receipted_message_id TLV holds a NUL, and a
/// two-part message with a NUL are each stored at their first delivery, answered ESME_ROK
/// once: the NUL is U+FFFD in the text (flagged invalid) and in pdu_parsed (which stays
/// readable as jsonb); pdu_raw holds the exact octets.
#[test]
fn nul_in_a_text_is_replaced_and_the_message_stored_at_once() {
    // The SMSC delivers again only after a refusal here, not because a loaded machine was
    // slow to answer: what is counted below is what esmed refused.
    let env = Env::with_smsc(
        "nul",
        SmscConfig {
            deliver_resend_after: Duration::from_secs(120),
            ..support::smsc_config()
        },
    );
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let esmed = env.esmed("nul", "");
    assert!(env.smsc.wait_for_bound(1, T));
    env.smsc
        .send_mo(MoMessage::raw("1", "ESMED", b"padded\0", 3, 0));
    env.smsc
        .send_mo(MoMessage::raw("2", "ESMED", b"ia5\0inside", 1, 0));
    env.smsc.send_mo(MoMessage::raw(
        "3",
        "ESMED",
        &[0, b'u', 0, 0, 0, b'x'],
        8,
        0,
    ));
    let mut receipt = MoMessage::raw("4", "ESMED", b"stat:DELIVRD", 0, 0x04);
    receipt.tlvs = vec![Tlv::new(tag::RECEIPTED_MESSAGE_ID, b"ab\0cd\0".to_vec()).unwrap()];
    env.smsc.send_mo(receipt);
    for (seq, text) in [(1, &b"two\0"[..]), (2, b"parts")] {
        let mut part = vec![0x05, 0x00, 0x03, 0x42, 0x02, seq];
        part.extend_from_slice(text);
        env.smsc
            .send_mo(MoMessage::raw("5", "ESMED", &part, 3, 0x40));
    }
    assert!(
        env.smsc.wait_for_count(6, T, CommandId::DeliverSmResp),
        "{}",
        esmed.log()
    );
    let stored = || -> i64 {
        let row = env
            .db()
            .query_one("SELECT count(*) FROM smpp_rx_queue", &[]);
        row.unwrap().get(0)
    };
    wait_until(T, "five rows", &esmed, || stored() == 5);
    let rows = env
        .db()
        .query(
            "SELECT smpp_source_addr, smpp_short_message, text_invalid, receipted_message_id, \
                    pdu_raw, pdu_parsed::jsonb #>> '{}' IS NOT NULL \
             FROM smpp_rx_queue ORDER BY smpp_source_addr",
            &[],
        )
        .unwrap();
    let got: Vec<(String, String, bool, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let row = |source: &str, text: &str, invalid: bool, id: Option<&str>| {
        (source.into(), text.into(), invalid, id.map(String::from))
    };
    assert_eq!(
        got,
        [
            row("1", "padded\u{FFFD}", true, None),
            row("2", "ia5\u{FFFD}inside", true, None),
            row("3", "u\u{FFFD}x", true, None),
            row("4", "stat:DELIVRD", false, Some("ab\u{FFFD}cd")),
            row("5", "two\u{FFFD}parts", true, None),
        ]
    );
    assert!(
        rows.iter().all(|r| r.get::<_, bool>(5)),
        "pdu_parsed is jsonb"
    );
    let sent = env.smsc.sent();
    assert_eq!(sent.len(), 6, "each deliver_sm sent once: none was refused");
    let sent_hex: Vec<String> = sent
        .iter()
        .map(|s| esmed::smpp::hex(&esmed::smpp::encode_to_vec(&s.pdu).unwrap()))
        .collect();
    // Each row's pdu_raw is the PDU sent (the two parts' joined by ','), every one once.
    let mut pieces: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            let raw: String = r.get(4);
            raw.split(',').map(String::from).collect::<Vec<_>>()
        })
        .collect();
    let mut expected = sent_hex.clone();
    pieces.sort();
    expected.sort();
    assert_eq!(pieces, expected, "pdu_raw holds the octets sent");
    assert!(raws_have_nul(&rows), "the NUL octets are in pdu_raw");
    let acks = env.smsc.deliver_sm_resps();
    assert_eq!(acks.len(), 6);
    assert!(acks.iter().all(|a| a.pdu.command_status.is_ok()));
}

/// Whether the Latin-1 row's pdu_raw ends its short_message with the 0x00 pad octet.
fn raws_have_nul(rows: &[postgres::Row]) -> bool {
    let raw: String = rows[0].get(4);
    raw.contains(&esmed::smpp::hex(b"padded\0"))
}

/// A received PDU whose row an operator's rule refuses is stored in a degraded form and
/// acknowledged at its first delivery: without its text when the rule looks at the text,
/// else kept in smpp_rx_refused with PostgreSQL's reason. The messages around it are stored
/// as they came.
#[test]
fn a_message_postgresql_refuses_is_stored_degraded_and_acknowledged_once() {
    let env = Env::new("refused-mo");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    env.db()
        .batch_execute(
            "ALTER TABLE smpp_rx_queue ADD CONSTRAINT no_forbidden_words
                 CHECK (smpp_short_message NOT LIKE '%forbidden%');
             CREATE FUNCTION refuse_blocked() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.smpp_source_addr = '447700900999' THEN
                     RAISE EXCEPTION 'sender % is blocked', NEW.smpp_source_addr;
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_blocked BEFORE INSERT ON smpp_rx_queue
                 FOR EACH ROW EXECUTE FUNCTION refuse_blocked();",
        )
        .unwrap();
    let esmed = env.esmed("refused-mo", "");
    assert!(env.smsc.wait_for_bound(1, T));
    for (source, text) in [
        ("447700900001", "before"),
        ("447700900002", "a forbidden word"),
        ("447700900999", "from a blocked sender"),
        ("447700900003", "after"),
    ] {
        env.smsc
            .send_mo(MoMessage::raw(source, "ESMED", text.as_bytes(), 0, 0));
    }
    assert!(
        env.smsc.wait_for_count(4, T, CommandId::DeliverSmResp),
        "{}",
        esmed.log()
    );
    let acks = env.smsc.deliver_sm_resps();
    assert_eq!(acks.len(), 4, "each deliver_sm answered once");
    assert!(
        acks.iter().all(|a| a.pdu.command_status.is_ok()),
        "every one acknowledged: {:?}",
        acks.iter()
            .map(|a| a.pdu.command_status)
            .collect::<Vec<_>>()
    );
    assert_eq!(env.smsc.sent().len(), 4, "none delivered again");
    let stored: Vec<(String, String, bool)> = env
        .db()
        .query(
            "SELECT smpp_source_addr, smpp_short_message, text_invalid
             FROM smpp_rx_queue ORDER BY smpp_source_addr",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let row = |s: &str, t: &str, invalid| (s.to_string(), t.to_string(), invalid);
    assert_eq!(
        stored,
        [
            row("447700900001", "before", false),
            row("447700900002", "", true),
            row("447700900003", "after", false),
        ]
    );
    let degraded: String = env
        .db()
        .query_one(
            "SELECT pdu_raw FROM smpp_rx_queue WHERE smpp_source_addr = '447700900002'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        degraded.contains(&esmed::smpp::hex(b"a forbidden word")),
        "pdu_raw keeps the text"
    );
    let aside: Vec<(String, String, String)> = env
        .db()
        .query(
            "SELECT smpp_source_addr, pdu_raw, reason FROM smpp_rx_refused",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(aside[0].0, "447700900999");
    assert!(aside[0]
        .1
        .contains(&esmed::smpp::hex(b"from a blocked sender")));
    assert!(
        aside[0].2.contains("sender 447700900999 is blocked"),
        "{}",
        aside[0].2
    );
    let log = esmed.log();
    assert!(
        log.contains("refused: ") && log.contains("storing it without its text"),
        "{log}"
    );
    assert!(log.contains("keeping it in smpp_rx_refused"), "{log}");
}
