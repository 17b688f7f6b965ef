//! Property tests: decode(encode(x)) == x for generated PDUs of every type with arbitrary
//! TLVs, and decode never panics on random, truncated or corrupted frames; whatever it
//! decodes from them (over-long strings included) encodes, to the same PDU.

use proptest::collection::vec;
use proptest::prelude::*;

use super::{decode, encode, encode_checked_submit_sm, encode_to_vec, CheckedSm};
use crate::frame::{FrameBuffer, DEFAULT_MAX_PDU_LEN};
use crate::pdu::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, MessageIdResp, Outbind, QuerySm,
    QuerySmResp, ShortMessage, Sm,
};
use crate::{Address, Body, COctet, CommandStatus, Pdu, SmppTime, Tlv};

/// Any C-octet string the field's type accepts: up to `MAX - 1` non-NUL octets.
fn cstr<const MAX: usize>() -> impl Strategy<Value = COctet<MAX>> {
    vec(1u8..=255, 0..MAX).prop_map(|bytes| COctet::new(bytes).unwrap())
}

/// A string as a peer may send it: non-NUL octets, up to twice what the field allows.
fn peer_cstr<const MAX: usize>() -> impl Strategy<Value = COctet<MAX>> {
    vec(1u8..=255, 0..2 * MAX).prop_map(|bytes| COctet::from_peer(&bytes))
}

fn time() -> impl Strategy<Value = SmppTime> {
    prop_oneof![
        Just(SmppTime::EMPTY),
        vec(b'0'..=b'9', 16).prop_map(|bytes| SmppTime::new(bytes).unwrap())
    ]
}

fn peer_time() -> impl Strategy<Value = SmppTime> {
    vec(1u8..=255, 0..40).prop_map(|bytes| SmppTime::from_peer(&bytes))
}

fn address<const MAX: usize>() -> impl Strategy<Value = Address<MAX>> {
    (any::<u8>(), any::<u8>(), cstr()).prop_map(|(ton, npi, addr)| Address { ton, npi, addr })
}

fn peer_address() -> impl Strategy<Value = Address> {
    (any::<u8>(), any::<u8>(), peer_cstr()).prop_map(|(ton, npi, addr)| Address { ton, npi, addr })
}

fn tlvs() -> impl Strategy<Value = Vec<Tlv>> {
    vec(
        (any::<u16>(), vec(any::<u8>(), 0..40))
            .prop_map(|(tag, value)| Tlv::new(tag, value).unwrap()),
        0..4,
    )
}

fn bind() -> impl Strategy<Value = Bind> {
    (cstr(), cstr(), cstr(), any::<[u8; 3]>(), cstr()).prop_map(
        |(system_id, password, system_type, [interface_version, addr_ton, addr_npi], range)| Bind {
            system_id,
            password,
            system_type,
            interface_version,
            addr_ton,
            addr_npi,
            address_range: range,
        },
    )
}

fn sm() -> impl Strategy<Value = Sm> {
    let addressing = (cstr(), address(), address());
    let flags = any::<[u8; 7]>();
    let content = (time(), time(), vec(any::<u8>(), 0..=254), tlvs());
    (addressing, flags, content).prop_map(|((service_type, source, destination), f, c)| Sm {
        service_type,
        source,
        destination,
        esm_class: f[0],
        protocol_id: f[1],
        priority_flag: f[2],
        schedule_delivery_time: c.0,
        validity_period: c.1,
        registered_delivery: f[3],
        replace_if_present_flag: f[4],
        data_coding: f[5],
        sm_default_msg_id: f[6],
        short_message: ShortMessage::new(c.2).unwrap(),
        tlvs: c.3,
    })
}

fn data_sm() -> impl Strategy<Value = DataSm> {
    (cstr(), address(), address(), any::<[u8; 3]>(), tlvs()).prop_map(
        |(service_type, source, destination, flags, tlvs)| DataSm {
            service_type,
            source,
            destination,
            esm_class: flags[0],
            registered_delivery: flags[1],
            data_coding: flags[2],
            tlvs,
        },
    )
}

fn message_id_resp() -> impl Strategy<Value = MessageIdResp> {
    (cstr(), tlvs()).prop_map(|(message_id, tlvs)| MessageIdResp { message_id, tlvs })
}

fn bind_resp() -> impl Strategy<Value = BindResp> {
    (cstr(), tlvs()).prop_map(|(system_id, tlvs)| BindResp { system_id, tlvs })
}

fn other_body() -> impl Strategy<Value = Body> {
    // Ids esmed does not decode: replace_sm, submit_multi and their responses, outbind's
    // reserved response id, and the extension range.
    let id = prop_oneof![
        Just(0x0000_0007u32),
        Just(0x8000_0007),
        Just(0x0000_0021),
        Just(0x8000_0021),
        Just(0x8000_000B),
        0x0000_0104u32..0x0001_0000,
    ];
    (id, vec(any::<u8>(), 0..64)).prop_map(|(command_id, body)| Body::Other { command_id, body })
}

fn requests() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::Unbind),
        Just(Body::EnquireLink),
        bind().prop_map(Body::BindReceiver),
        bind().prop_map(Body::BindTransmitter),
        bind().prop_map(Body::BindTransceiver),
        (cstr(), cstr()).prop_map(|(system_id, password)| Body::Outbind(Outbind {
            system_id,
            password
        })),
        sm().prop_map(|sm| Body::SubmitSm(Box::new(sm))),
        sm().prop_map(|sm| Body::DeliverSm(Box::new(sm))),
        data_sm().prop_map(|d| Body::DataSm(Box::new(d))),
        (cstr(), address())
            .prop_map(|(message_id, source)| Body::QuerySm(QuerySm { message_id, source })),
        (cstr(), cstr(), address(), address()).prop_map(|(s, m, src, dst)| {
            Body::CancelSm(CancelSm {
                service_type: s,
                message_id: m,
                source: src,
                destination: dst,
            })
        }),
        (address(), address(), tlvs()).prop_map(|(source, esme, tlvs)| {
            Body::AlertNotification(AlertNotification { source, esme, tlvs })
        }),
    ]
}

fn responses() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::GenericNack),
        Just(Body::UnbindResp),
        Just(Body::EnquireLinkResp),
        Just(Body::CancelSmResp),
        bind_resp().prop_map(Body::BindReceiverResp),
        bind_resp().prop_map(Body::BindTransmitterResp),
        bind_resp().prop_map(Body::BindTransceiverResp),
        message_id_resp().prop_map(Body::SubmitSmResp),
        message_id_resp().prop_map(Body::DeliverSmResp),
        message_id_resp().prop_map(Body::DataSmResp),
        (cstr(), time(), any::<[u8; 2]>()).prop_map(|(message_id, final_date, b)| {
            Body::QuerySmResp(QuerySmResp {
                message_id,
                final_date,
                message_state: b[0],
                error_code: b[1],
            })
        }),
    ]
}

fn pdus() -> impl Strategy<Value = Pdu> {
    let status = prop_oneof![Just(0u32), Just(0x58), any::<u32>()];
    let body = prop_oneof![requests(), responses(), other_body()];
    (status, any::<u32>(), body).prop_map(|(status, sequence_number, body)| Pdu {
        command_status: CommandStatus(status),
        sequence_number,
        body,
    })
}

/// Rewrites command_length to the frame's size so decode gets past the length check.
fn fix_length(frame: &mut [u8]) {
    if frame.len() >= 4 {
        let len = (frame.len() as u32).to_be_bytes();
        frame[..4].copy_from_slice(&len);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn decode_inverts_encode(pdu in pdus()) {
        let wire = encode_to_vec(&pdu).unwrap();
        prop_assert_eq!(decode(&wire).unwrap(), pdu);
    }

    /// The decoder keeps a peer's over-long strings and odd time fields; encoding such a
    /// PDU gives back exactly the bytes received.
    #[test]
    fn a_deliver_sm_from_a_lenient_peer_encodes_back_byte_exact(
        strings in (peer_cstr(), peer_address(), peer_address(), peer_time(), peer_time()),
        short_message in vec(any::<u8>(), 0..=255),
    ) {
        let (service_type, source, destination, schedule_delivery_time, validity_period) = strings;
        let sm = Sm {
            service_type,
            source,
            destination,
            schedule_delivery_time,
            validity_period,
            short_message: ShortMessage::from_peer(&short_message),
            ..Sm::default()
        };
        let wire = encode_to_vec(&Pdu::new(3, Body::DeliverSm(Box::new(sm)))).unwrap();
        let decoded = decode(&wire).unwrap();
        prop_assert_eq!(encode_to_vec(&decoded).unwrap(), wire);
    }

    #[test]
    fn a_submit_sm_the_encoder_takes_is_checked_and_encodes_alike(sm in sm(), seq in any::<u32>()) {
        let wire = encode_to_vec(&Pdu::new(seq, Body::SubmitSm(Box::new(sm.clone())))).unwrap();
        let mut out = Vec::new();
        encode_checked_submit_sm(seq, &CheckedSm::new(sm).unwrap(), &mut out);
        prop_assert_eq!(out, wire);
    }

    #[test]
    fn decode_survives_truncated_and_corrupted_frames(
        pdu in pdus(),
        cut in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut wire = encode_to_vec(&pdu).unwrap();
        wire.truncate(cut.index(wire.len() + 1));
        for (at, value) in flips {
            if !wire.is_empty() {
                let i = at.index(wire.len());
                wire[i] = value;
            }
        }
        let _ = decode(&wire);
        fix_length(&mut wire);
        if let Ok(pdu) = decode(&wire) {
            prop_assert_eq!(decode(&encode_to_vec(&pdu).unwrap()).unwrap(), pdu);
        }
    }

    #[test]
    fn decode_survives_random_bytes(mut bytes in vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes);
        fix_length(&mut bytes);
        if let Ok(pdu) = decode(&bytes) {
            prop_assert_eq!(decode(&encode_to_vec(&pdu).unwrap()).unwrap(), pdu);
        }
    }

    #[test]
    fn frame_buffer_gives_back_each_pdu_whatever_the_chunking(
        pdus in vec(pdus(), 1..6),
        chunk in 1usize..200,
    ) {
        let mut stream = Vec::new();
        for pdu in &pdus {
            encode(pdu, &mut stream).unwrap();
        }
        let mut buffer = FrameBuffer::new(DEFAULT_MAX_PDU_LEN);
        let mut decoded = Vec::new();
        for piece in stream.chunks(chunk) {
            prop_assert_eq!(buffer.push(piece), piece.len());
            while let Some(frame) = buffer.next_frame().unwrap() {
                decoded.push(decode(frame).unwrap());
            }
        }
        prop_assert_eq!(decoded, pdus);
    }
}
