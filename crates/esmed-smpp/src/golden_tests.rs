//! Golden vectors: every PDU type as exact wire bytes. Worked examples (those the end-to-end
//! tests use too live in `smpp::reference`) are copied verbatim; the other PDU types are
//! written by hand from the specification's layout tables, one commented line per field. Each vector must
//! encode to exactly its bytes and decode back to exactly its PDU.

use super::codec::{decode, encode_checked_submit_sm, encode_submit_sm, encode_to_vec, CheckedSm};
use super::pdu::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, MessageIdResp, Outbind, QuerySm,
    QuerySmResp, ShortMessage, Sm,
};
use super::reference::{
    self, BIND_TRANSCEIVER, RECEIPT_DELIVER_SM, SUBMIT_SM_HELLO, UCS2_SAR_PART_2, UCS2_UDH_PART_1,
    UCS2_UDH_PART_2,
};
use super::tlv::tag;
use super::{Address, Body, CommandId, CommandStatus, Pdu, Tlv};

/// A hex dump's octets (see [`reference::dump_bytes`]); the dumps here are all well formed.
fn bytes(dump: &str) -> Vec<u8> {
    reference::dump_bytes(dump).unwrap()
}

/// One commented line per field, joined.
fn fields(lines: &[&str]) -> Vec<u8> {
    bytes(&lines.join(" "))
}

fn pdu(sequence_number: u32, command_status: CommandStatus, body: Body) -> Pdu {
    Pdu {
        command_status,
        sequence_number,
        body,
    }
}

const OK: CommandStatus = CommandStatus::ESME_ROK;

/// The examples' addressing: from "ESMED" (TON 5, NPI 0) to 447700900123 (TON 1, NPI 1).
fn esmed_to_handset(registered_delivery: u8, data_coding: u8) -> Sm {
    Sm {
        source: Address::new(5, 0, "ESMED").unwrap(),
        destination: Address::new(1, 1, "447700900123").unwrap(),
        registered_delivery,
        data_coding,
        ..Sm::default()
    }
}

/// The 132 UCS2 octets of the long-message example's part 1 (after the 6-octet UDH at offset 50).
fn ucs2_part_1_text() -> Vec<u8> {
    bytes(UCS2_UDH_PART_1)[56..].to_vec()
}

/// The 22 UCS2 octets of its part 2.
fn ucs2_part_2_text() -> Vec<u8> {
    bytes(UCS2_UDH_PART_2)[56..].to_vec()
}

fn ucs2_udh_part(part: u8, text: Vec<u8>) -> Body {
    let mut short_message = vec![0x05, 0x00, 0x03, 0x2A, 0x02, part];
    short_message.extend(text);
    Body::SubmitSm(Box::new(Sm {
        esm_class: 0x40,
        short_message: ShortMessage::new(short_message).unwrap(),
        ..esmed_to_handset(1, 0x08)
    }))
}

fn ucs2_sar_part(part: u8, text: Vec<u8>) -> Body {
    Body::SubmitSm(Box::new(Sm {
        short_message: ShortMessage::new(text).unwrap(),
        tlvs: vec![
            Tlv::u16(tag::SAR_MSG_REF_NUM, 0x2A),
            Tlv::u8(tag::SAR_TOTAL_SEGMENTS, 2),
            Tlv::u8(tag::SAR_SEGMENT_SEQNUM, part),
        ],
        ..esmed_to_handset(1, 0x08)
    }))
}

/// The fixed part of the long-message example's submit_sm body (offsets 16–48), esm_class given.
fn ucs2_fixed_fields(esm_class: &str) -> Vec<u8> {
    fields(&[
        "00",                                           // service_type ""
        "05 00 45 53 4D 45 44 00",                      // source 5/0 "ESMED"
        "01 01 34 34 37 37 30 30 39 30 30 31 32 33 00", // destination 1/1 "447700900123"
        esm_class,                                      // esm_class
        "00 00 00 00",                                  // protocol_id, priority, schedule, validity
        "01 00 08 00", // registered_delivery, replace, UCS2, default id
    ])
}

fn worked_examples() -> Vec<(&'static str, Pdu, Vec<u8>)> {
    let mut sar_part_1 = bytes("00 00 00 C6 00 00 00 04 00 00 00 00 00 00 00 05");
    sar_part_1.extend(ucs2_fixed_fields("00"));
    sar_part_1.push(0x84); // sm_length = 132
    sar_part_1.extend(ucs2_part_1_text());
    sar_part_1.extend(bytes("02 0C 00 02 00 2A  02 0E 00 01 02  02 0F 00 01 01"));

    let mut payload = bytes("00 00 00 D0 00 00 00 04 00 00 00 00 00 00 00 07");
    payload.extend(ucs2_fixed_fields("00"));
    payload.extend(bytes("00 04 24 00 9A")); // sm_length 0, message_payload of 154 octets
    payload.extend(ucs2_part_1_text());
    payload.extend(ucs2_part_2_text());
    let mut all_text = ucs2_part_1_text();
    all_text.extend(ucs2_part_2_text());

    let mut udh16_part_1 = bytes("00 00 00 BD 00 00 00 04 00 00 00 00 00 00 00 03");
    udh16_part_1.extend(ucs2_fixed_fields("40"));
    udh16_part_1.extend(bytes("8B 06 08 04 00 2A 02 01")); // sm_length 139, 16-bit ref UDH
    udh16_part_1.extend(ucs2_part_1_text());
    let mut udh16_message = bytes("06 08 04 00 2A 02 01");
    udh16_message.extend(ucs2_part_1_text());

    let receipt_text = b"id:0169552957 sub:001 dlvrd:001 submit date:2501311200 \
done date:2501311201 stat:DELIVRD err:000 text:Hello";

    vec![
        (
            "enquire_link",
            pdu(3, OK, Body::EnquireLink),
            bytes("00 00 00 10 00 00 00 15 00 00 00 00 00 00 00 03"),
        ),
        (
            "enquire_link_resp",
            pdu(3, OK, Body::EnquireLinkResp),
            bytes("00 00 00 10 80 00 00 15 00 00 00 00 00 00 00 03"),
        ),
        (
            "unbind",
            pdu(9, OK, Body::Unbind),
            bytes("00 00 00 10 00 00 00 06 00 00 00 00 00 00 00 09"),
        ),
        (
            "unbind_resp",
            pdu(9, OK, Body::UnbindResp),
            bytes("00 00 00 10 80 00 00 06 00 00 00 00 00 00 00 09"),
        ),
        (
            "generic_nack ESME_RINVCMDID",
            pdu(7, CommandStatus::ESME_RINVCMDID, Body::GenericNack),
            bytes("00 00 00 10 80 00 00 00 00 00 00 03 00 00 00 07"),
        ),
        (
            "deliver_sm_resp OK",
            pdu(0x10, OK, Body::DeliverSmResp(MessageIdResp::default())),
            bytes("00 00 00 11 80 00 00 05 00 00 00 00 00 00 00 10 00"),
        ),
        (
            "submit_sm_resp OK",
            pdu(
                2,
                OK,
                Body::SubmitSmResp(MessageIdResp {
                    message_id: "0A1B2C3D".try_into().unwrap(),
                    tlvs: vec![],
                }),
            ),
            bytes("00 00 00 19 80 00 00 04 00 00 00 00 00 00 00 02 30 41 31 42 32 43 33 44 00"),
        ),
        (
            "submit_sm_resp throttled, header only",
            pdu(
                2,
                CommandStatus::ESME_RTHROTTLED,
                Body::SubmitSmResp(MessageIdResp::default()),
            ),
            bytes("00 00 00 10 80 00 00 04 00 00 00 58 00 00 00 02"),
        ),
        (
            "UDH part 1",
            pdu(3, OK, ucs2_udh_part(1, ucs2_part_1_text())),
            bytes(UCS2_UDH_PART_1),
        ),
        (
            "UDH part 2",
            pdu(4, OK, ucs2_udh_part(2, ucs2_part_2_text())),
            bytes(UCS2_UDH_PART_2),
        ),
        (
            "SAR part 1",
            pdu(5, OK, ucs2_sar_part(1, ucs2_part_1_text())),
            sar_part_1,
        ),
        (
            "SAR part 2",
            pdu(6, OK, ucs2_sar_part(2, ucs2_part_2_text())),
            bytes(UCS2_SAR_PART_2),
        ),
        (
            "message_payload variant",
            pdu(
                7,
                OK,
                Body::SubmitSm(Box::new(Sm {
                    tlvs: vec![Tlv::new(tag::MESSAGE_PAYLOAD, all_text).unwrap()],
                    ..esmed_to_handset(1, 0x08)
                })),
            ),
            payload,
        ),
        (
            "16-bit reference UDH part 1",
            pdu(
                3,
                OK,
                Body::SubmitSm(Box::new(Sm {
                    esm_class: 0x40,
                    short_message: ShortMessage::new(udh16_message).unwrap(),
                    ..esmed_to_handset(1, 0x08)
                })),
            ),
            udh16_part_1,
        ),
        (
            "receipt deliver_sm",
            pdu(
                0x10,
                OK,
                Body::DeliverSm(Box::new(Sm {
                    source: Address::new(1, 1, "447700900123").unwrap(),
                    destination: Address::new(5, 0, "ESMED").unwrap(),
                    esm_class: 0x04,
                    short_message: ShortMessage::new(receipt_text.to_vec()).unwrap(),
                    tlvs: vec![
                        Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"0A1B2C3D").unwrap(),
                        Tlv::u8(tag::MESSAGE_STATE, 2),
                        Tlv::new(tag::NETWORK_ERROR_CODE, vec![3, 0, 0]).unwrap(),
                    ],
                    ..Sm::default()
                })),
            ),
            bytes(RECEIPT_DELIVER_SM),
        ),
        (
            "bind_transceiver",
            pdu(
                1,
                OK,
                Body::BindTransceiver(Bind {
                    system_id: "esme1".try_into().unwrap(),
                    password: "secret".try_into().unwrap(),
                    interface_version: 0x34,
                    ..Bind::default()
                }),
            ),
            bytes(BIND_TRANSCEIVER),
        ),
        (
            "bind_transceiver_resp OK",
            pdu(
                1,
                OK,
                Body::BindTransceiverResp(BindResp {
                    system_id: "SMSC".try_into().unwrap(),
                    tlvs: vec![Tlv::u8(tag::SC_INTERFACE_VERSION, 0x34)],
                }),
            ),
            bytes("00 00 00 1A 80 00 00 09 00 00 00 00 00 00 00 01 53 4D 53 43 00 02 10 00 01 34"),
        ),
        (
            "bind_transceiver_resp ESME_RINVPASWD",
            pdu(
                1,
                CommandStatus(0x0E),
                Body::BindTransceiverResp(BindResp::default()),
            ),
            bytes("00 00 00 10 80 00 00 09 00 00 00 0E 00 00 00 01"),
        ),
        (
            "submit_sm Hello",
            pdu(
                2,
                OK,
                Body::SubmitSm(Box::new(Sm {
                    short_message: ShortMessage::new(b"Hello".to_vec()).unwrap(),
                    ..esmed_to_handset(1, 0)
                })),
            ),
            bytes(SUBMIT_SM_HELLO),
        ),
    ]
}

/// PDU types without a worked example, written from the specification's layout tables.
fn hand_written() -> Vec<(&'static str, Pdu, Vec<u8>)> {
    vec![
        (
            "outbind",
            pdu(
                1,
                OK,
                Body::Outbind(Outbind {
                    system_id: "SMSC".try_into().unwrap(),
                    password: "pw".try_into().unwrap(),
                }),
            ),
            fields(&[
                "00 00 00 18",    // command_length = 16 + 5 + 3 = 24
                "00 00 00 0B",    // command_id = outbind
                "00 00 00 00",    // command_status
                "00 00 00 01",    // sequence_number = 1
                "53 4D 53 43 00", // system_id "SMSC"
                "70 77 00",       // password "pw"
            ]),
        ),
        (
            "bind_receiver",
            pdu(
                1,
                OK,
                Body::BindReceiver(Bind {
                    system_id: "esme1".try_into().unwrap(),
                    password: "secret".try_into().unwrap(),
                    system_type: "SMPP".try_into().unwrap(),
                    interface_version: 0x34,
                    addr_ton: 1,
                    addr_npi: 1,
                    address_range: "^4477".try_into().unwrap(),
                }),
            ),
            fields(&[
                "00 00 00 2B",          // command_length = 16 + 6 + 7 + 5 + 3 + 6 = 43
                "00 00 00 01",          // command_id = bind_receiver
                "00 00 00 00",          // command_status
                "00 00 00 01",          // sequence_number = 1
                "65 73 6D 65 31 00",    // system_id "esme1"
                "73 65 63 72 65 74 00", // password "secret"
                "53 4D 50 50 00",       // system_type "SMPP"
                "34",                   // interface_version 3.4
                "01",                   // addr_ton = international
                "01",                   // addr_npi = E.164
                "5E 34 34 37 37 00",    // address_range "^4477"
            ]),
        ),
        (
            "bind_transmitter",
            pdu(
                2,
                OK,
                Body::BindTransmitter(Bind {
                    system_id: "esme1".try_into().unwrap(),
                    password: "secret".try_into().unwrap(),
                    interface_version: 0x34,
                    ..Bind::default()
                }),
            ),
            fields(&[
                "00 00 00 22",          // command_length = 16 + 6 + 7 + 1 + 3 + 1 = 34
                "00 00 00 02",          // command_id = bind_transmitter
                "00 00 00 00",          // command_status
                "00 00 00 02",          // sequence_number = 2
                "65 73 6D 65 31 00",    // system_id "esme1"
                "73 65 63 72 65 74 00", // password "secret"
                "00",                   // system_type ""
                "34 00 00",             // interface_version, addr_ton, addr_npi
                "00",                   // address_range ""
            ]),
        ),
        (
            "bind_receiver_resp OK without TLVs",
            pdu(
                1,
                OK,
                Body::BindReceiverResp(BindResp {
                    system_id: "SMSC".try_into().unwrap(),
                    tlvs: vec![],
                }),
            ),
            fields(&[
                "00 00 00 15",    // command_length = 16 + 5 = 21
                "80 00 00 01",    // command_id = bind_receiver_resp
                "00 00 00 00",    // command_status = ESME_ROK
                "00 00 00 01",    // sequence_number = 1
                "53 4D 53 43 00", // system_id "SMSC"
            ]),
        ),
        (
            "bind_transmitter_resp ESME_RBINDFAIL, header only",
            pdu(
                2,
                CommandStatus(0x0D),
                Body::BindTransmitterResp(BindResp::default()),
            ),
            fields(&[
                "00 00 00 10", // command_length = 16
                "80 00 00 02", // command_id = bind_transmitter_resp
                "00 00 00 0D", // command_status = ESME_RBINDFAIL
                "00 00 00 02", // sequence_number = 2
            ]),
        ),
        (
            "data_sm with message_payload",
            pdu(
                8,
                OK,
                Body::DataSm(Box::new(DataSm {
                    source: Address::new(5, 0, "ESMED").unwrap(),
                    destination: Address::new(1, 1, "447700900123").unwrap(),
                    registered_delivery: 1,
                    tlvs: vec![Tlv::new(tag::MESSAGE_PAYLOAD, b"Hi".to_vec()).unwrap()],
                    ..DataSm::default()
                })),
            ),
            fields(&[
                "00 00 00 31",             // command_length = 16 + 1 + 8 + 15 + 3 + 6 = 49
                "00 00 01 03",             // command_id = data_sm
                "00 00 00 00",             // command_status
                "00 00 00 08",             // sequence_number = 8
                "00",                      // service_type ""
                "05 00 45 53 4D 45 44 00", // source 5/0 "ESMED"
                "01 01 34 34 37 37 30 30 39 30 30 31 32 33 00", // dest 1/1 "447700900123"
                "00",                      // esm_class
                "01",                      // registered_delivery
                "00",                      // data_coding
                "04 24 00 02 48 69",       // message_payload "Hi"
            ]),
        ),
        (
            "data_sm_resp OK",
            pdu(
                8,
                OK,
                Body::DataSmResp(MessageIdResp {
                    message_id: "0A1B2C3D".try_into().unwrap(),
                    tlvs: vec![],
                }),
            ),
            fields(&[
                "00 00 00 19",                // command_length = 16 + 9 = 25
                "80 00 01 03",                // command_id = data_sm_resp
                "00 00 00 00",                // command_status
                "00 00 00 08",                // sequence_number = 8
                "30 41 31 42 32 43 33 44 00", // message_id "0A1B2C3D"
            ]),
        ),
        (
            "data_sm_resp ESME_RDELIVERYFAILURE with a TLV",
            pdu(
                8,
                CommandStatus(0xFE),
                Body::DataSmResp(MessageIdResp {
                    message_id: "".try_into().unwrap(),
                    tlvs: vec![Tlv::u8(tag::DELIVERY_FAILURE_REASON, 3)],
                }),
            ),
            fields(&[
                "00 00 00 16",    // command_length = 16 + 1 + 5 = 22
                "80 00 01 03",    // command_id = data_sm_resp
                "00 00 00 FE",    // command_status = ESME_RDELIVERYFAILURE
                "00 00 00 08",    // sequence_number = 8
                "00",             // message_id "" (kept because a TLV follows)
                "04 25 00 01 03", // delivery_failure_reason = temporary network error
            ]),
        ),
        (
            "data_sm_resp error, header only",
            pdu(
                8,
                CommandStatus::ESME_RSYSERR,
                Body::DataSmResp(MessageIdResp::default()),
            ),
            fields(&[
                "00 00 00 10", // command_length = 16
                "80 00 01 03", // command_id = data_sm_resp
                "00 00 00 08", // command_status = ESME_RSYSERR
                "00 00 00 08", // sequence_number = 8
            ]),
        ),
        (
            "query_sm",
            pdu(
                11,
                OK,
                Body::QuerySm(QuerySm {
                    message_id: "0A1B2C3D".try_into().unwrap(),
                    source: Address::new(5, 0, "ESMED").unwrap(),
                }),
            ),
            fields(&[
                "00 00 00 21",                // command_length = 16 + 9 + 2 + 6 = 33
                "00 00 00 03",                // command_id = query_sm
                "00 00 00 00",                // command_status
                "00 00 00 0B",                // sequence_number = 11
                "30 41 31 42 32 43 33 44 00", // message_id "0A1B2C3D"
                "05 00",                      // source_addr_ton, source_addr_npi
                "45 53 4D 45 44 00",          // source_addr "ESMED"
            ]),
        ),
        (
            "query_sm_resp DELIVERED",
            pdu(
                11,
                OK,
                Body::QuerySmResp(QuerySmResp {
                    message_id: "0A1B2C3D".try_into().unwrap(),
                    final_date: "250131120100000+".try_into().unwrap(),
                    message_state: 2,
                    error_code: 0,
                }),
            ),
            fields(&[
                "00 00 00 2C",                // command_length = 16 + 9 + 17 + 2 = 44
                "80 00 00 03",                // command_id = query_sm_resp
                "00 00 00 00",                // command_status
                "00 00 00 0B",                // sequence_number = 11
                "30 41 31 42 32 43 33 44 00", // message_id "0A1B2C3D"
                "32 35 30 31 33 31 31 32 30 31 30 30 30 30 30 2B 00", // final_date
                "02",                         // message_state = DELIVERED
                "00",                         // error_code
            ]),
        ),
        (
            "cancel_sm",
            pdu(
                12,
                OK,
                Body::CancelSm(CancelSm {
                    service_type: "".try_into().unwrap(),
                    message_id: "0A1B2C3D".try_into().unwrap(),
                    source: Address::new(5, 0, "ESMED").unwrap(),
                    destination: Address::new(1, 1, "447700900123").unwrap(),
                }),
            ),
            fields(&[
                "00 00 00 31",                // command_length = 16 + 1 + 9 + 8 + 15 = 49
                "00 00 00 08",                // command_id = cancel_sm
                "00 00 00 00",                // command_status
                "00 00 00 0C",                // sequence_number = 12
                "00",                         // service_type ""
                "30 41 31 42 32 43 33 44 00", // message_id "0A1B2C3D"
                "05 00 45 53 4D 45 44 00",    // source 5/0 "ESMED"
                "01 01 34 34 37 37 30 30 39 30 30 31 32 33 00", // dest 1/1 "447700900123"
            ]),
        ),
        (
            "cancel_sm_resp",
            pdu(12, OK, Body::CancelSmResp),
            fields(&[
                "00 00 00 10", // command_length = 16
                "80 00 00 08", // command_id = cancel_sm_resp
                "00 00 00 00", // command_status
                "00 00 00 0C", // sequence_number = 12
            ]),
        ),
        (
            "alert_notification",
            pdu(
                0x20,
                OK,
                Body::AlertNotification(AlertNotification {
                    source: Address::new(1, 1, "447700900123").unwrap(),
                    esme: Address::new(5, 0, "ESMED").unwrap(),
                    tlvs: vec![Tlv::u8(tag::MS_AVAILABILITY_STATUS, 0)],
                }),
            ),
            fields(&[
                "00 00 00 2C",                                  // command_length = 16 + 15 + 8 + 5 = 44
                "00 00 01 02",                                  // command_id = alert_notification
                "00 00 00 00",                                  // command_status
                "00 00 00 20",                                  // sequence_number = 0x20
                "01 01 34 34 37 37 30 30 39 30 30 31 32 33 00", // source 1/1 "447700900123"
                "05 00 45 53 4D 45 44 00",                      // esme 5/0 "ESMED"
                "04 22 00 01 00", // ms_availability_status = available
            ]),
        ),
        (
            "replace_sm is kept raw",
            pdu(
                13,
                OK,
                Body::Other {
                    command_id: 0x0000_0007,
                    body: bytes("30 00 00 00 00 00 00 00 00 00 00"),
                },
            ),
            fields(&[
                "00 00 00 1B",                      // command_length = 16 + 11 = 27
                "00 00 00 07",                      // command_id = replace_sm
                "00 00 00 00",                      // command_status
                "00 00 00 0D",                      // sequence_number = 13
                "30 00 00 00 00 00 00 00 00 00 00", // body, not decoded
            ]),
        ),
        (
            "vendor command id is kept raw",
            pdu(
                14,
                OK,
                Body::Other {
                    command_id: 0x0001_0200,
                    body: vec![],
                },
            ),
            fields(&[
                "00 00 00 10", // command_length = 16
                "00 01 02 00", // command_id = first SMSC-vendor id
                "00 00 00 00", // command_status
                "00 00 00 0E", // sequence_number = 14
            ]),
        ),
    ]
}

fn all_vectors() -> Vec<(&'static str, Pdu, Vec<u8>)> {
    let mut vectors = worked_examples();
    vectors.extend(hand_written());
    vectors
}

#[test]
fn every_vector_encodes_to_exactly_its_bytes() {
    for (name, pdu, wire) in all_vectors() {
        assert_eq!(encode_to_vec(&pdu).unwrap(), wire, "{name}");
    }
}

/// The session encodes its submits from the borrowed body (no copy per submit), checked once
/// when built: same bytes.
#[test]
fn every_submit_sm_vector_encodes_to_its_bytes_from_a_borrowed_body() {
    let mut submits = 0;
    for (name, pdu, wire) in all_vectors() {
        if let Body::SubmitSm(sm) = &pdu.body {
            let mut out = b"before".to_vec();
            encode_submit_sm(pdu.sequence_number, sm, &mut out).unwrap();
            assert_eq!(&out[..6], b"before", "{name}");
            assert_eq!(out[6..], wire, "{name}");
            let checked = CheckedSm::new(sm.as_ref().clone()).unwrap();
            out.truncate(6);
            encode_checked_submit_sm(pdu.sequence_number, &checked, &mut out);
            assert_eq!(out[6..], wire, "{name} (checked)");
            submits += 1;
        }
    }
    assert!(submits >= 4, "only {submits} submit_sm vectors");
}

#[test]
fn every_vector_decodes_to_exactly_its_pdu() {
    for (name, pdu, wire) in all_vectors() {
        assert_eq!(decode(&wire).unwrap(), pdu, "{name}");
    }
}

#[test]
fn every_command_id_has_a_vector() {
    let covered: Vec<CommandId> = all_vectors().iter().map(|v| v.1.command_id()).collect();
    for value in [
        0x8000_0000,
        0x0000_0001,
        0x8000_0001,
        0x0000_0002,
        0x8000_0002,
        0x0000_0003,
        0x8000_0003,
        0x0000_0004,
        0x8000_0004,
        0x0000_0005,
        0x8000_0005,
        0x0000_0006,
        0x8000_0006,
        0x0000_0007,
        0x0000_0008,
        0x8000_0008,
        0x0000_0009,
        0x8000_0009,
        0x0000_000B,
        0x0000_0015,
        0x8000_0015,
        0x0000_0102,
        0x0000_0103,
        0x8000_0103,
    ] {
        assert!(covered.contains(&CommandId::from(value)), "{value:#010x}");
    }
}

#[test]
fn receipt_text_and_tlvs_sit_where_the_reference_says() {
    let wire = bytes(RECEIPT_DELIVER_SM);
    let Body::DeliverSm(sm) = decode(&wire).unwrap().body else {
        panic!("not a deliver_sm");
    };
    assert_eq!(sm.short_message.len(), 107);
    assert_eq!(
        super::tlv::find_cstring(&sm.tlvs, tag::RECEIPTED_MESSAGE_ID),
        Some(&b"0A1B2C3D"[..])
    );
}
