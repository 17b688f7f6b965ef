//! A readable JSON rendering of a PDU for logs and the raw-PDU column: names for commands,
//! statuses and TLVs, decoded text next to the raw bytes. Hand-written (no serde).
//!
//! Passwords (bind, outbind) are never rendered: they appear as `"***"`.
//!
//! Every deliver_sm is rendered for smpp_rx_queue.pdu_parsed, so the whole object is written
//! into one buffer, nested objects and arrays included, hex straight from the bytes: a
//! receipt's JSON had cost more of esmed's CPU than the rest of its handling.

use std::fmt::Write;

use super::codec::push_hex;
use super::pdu::{AlertNotification, Bind, CancelSm, DataSm, MessageIdResp, QuerySmResp, Sm};
use super::text::{self, storable::storable};
use super::tlv::tag;
use super::udh::{split_udh, Udh};
use super::{Address, Body, Pdu, Tlv};

/// The PDU as one JSON object on one line.
pub fn pdu_to_json(pdu: &Pdu) -> String {
    let mut out = String::with_capacity(512);
    let mut o = Obj::open(&mut out);
    let id = pdu.command_id();
    o.str("command", id.name().unwrap_or("unknown"));
    o.hex_number("command_id", 8, id.value());
    match pdu.command_status.name() {
        Some(name) => o.str("command_status", name),
        None => o.hex_number("command_status", 8, pdu.command_status.0),
    }
    o.num("sequence_number", pdu.sequence_number);
    body(&mut o, &pdu.body);
    o.close();
    out
}

fn body(o: &mut Obj, body: &Body) {
    match body {
        Body::BindReceiver(b) | Body::BindTransmitter(b) | Body::BindTransceiver(b) => bind(o, b),
        Body::BindReceiverResp(r) | Body::BindTransmitterResp(r) | Body::BindTransceiverResp(r) => {
            o.cstr("system_id", &r.system_id);
            tlvs(o, &r.tlvs, None);
        }
        Body::Outbind(b) => {
            o.cstr("system_id", &b.system_id);
            o.str("password", "***");
        }
        Body::SubmitSm(sm) | Body::DeliverSm(sm) => short_message_pdu(o, sm),
        Body::SubmitSmResp(r) | Body::DeliverSmResp(r) | Body::DataSmResp(r) => {
            message_id_resp(o, r)
        }
        Body::DataSm(d) => data_sm(o, d),
        Body::QuerySm(q) => {
            o.cstr("message_id", &q.message_id);
            o.addr("source", &q.source);
        }
        Body::QuerySmResp(r) => query_sm_resp(o, r),
        Body::CancelSm(c) => cancel_sm(o, c),
        Body::AlertNotification(a) => alert(o, a),
        Body::Other { body, .. } => o.hex("body", body),
        Body::GenericNack
        | Body::Unbind
        | Body::UnbindResp
        | Body::EnquireLink
        | Body::EnquireLinkResp
        | Body::CancelSmResp => {}
    }
}

fn bind(o: &mut Obj, b: &Bind) {
    o.cstr("system_id", &b.system_id);
    o.str("password", "***");
    o.cstr("system_type", &b.system_type);
    o.hex_number("interface_version", 2, b.interface_version);
    o.num("addr_ton", b.addr_ton);
    o.num("addr_npi", b.addr_npi);
    o.cstr("address_range", &b.address_range);
}

fn short_message_pdu(o: &mut Obj, sm: &Sm) {
    o.cstr("service_type", &sm.service_type);
    o.addr("source", &sm.source);
    o.addr("destination", &sm.destination);
    o.hex_number("esm_class", 2, sm.esm_class);
    o.num("protocol_id", sm.protocol_id);
    o.num("priority_flag", sm.priority_flag);
    o.cstr("schedule_delivery_time", &sm.schedule_delivery_time);
    o.cstr("validity_period", &sm.validity_period);
    o.num("registered_delivery", sm.registered_delivery);
    o.num("replace_if_present_flag", sm.replace_if_present_flag);
    o.hex_number("data_coding", 2, sm.data_coding);
    o.num("sm_default_msg_id", sm.sm_default_msg_id);
    o.num("sm_length", sm.short_message.len());
    o.hex("short_message", &sm.short_message);
    let mut user_data = sm.short_message.as_bytes();
    if sm.esm_class & 0x40 != 0 {
        match split_udh(user_data) {
            Ok((udh, rest)) => {
                o.object("udh", |o| udh_fields(o, &udh));
                user_data = rest;
            }
            Err(e) => o.str("udh_error", &e.to_string()),
        }
    }
    decoded_text(o, "text", sm.data_coding, user_data);
    tlvs(o, &sm.tlvs, Some(sm.data_coding));
}

fn decoded_text(o: &mut Obj, key: &str, data_coding: u8, bytes: &[u8]) {
    let decoded = text::decode(data_coding, bytes);
    if decoded.binary {
        return; // the hex is already there
    }
    o.str(key, &decoded.text);
    if decoded.invalid > 0 {
        o.num(&format!("{key}_invalid"), decoded.invalid);
    }
}

fn udh_fields(o: &mut Obj, udh: &Udh) {
    if let Some(c) = udh.concat {
        o.object("concat", |o| {
            o.num("reference", c.reference);
            o.num("total", c.total);
            o.num("seq", c.seq);
            o.raw("ref16", if c.ref16 { "true" } else { "false" });
        });
    }
    if let Some((destination, source)) = udh.ports {
        o.object("ports", |o| {
            o.num("destination", destination);
            o.num("source", source);
        });
    }
    if !udh.other.is_empty() {
        o.array("other", &udh.other, |o, ie| {
            o.hex_number("iei", 2, ie.iei);
            o.hex("data", &ie.data);
        });
    }
}

fn message_id_resp(o: &mut Obj, r: &MessageIdResp) {
    o.cstr("message_id", &r.message_id);
    tlvs(o, &r.tlvs, None);
}

fn data_sm(o: &mut Obj, d: &DataSm) {
    o.cstr("service_type", &d.service_type);
    o.addr("source", &d.source);
    o.addr("destination", &d.destination);
    o.hex_number("esm_class", 2, d.esm_class);
    o.num("registered_delivery", d.registered_delivery);
    o.hex_number("data_coding", 2, d.data_coding);
    tlvs(o, &d.tlvs, Some(d.data_coding));
}

fn query_sm_resp(o: &mut Obj, r: &QuerySmResp) {
    o.cstr("message_id", &r.message_id);
    o.cstr("final_date", &r.final_date);
    o.num("message_state", r.message_state);
    o.num("error_code", r.error_code);
}

fn cancel_sm(o: &mut Obj, c: &CancelSm) {
    o.cstr("service_type", &c.service_type);
    o.cstr("message_id", &c.message_id);
    o.addr("source", &c.source);
    o.addr("destination", &c.destination);
}

fn alert(o: &mut Obj, a: &AlertNotification) {
    o.addr("source", &a.source);
    o.addr("esme", &a.esme);
    tlvs(o, &a.tlvs, None);
}

/// TLVs as an array (a tag may repeat). `data_coding` decodes message_payload.
fn tlvs(o: &mut Obj, tlvs: &[Tlv], data_coding: Option<u8>) {
    if !tlvs.is_empty() {
        o.array("tlvs", tlvs, |o, t| tlv_fields(o, t, data_coding));
    }
}

fn tlv_fields(o: &mut Obj, t: &Tlv, data_coding: Option<u8>) {
    match t.name() {
        Some(name) => o.str("name", name),
        None => o.hex_number("name", 4, t.tag),
    }
    o.num("length", t.value.len());
    o.hex("value", &t.value);
    match (t.tag, t.value.as_bytes()) {
        (tag::RECEIPTED_MESSAGE_ID | tag::ADDITIONAL_STATUS_INFO_TEXT, v) => {
            let v = v.strip_suffix(&[0]).unwrap_or(v);
            o.str("decoded", &String::from_utf8_lossy(v));
        }
        (tag::MESSAGE_PAYLOAD, v) => decoded_text(o, "decoded", data_coding.unwrap_or(4), v),
        (tag::NETWORK_ERROR_CODE, [kind, hi, lo]) => o.object("decoded", |o| {
            o.num("type", kind);
            o.num("code", u16::from_be_bytes([*hi, *lo]));
        }),
        (tag, v) if t.name().is_some() && is_integer_tlv(tag) => {
            if let Some(n) = be_integer(v) {
                o.num("decoded", n);
            }
        }
        _ => {}
    }
}

/// Known tags whose value is not an integer.
fn is_integer_tlv(t: u16) -> bool {
    !matches!(
        t,
        tag::SOURCE_SUBADDRESS
            | tag::DEST_SUBADDRESS
            | tag::CALLBACK_NUM
            | tag::CALLBACK_NUM_ATAG
            | tag::ALERT_ON_MESSAGE_DELIVERY
    )
}

fn be_integer(v: &[u8]) -> Option<u32> {
    match v {
        [a] => Some(u32::from(*a)),
        [a, b] => Some(u32::from(u16::from_be_bytes([*a, *b]))),
        [a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// A JSON object being written into `out`, which its nested objects and arrays share.
struct Obj<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, empty: true }
    }

    fn close(self) {
        self.out.push('}');
    }

    /// Keys are this module's field names, which need no escaping.
    fn key(&mut self, key: &str) {
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    /// A NUL is written as U+FFFD, not `\u0000`: the JSON is stored, and PostgreSQL's jsonb
    /// (which readers cast it to) refuses `\u0000`. The exact bytes are in the hex fields.
    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_string(self.out, &storable(value));
    }

    fn cstr(&mut self, key: &str, value: &impl AsRef<[u8]>) {
        self.str(key, &String::from_utf8_lossy(value.as_ref()));
    }

    fn num(&mut self, key: &str, value: impl std::fmt::Display) {
        self.key(key);
        let _ = write!(self.out, "{value}"); // writing to a String cannot fail
    }

    /// `value` must already be JSON.
    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(value);
    }

    /// Bytes as a string of lowercase hex digits (which need no escaping).
    fn hex(&mut self, key: &str, bytes: &[u8]) {
        self.key(key);
        self.out.push('"');
        push_hex(self.out, bytes);
        self.out.push('"');
    }

    /// A number as a string "0x..." of `digits` uppercase hex digits.
    fn hex_number(&mut self, key: &str, digits: usize, value: impl std::fmt::UpperHex) {
        self.key(key);
        let _ = write!(self.out, "\"0x{value:0digits$X}\"");
    }

    fn object(&mut self, key: &str, fill: impl FnOnce(&mut Obj)) {
        self.key(key);
        let mut inner = Obj::open(self.out);
        fill(&mut inner);
        inner.close();
    }

    /// An array of objects, one per item.
    fn array<T>(&mut self, key: &str, items: &[T], fill: impl Fn(&mut Obj, &T)) {
        self.key(key);
        self.out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let mut inner = Obj::open(self.out);
            fill(&mut inner, item);
            inner.close();
        }
        self.out.push(']');
    }

    fn addr<const MAX: usize>(&mut self, key: &str, a: &Address<MAX>) {
        self.object(key, |o| {
            o.num("ton", a.ton);
            o.num("npi", a.npi);
            o.cstr("addr", &a.addr);
        });
    }
}

/// A JSON string literal: quotes, backslashes and control chars escaped, other chars as UTF-8.
/// Copies the runs between escapes whole (every escaped char is ASCII, so a run never splits
/// a UTF-8 sequence).
pub fn push_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut run_start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1F | 0x7F => "",
            _ => continue,
        };
        out.push_str(&s[run_start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", byte);
        } else {
            out.push_str(escape);
        }
        run_start = i + 1;
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{Outbind, ShortMessage};
    use crate::CommandStatus;

    /// A strict little JSON checker: Ok when `s` is exactly one valid JSON value.
    fn check_json(s: &str) -> Result<(), String> {
        let b = s.as_bytes();
        let end = value(b, ws(b, 0))?;
        if ws(b, end) == b.len() {
            Ok(())
        } else {
            Err(format!("trailing data at {end}"))
        }
    }

    fn ws(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && b" \t\r\n".contains(&b[i]) {
            i += 1;
        }
        i
    }

    fn value(b: &[u8], i: usize) -> Result<usize, String> {
        match b.get(i) {
            Some(b'{') => seq(b, i + 1, b'}', true),
            Some(b'[') => seq(b, i + 1, b']', false),
            Some(b'"') => string(b, i),
            Some(b't') if b[i..].starts_with(b"true") => Ok(i + 4),
            Some(b'f') if b[i..].starts_with(b"false") => Ok(i + 5),
            Some(b'n') if b[i..].starts_with(b"null") => Ok(i + 4),
            Some(c) if c.is_ascii_digit() || *c == b'-' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_digit() || b".eE+-".contains(&b[j])) {
                    j += 1;
                }
                Ok(j)
            }
            _ => Err(format!("bad value at {i}")),
        }
    }

    fn seq(b: &[u8], i: usize, close: u8, object: bool) -> Result<usize, String> {
        let mut i = ws(b, i);
        if b.get(i) == Some(&close) {
            return Ok(i + 1);
        }
        loop {
            if object {
                i = ws(b, string(b, i)?);
                if b.get(i) != Some(&b':') {
                    return Err(format!("expected : at {i}"));
                }
                i = ws(b, i + 1);
            }
            i = ws(b, value(b, i)?);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(c) if *c == close => return Ok(i + 1),
                _ => return Err(format!("expected , or close at {i}")),
            }
        }
    }

    fn string(b: &[u8], i: usize) -> Result<usize, String> {
        if b.get(i) != Some(&b'"') {
            return Err(format!("expected string at {i}"));
        }
        let mut j = i + 1;
        while let Some(&c) = b.get(j) {
            match c {
                b'"' => return Ok(j + 1),
                b'\\' => match b.get(j + 1) {
                    Some(b'u')
                        if b.len() > j + 5 && b[j + 2..j + 6].iter().all(u8::is_ascii_hexdigit) =>
                    {
                        j += 6
                    }
                    Some(e) if b"\"\\/bfnrt".contains(e) => j += 2,
                    _ => return Err(format!("bad escape at {j}")),
                },
                c if c < 0x20 => return Err(format!("raw control char at {j}")),
                _ => j += 1,
            }
        }
        Err("unterminated string".into())
    }

    #[test]
    fn checker_rejects_broken_json() {
        assert!(check_json(r#"{"a":[1,"x\n",{"b":null}]}"#).is_ok());
        assert!(check_json("{\"a\":\"\u{1}\"}").is_err());
        assert!(check_json(r#"{"a":1,}"#).is_err());
    }

    fn bind() -> Pdu {
        Pdu::new(
            1,
            Body::BindTransceiver(Bind {
                system_id: "esmed".try_into().unwrap(),
                password: "s3cr\"et".try_into().unwrap(),
                system_type: "".try_into().unwrap(),
                interface_version: 0x34,
                addr_ton: 0,
                addr_npi: 0,
                address_range: "".try_into().unwrap(),
            }),
        )
    }

    #[test]
    fn bind_password_never_appears() {
        let json = pdu_to_json(&bind());
        check_json(&json).unwrap();
        assert!(!json.contains("s3cr"), "{json}");
        assert!(json.contains(r#""password":"***""#));
        assert!(json.starts_with(r#"{"command":"bind_transceiver","command_id":"0x00000009","command_status":"ESME_ROK","sequence_number":1"#));
        let outbind = Pdu::new(
            2,
            Body::Outbind(Outbind {
                system_id: "smsc".try_into().unwrap(),
                password: "hunter2".try_into().unwrap(),
            }),
        );
        let json = pdu_to_json(&outbind);
        check_json(&json).unwrap();
        assert!(!json.contains("hunter2"));
    }

    #[test]
    fn submit_sm_with_udh_text_and_tlvs() {
        let mut short_message = vec![0x05, 0x00, 0x03, 0x2A, 0x02, 0x01];
        short_message.extend(text::encode("Hé \"q\"\n\u{1}😀", text::Coding::Ucs2).unwrap());
        short_message.extend([0xD8, 0x00]); // a lone surrogate
        let sm = Sm {
            source: Address::new(5, 0, "ESMED").unwrap(),
            destination: Address::new(1, 1, "447700900123").unwrap(),
            esm_class: 0x40,
            data_coding: 8,
            short_message: ShortMessage::new(short_message).unwrap(),
            tlvs: vec![
                Tlv::u16(tag::SAR_MSG_REF_NUM, 42),
                Tlv::new(tag::NETWORK_ERROR_CODE, vec![3, 0, 11]).unwrap(),
                Tlv::new(0x1401, vec![0xAB]).unwrap(),
                Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"0A1B").unwrap(),
            ],
            ..Sm::default()
        };
        let json = pdu_to_json(&Pdu::new(3, Body::SubmitSm(Box::new(sm))));
        check_json(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        for part in [
            r#""source":{"ton":5,"npi":0,"addr":"ESMED"}"#,
            r#""udh":{"concat":{"reference":42,"total":2,"seq":1,"ref16":false}}"#,
            "\"text\":\"Hé \\\"q\\\"\\n\\u0001😀\u{FFFD}\"",
            r#""text_invalid":1"#,
            r#""name":"sar_msg_ref_num","length":2,"value":"002a","decoded":42"#,
            r#""decoded":{"type":3,"code":11}"#,
            r#""name":"0x1401","length":1,"value":"ab""#,
            r#""name":"receipted_message_id","length":5,"value":"3041314200","decoded":"0A1B""#,
        ] {
            assert!(json.contains(part), "missing {part} in {json}");
        }
    }

    #[test]
    fn every_simple_body_renders_valid_json() {
        let bodies = vec![
            Body::GenericNack,
            Body::EnquireLink,
            Body::UnbindResp,
            Body::SubmitSmResp(MessageIdResp {
                message_id: "a\\b".try_into().unwrap(),
                tlvs: vec![],
            }),
            Body::QuerySmResp(QuerySmResp::default()),
            Body::CancelSm(CancelSm::default()),
            Body::DataSm(Box::new(DataSm {
                data_coding: 0,
                tlvs: vec![Tlv::new(tag::MESSAGE_PAYLOAD, vec![0x48, 0x69, 0x80]).unwrap()],
                ..DataSm::default()
            })),
            Body::AlertNotification(AlertNotification::default()),
            Body::Other {
                command_id: 0x0001_0200,
                body: vec![1, 2],
            },
            Body::DeliverSm(Box::new(Sm {
                esm_class: 0x40,
                short_message: ShortMessage::new(vec![9, 9]).unwrap(),
                ..Sm::default()
            })),
        ];
        for body in bodies {
            let mut pdu = Pdu::new(7, body);
            pdu.command_status = CommandStatus(0x401);
            let json = pdu_to_json(&pdu);
            check_json(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
            assert!(json.contains(r#""command_status":"0x00000401""#));
        }
    }

    /// pdu_parsed is cast to jsonb by readers, which refuses `\u0000`: a NUL in the text or in
    /// a TLV string is written as U+FFFD, and the hex keeps the octets.
    #[test]
    fn nul_in_text_and_tlv_strings_is_never_written_as_u0000() {
        let sm = Sm {
            data_coding: 3,
            short_message: ShortMessage::new(b"pad\0".to_vec()).unwrap(),
            tlvs: vec![Tlv::new(tag::RECEIPTED_MESSAGE_ID, b"ab\0cd\0".to_vec()).unwrap()],
            ..Sm::default()
        };
        let json = pdu_to_json(&Pdu::new(3, Body::DeliverSm(Box::new(sm))));
        check_json(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert!(!json.contains("\\u0000"), "{json}");
        assert!(json.contains("\"text\":\"pad\u{FFFD}\""), "{json}");
        assert!(json.contains("\"decoded\":\"ab\u{FFFD}cd\""), "{json}");
        assert!(json.contains("\"short_message\":\"70616400\""), "{json}");
    }

    /// The whole rendering of a delivery receipt, as smpp_rx_queue.pdu_parsed holds it: a
    /// column users read, so its shape is fixed here to the byte.
    #[test]
    fn a_delivery_receipt_renders_exactly() {
        let text = "id:0A1B sub:001 dlvrd:001 submit date:2611251200 done date:2611251201 \
                    stat:DELIVRD err:000 text:Hello \"you\"";
        let sm = Sm {
            source: Address::new(1, 1, "447700900123").unwrap(),
            destination: Address::new(5, 0, "ESMED").unwrap(),
            esm_class: 0x04,
            short_message: ShortMessage::new(text.as_bytes().to_vec()).unwrap(),
            tlvs: vec![
                Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"0A1B").unwrap(),
                Tlv::new(tag::MESSAGE_STATE, vec![2]).unwrap(),
                Tlv::new(tag::NETWORK_ERROR_CODE, vec![3, 0, 0]).unwrap(),
            ],
            ..Sm::default()
        };
        let json = pdu_to_json(&Pdu::new(9, Body::DeliverSm(Box::new(sm))));
        let expected = concat!(
            r#"{"command":"deliver_sm","command_id":"0x00000005","command_status":"ESME_ROK","#,
            r#""sequence_number":9,"service_type":"","source":{"ton":1,"npi":1,"#,
            r#""addr":"447700900123"},"destination":{"ton":5,"npi":0,"addr":"ESMED"},"#,
            r#""esm_class":"0x04","protocol_id":0,"priority_flag":0,"#,
            r#""schedule_delivery_time":"","validity_period":"","registered_delivery":0,"#,
            r#""replace_if_present_flag":0,"data_coding":"0x00","sm_default_msg_id":0,"#,
            r#""sm_length":107,"short_message":""#,
            "69643a30413142207375623a30303120646c7672643a303031",
            "207375626d697420646174653a3236313132353132303020646f6e6520646174653a32363131",
            "32353132303120737461743a44454c49565244206572723a30303020746578743a48656c6c6f",
            "2022796f7522",
            r#"","text":"id:0A1B sub:001 dlvrd:001 submit date:2611251200 done "#,
            r#"date:2611251201 stat:DELIVRD err:000 text:Hello \"you\"","tlvs":["#,
            r#"{"name":"receipted_message_id","length":5,"value":"3041314200","decoded":"0A1B"},"#,
            r#"{"name":"message_state","length":1,"value":"02","decoded":2},"#,
            r#"{"name":"network_error_code","length":3,"value":"030000","#,
            r#""decoded":{"type":3,"code":0}}]}"#,
        );
        assert_eq!(json, expected);
    }

    proptest::proptest! {
        #[test]
        fn any_deliver_sm_renders_valid_json(
            esm_class: u8,
            data_coding: u8,
            short_message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            addr in "\\PC{0,30}",
        ) {
            // As a peer may send it: over-long strings are decoded too.
            let source = Address { ton: 1, npi: 1, addr: crate::COctet::from_peer(addr.as_bytes()) };
            let sm = Sm {
                source,
                esm_class,
                data_coding,
                short_message: ShortMessage::new(short_message).unwrap(),
                ..Sm::default()
            };
            let json = pdu_to_json(&Pdu::new(1, Body::DeliverSm(Box::new(sm))));
            proptest::prop_assert!(check_json(&json).is_ok(), "{}", json);
        }
    }
}
