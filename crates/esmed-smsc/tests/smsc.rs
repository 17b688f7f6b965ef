//! The test SMSC driven by a raw TCP client built on the codec: binds, submits, receipts and
//! their resends, each fault, a pipelined window, MO, query_sm and garbage input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use esmed_smpp::pdu::{Bind, DataSm, MessageIdResp, QuerySm, ShortMessage, Sm};
use esmed_smpp::receipt::{parse_receipt, MessageState};
use esmed_smpp::{decode, encode, encode_to_vec, Address, Body, CommandStatus, FrameBuffer, Pdu};
use esmed_smsc::{
    BindKind, Faults, IdFormat, MoMessage, ReceiptConfig, ReceiptIdFormat, ReceiptMode, Smsc,
    SmscConfig, SmscHandle,
};

const WAIT: Duration = Duration::from_secs(5);

struct Client {
    stream: TcpStream,
    frames: FrameBuffer,
    seq: u32,
}

impl Client {
    fn connect(smsc: &SmscHandle) -> Client {
        let stream = TcpStream::connect(smsc.addr()).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            frames: FrameBuffer::new(70_000),
            seq: 0,
        }
    }

    fn send(&mut self, body: Body) -> u32 {
        self.seq += 1;
        let bytes = encode_to_vec(&Pdu::new(self.seq, body)).unwrap();
        self.stream.write_all(&bytes).unwrap();
        self.seq
    }

    /// The next PDU, or None at EOF / timeout.
    fn recv(&mut self) -> Option<Pdu> {
        loop {
            if let Some(frame) = self.frames.next_frame().unwrap() {
                return Some(decode(frame).unwrap());
            }
            match self.frames.read_from(&mut self.stream) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    fn bind(smsc: &SmscHandle, kind: BindKind, password: &str) -> (Client, Pdu) {
        let mut client = Client::connect(smsc);
        let bind = Bind {
            system_id: "esmed".try_into().unwrap(),
            password: password.try_into().unwrap(),
            interface_version: 0x34,
            ..Bind::default()
        };
        client.send(match kind {
            BindKind::Transmitter => Body::BindTransmitter(bind),
            BindKind::Receiver => Body::BindReceiver(bind),
            BindKind::Transceiver => Body::BindTransceiver(bind),
        });
        let resp = client.recv().unwrap();
        (client, resp)
    }

    fn bound(smsc: &SmscHandle, kind: BindKind) -> Client {
        let (client, resp) = Client::bind(smsc, kind, "secret");
        assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
        client
    }
}

fn submit_body(destination: &str, text: &str, registered_delivery: u8) -> Body {
    Body::SubmitSm(Box::new(Sm {
        source: Address::new(5, 0, "ESMED").unwrap(),
        destination: Address::new(1, 1, destination).unwrap(),
        registered_delivery,
        short_message: ShortMessage::new(text).unwrap(),
        ..Sm::default()
    }))
}

fn start(config: SmscConfig) -> SmscHandle {
    Smsc::start(config).unwrap()
}

fn message_id(pdu: &Pdu) -> String {
    match &pdu.body {
        Body::SubmitSmResp(r) => r.message_id.to_string(),
        other => panic!("not a submit_sm_resp: {other:?}"),
    }
}

#[test]
fn bind_ok_carries_interface_version_and_wrong_password_is_refused() {
    let smsc = start(SmscConfig::default());
    let (_ok, resp) = Client::bind(&smsc, BindKind::Transceiver, "secret");
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let Body::BindTransceiverResp(body) = &resp.body else {
        panic!("{resp:?}")
    };
    assert_eq!(body.system_id.as_bytes(), b"esmed-smsc");
    assert_eq!(body.tlvs[0].value, vec![0x34]);
    let (mut bad, resp) = Client::bind(&smsc, BindKind::Transmitter, "wrong");
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVPASWD);
    // Header-only on error.
    assert_eq!(encode_to_vec(&resp).unwrap().len(), 16);
    bad.send(submit_body("4477", "x", 0));
    assert_eq!(
        bad.recv().unwrap().command_status,
        CommandStatus::ESME_RINVBNDSTS
    );
    assert!(smsc.wait_for_bound(1, WAIT));
    assert_eq!(smsc.binds().len(), 2);
}

#[test]
fn submits_get_unique_ids_and_are_journaled() {
    let smsc = start(SmscConfig {
        id_format: IdFormat::HexUpper,
        first_message_id: 255,
        ..SmscConfig::default()
    });
    let mut client = Client::bound(&smsc, BindKind::Transmitter);
    client.send(submit_body("447700900001", "one", 0));
    client.send(submit_body("447700900002", "two", 0));
    let a = client.recv().unwrap();
    let b = client.recv().unwrap();
    assert_eq!(
        (message_id(&a), message_id(&b)),
        ("FF".into(), "100".into())
    );
    assert!(smsc.wait_for_submits(2, WAIT));
    let submits = smsc.submits();
    let Body::SubmitSm(sm) = &submits[1].pdu.body else {
        panic!()
    };
    assert_eq!(sm.short_message, b"two");
    assert_eq!(decode(&submits[1].raw).unwrap(), submits[1].pdu);
    assert_eq!(smsc.submit_count(), 2);
    client.send(Body::EnquireLink);
    assert_eq!(client.recv().unwrap().body, Body::EnquireLinkResp);
    client.send(Body::Unbind);
    assert_eq!(client.recv().unwrap().body, Body::UnbindResp);
    assert!(client.recv().is_none(), "closed after unbind_resp");
    assert_eq!(smsc.unbinds().len(), 1);
}

#[test]
fn receipts_arrive_on_the_receiver_and_are_resent_without_resp() {
    let smsc = start(SmscConfig {
        receipts: ReceiptMode::After(ReceiptConfig {
            text_id_format: ReceiptIdFormat::Decimal10,
            ..ReceiptConfig::after(Duration::from_millis(50))
        }),
        id_format: IdFormat::HexUpper,
        first_message_id: 26,
        deliver_resend_after: Duration::from_millis(200),
        deliver_max_resends: 2,
        ..SmscConfig::default()
    });
    let mut tx = Client::bound(&smsc, BindKind::Transmitter);
    let mut rx = Client::bound(&smsc, BindKind::Receiver);
    tx.send(submit_body("447700900123", "Hello receipts", 1));
    assert_eq!(message_id(&tx.recv().unwrap()), "1A");
    let first = rx.recv().unwrap();
    let Body::DeliverSm(sm) = &first.body else {
        panic!("{first:?}")
    };
    assert_eq!(sm.esm_class, 0x04);
    assert_eq!(sm.source.addr.as_bytes(), b"447700900123");
    let text = String::from_utf8(sm.short_message.to_vec()).unwrap();
    assert!(
        text.starts_with("id:0000000026 sub:001 dlvrd:001 submit date:"),
        "{text}"
    );
    assert!(
        text.ends_with("stat:DELIVRD err:000 text:Hello receipts"),
        "{text}"
    );
    let receipt = parse_receipt(&text, &sm.tlvs).unwrap();
    assert_eq!(receipt.message_id, "1A");
    assert_eq!(receipt.state, Some(MessageState::Delivered));
    // No response: sent again (new sequence number), at most 1 + 2 times.
    let second = rx.recv().unwrap();
    assert_eq!(second.body, first.body);
    assert_ne!(second.sequence_number, first.sequence_number);
    let third = rx.recv().unwrap();
    let resp = Body::DeliverSmResp(MessageIdResp::default());
    rx.send_resp(third.sequence_number, resp);
    assert!(smsc.wait_for(WAIT, |all| all
        .iter()
        .any(|r| matches!(r.pdu.body, Body::DeliverSmResp(_)))));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(smsc.sent().len(), 3);
    assert_eq!(smsc.stats().outstanding_delivers, 0);
    // A submit that did not ask for a receipt gets none.
    tx.send(submit_body("447700900123", "quiet", 0));
    tx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(smsc.sent().len(), 3);
}

trait SendResp {
    fn send_resp(&mut self, seq: u32, body: Body);
}

impl SendResp for Client {
    fn send_resp(&mut self, seq: u32, body: Body) {
        let bytes = encode_to_vec(&Pdu::new(seq, body)).unwrap();
        self.stream.write_all(&bytes).unwrap();
    }
}

#[test]
fn intermediate_enroute_then_final_and_query_sm() {
    let smsc = start(SmscConfig {
        receipts: ReceiptMode::After(ReceiptConfig {
            intermediate_enroute: true,
            final_state: MessageState::Undeliverable,
            tlvs: false,
            only_when_requested: false,
            ..ReceiptConfig::after(Duration::from_millis(100))
        }),
        ..SmscConfig::default()
    });
    let mut trx = Client::bound(&smsc, BindKind::Transceiver);
    trx.send(submit_body("4477", "x", 0));
    let id = message_id(&trx.recv().unwrap());
    trx.send(Body::QuerySm(QuerySm {
        message_id: id.as_str().try_into().unwrap(),
        source: Address::new(5, 0, "ESMED").unwrap(),
    }));
    let Body::QuerySmResp(q) = trx.recv().unwrap().body else {
        panic!()
    };
    assert_eq!(q.message_state, MessageState::Enroute.value());
    let mut states = Vec::new();
    for _ in 0..2 {
        let pdu = trx.recv().unwrap();
        let Body::DeliverSm(sm) = &pdu.body else {
            panic!("{pdu:?}")
        };
        assert!(sm.tlvs.is_empty());
        let text = String::from_utf8(sm.short_message.to_vec()).unwrap();
        states.push((sm.esm_class, parse_receipt(&text, &[]).unwrap().state));
        trx.send_resp(
            pdu.sequence_number,
            Body::DeliverSmResp(MessageIdResp::default()),
        );
    }
    assert_eq!(
        states,
        vec![
            (0x20, Some(MessageState::Enroute)),
            (0x04, Some(MessageState::Undeliverable))
        ]
    );
    trx.send(Body::QuerySm(QuerySm {
        message_id: id.as_str().try_into().unwrap(),
        source: Address::default(),
    }));
    let Body::QuerySmResp(q) = trx.recv().unwrap().body else {
        panic!()
    };
    assert_eq!(q.message_state, MessageState::Undeliverable.value());
    assert_eq!(q.final_date.as_bytes().len(), 16);
    // And a late, contradicting receipt on demand.
    smsc.send_receipt(&id, MessageState::Enroute).unwrap();
    assert!(matches!(trx.recv().unwrap().body, Body::DeliverSm(_)));
    assert!(smsc.send_receipt("nope", MessageState::Delivered).is_err());
}

#[test]
fn the_deliver_window_holds_deliver_sm_back_until_one_is_answered() {
    let smsc = start(SmscConfig {
        deliver_window: Some(2),
        ..SmscConfig::default()
    });
    let mut rx = Client::bound(&smsc, BindKind::Receiver);
    for n in 1..=5 {
        smsc.send_mo(MoMessage::text("447700900999", "ESMED", &format!("mo {n}")));
    }
    let first = rx.recv().unwrap();
    let second = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(smsc.sent().len(), 2, "two in flight at most");
    rx.send_resp(
        first.sequence_number,
        Body::DeliverSmResp(MessageIdResp::default()),
    );
    let third = rx.recv().unwrap();
    assert!(matches!(third.body, Body::DeliverSm(_)), "{third:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(smsc.sent().len(), 3, "one answer, one more");
    for pdu in [second, third] {
        rx.send_resp(
            pdu.sequence_number,
            Body::DeliverSmResp(MessageIdResp::default()),
        );
    }
    for _ in 0..2 {
        let pdu = rx.recv().unwrap();
        rx.send_resp(
            pdu.sequence_number,
            Body::DeliverSmResp(MessageIdResp::default()),
        );
    }
    assert!(smsc.wait_for_sent(WAIT, |sent| sent.len() == 5));
}

#[test]
fn mo_goes_to_the_receiver_and_waits_for_one() {
    let smsc = start(SmscConfig::default());
    smsc.send_mo(MoMessage::text("447700900999", "ESMED", "Hi 😀"));
    std::thread::sleep(Duration::from_millis(50));
    let mut tx = Client::bound(&smsc, BindKind::Transmitter);
    let mut rx = Client::bound(&smsc, BindKind::Receiver);
    let pdu = rx.recv().unwrap();
    let Body::DeliverSm(sm) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(sm.data_coding, 8);
    assert_eq!(sm.source.addr.as_bytes(), b"447700900999");
    assert_eq!(sm.destination.ton, 5);
    rx.send_resp(
        pdu.sequence_number,
        Body::DeliverSmResp(MessageIdResp::default()),
    );
    assert!(smsc.wait_for(WAIT, |all| all
        .iter()
        .any(|r| matches!(r.pdu.body, Body::DeliverSmResp(_)))));
    let resp_at = smsc.deliver_sm_resps()[0].at;
    assert!(resp_at >= smsc.sent()[0].at);
    // Raw bytes for hostile tests go to the receiver as they are.
    smsc.deliver_raw(&[0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 9])
        .unwrap();
    assert_eq!(rx.recv().unwrap().body, Body::EnquireLink);
    tx.send(Body::EnquireLink);
    assert_eq!(tx.recv().unwrap().body, Body::EnquireLinkResp);
}

/// An MO whose address cannot go in a deliver_sm is dropped, and the one after it goes.
#[test]
fn an_mo_that_does_not_fit_a_deliver_sm_is_dropped() {
    let smsc = start(SmscConfig::default());
    let mut rx = Client::bound(&smsc, BindKind::Receiver);
    smsc.send_mo(MoMessage::text(
        &"4".repeat(21),
        "ESMED",
        "too long a sender",
    ));
    smsc.send_mo(MoMessage::text("447700900999", "ESMED", "fits"));
    let pdu = rx.recv().unwrap();
    let Body::DeliverSm(sm) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(sm.source.addr.as_bytes(), b"447700900999");
}

/// A data_sm's addresses may hold 64 characters, its receipt's (a deliver_sm) only 20: the
/// SMSC refuses a data_sm it could not send the receipt of.
#[test]
fn a_data_sm_whose_receipt_could_not_carry_its_addresses_is_refused() {
    let smsc = start(SmscConfig::default());
    let mut tx = Client::bound(&smsc, BindKind::Transmitter);
    let data_sm = |source: &str, destination: &str| {
        Body::DataSm(Box::new(DataSm {
            source: Address::new(5, 0, source).unwrap(),
            destination: Address::new(1, 1, destination).unwrap(),
            ..DataSm::default()
        }))
    };
    let cases = [
        ("ESMED", "447700900123", CommandStatus::ESME_ROK),
        ("ESMED", &"4".repeat(21), CommandStatus::ESME_RINVDSTADR),
        (
            &"E".repeat(21),
            "447700900123",
            CommandStatus::ESME_RINVSRCADR,
        ),
    ];
    for (source, destination, status) in cases {
        tx.send(data_sm(source, destination));
        let resp = tx.recv().unwrap();
        assert!(matches!(resp.body, Body::DataSmResp(_)), "{resp:?}");
        assert_eq!(resp.command_status, status, "{source} {destination}");
    }
}

#[test]
fn throttle_every_and_permanent_prefix_and_transient() {
    let smsc = start(SmscConfig {
        faults: Faults {
            throttle_every: Some(3),
            permanent_error_prefix: Some(("999".into(), CommandStatus::ESME_RINVDSTADR)),
            ..Faults::default()
        },
        ..SmscConfig::default()
    });
    let mut c = Client::bound(&smsc, BindKind::Transceiver);
    let mut statuses = Vec::new();
    for dest in ["1", "999", "2", "3", "4", "5"] {
        c.send(submit_body(dest, "x", 0));
        statuses.push(c.recv().unwrap().command_status);
    }
    use CommandStatus as S;
    assert_eq!(
        statuses,
        vec![
            S::ESME_ROK,
            S::ESME_RINVDSTADR,
            S::ESME_RTHROTTLED,
            S::ESME_ROK,
            S::ESME_ROK,
            S::ESME_RTHROTTLED
        ]
    );
    smsc.set_faults(Faults {
        transient_error_every: Some((2, CommandStatus::ESME_RSYSERR)),
        ..Faults::default()
    });
    c.send(submit_body("1", "x", 0));
    c.send(submit_body("1", "x", 0));
    assert_eq!(c.recv().unwrap().command_status, S::ESME_ROK);
    assert_eq!(c.recv().unwrap().command_status, S::ESME_RSYSERR);
}

#[test]
fn never_answer_and_delay() {
    let smsc = start(SmscConfig {
        faults: Faults {
            never_answer_every: Some(2),
            response_delay: Some(Duration::from_millis(150)),
            ..Faults::default()
        },
        ..SmscConfig::default()
    });
    let mut c = Client::bound(&smsc, BindKind::Transmitter);
    let t0 = Instant::now();
    let s1 = c.send(submit_body("1", "x", 0));
    let _s2 = c.send(submit_body("1", "x", 0));
    let s3 = c.send(submit_body("1", "x", 0));
    assert_eq!(c.recv().unwrap().sequence_number, s1);
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_eq!(c.recv().unwrap().sequence_number, s3);
    c.send(Body::EnquireLink);
    assert_eq!(c.recv().unwrap().body, Body::EnquireLinkResp);
}

#[test]
fn drop_after_closes_without_answering_the_nth_once() {
    let smsc = start(SmscConfig {
        faults: Faults {
            drop_after: Some(3),
            ..Faults::default()
        },
        ..SmscConfig::default()
    });
    let mut c = Client::bound(&smsc, BindKind::Transmitter);
    for _ in 0..2 {
        c.send(submit_body("1", "x", 0));
        assert!(c.recv().unwrap().command_status.is_ok());
    }
    c.send(submit_body("1", "x", 0));
    assert!(c.recv().is_none(), "connection cut");
    assert!(smsc.wait_for_submits(3, WAIT));
    let mut again = Client::bound(&smsc, BindKind::Transmitter);
    again.send(submit_body("1", "x", 0));
    assert!(again.recv().unwrap().command_status.is_ok());
}

#[test]
fn max_rate_throttles_above_the_cap() {
    let smsc = start(SmscConfig {
        faults: Faults {
            max_rate: Some(5),
            ..Faults::default()
        },
        ..SmscConfig::default()
    });
    let mut c = Client::bound(&smsc, BindKind::Transmitter);
    for _ in 0..20 {
        c.send(submit_body("1", "x", 0));
    }
    let throttled = (0..20)
        .filter(|_| c.recv().unwrap().command_status == CommandStatus::ESME_RTHROTTLED)
        .count();
    // All 20 normally land in one second; a second boundary in the middle allows 5 more.
    assert!((10..=15).contains(&throttled), "{throttled}");
}

#[test]
fn a_thousand_pipelined_submits_with_window_50_are_all_answered() {
    let smsc = start(SmscConfig {
        journal_in_memory: false,
        ..SmscConfig::default()
    });
    let mut c = Client::bound(&smsc, BindKind::Transmitter);
    let mut sent = 0;
    let mut answered = std::collections::HashSet::new();
    let mut batch = Vec::new();
    while answered.len() < 1_000 {
        while sent < 1_000 && sent - answered.len() < 50 {
            sent += 1;
            let pdu = Pdu::new(sent as u32 + 100, submit_body("4477", "pipelined", 0));
            encode(&pdu, &mut batch).unwrap();
        }
        c.stream.write_all(&batch).unwrap();
        batch.clear();
        let resp = c.recv().unwrap();
        assert!(resp.command_status.is_ok());
        assert!(answered.insert(message_id(&resp)));
    }
    assert_eq!(smsc.submit_count(), 1_000);
    assert!(smsc.received().is_empty());
}

#[test]
fn garbage_gets_a_nack_and_a_close_and_the_smsc_lives_on() {
    let smsc = start(SmscConfig::default());
    // A bad command_length: generic_nack ESME_RINVCMDLEN, then close.
    let mut c = Client::connect(&smsc);
    c.stream
        .write_all(&[0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef])
        .unwrap();
    let nack = c.recv().unwrap();
    assert_eq!(nack.body, Body::GenericNack);
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDLEN);
    assert!(c.recv().is_none());
    // Unknown command id: generic_nack ESME_RINVCMDID, connection stays.
    let mut c = Client::connect(&smsc);
    c.stream
        .write_all(&[0, 0, 0, 16, 0, 0, 0x77, 0x77, 0, 0, 0, 0, 0, 0, 0, 5])
        .unwrap();
    let nack = c.recv().unwrap();
    assert_eq!(
        (nack.command_status, nack.sequence_number),
        (CommandStatus::ESME_RINVCMDID, 5)
    );
    // A truncated submit_sm body: generic_nack, connection stays.
    c.stream
        .write_all(&[0, 0, 0, 20, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 6, 1, 2, 3, 4])
        .unwrap();
    assert_eq!(c.recv().unwrap().body, Body::GenericNack);
    // Random bytes on many connections.
    let mut seed = 0x1234_5678_u64;
    for _ in 0..20 {
        let mut c = Client::connect(&smsc);
        let bytes: Vec<u8> = (0..600)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = c.stream.write_all(&bytes);
        let mut sink = Vec::new();
        let _ = c.stream.read_to_end(&mut sink);
    }
    let mut ok = Client::bound(&smsc, BindKind::Transmitter);
    ok.send(submit_body("1", "still alive", 0));
    assert!(ok.recv().unwrap().command_status.is_ok());
}

#[test]
fn stop_closes_connections() {
    let mut smsc = start(SmscConfig::default());
    let mut c = Client::bound(&smsc, BindKind::Transceiver);
    smsc.stop();
    assert!(c.recv().is_none());
    assert!(TcpStream::connect(smsc.addr()).is_err());
}
