//! A readable JSON rendering of a PDU for logs and the raw-PDU column: names for commands,
//! statuses and TLVs, decoded text next to the raw bytes. Hand-written (no serde).
//!
//! Passwords (bind, outbind) are never rendered: they appear as `"***"`.

use std::fmt::Write;

use super::codec::hex;
use super::pdu::{AlertNotification, Bind, CancelSm, DataSm, MessageIdResp, QuerySmResp, Sm};
use super::text;
use super::tlv::tag;
use super::udh::{split_udh, Udh};
use super::{Address, Body, COctet, Pdu, Tlv};

/// The PDU as one JSON object on one line.
pub fn pdu_to_json(pdu: &Pdu) -> String {
    let id = pdu.command_id();
    let mut o = Obj::new();
    o.str("command", id.name().unwrap_or("unknown"));
    o.str("command_id", &format!("0x{:08X}", id.value()));
    match pdu.command_status.name() {
        Some(name) => o.str("command_status", name),
        None => o.str("command_status", &format!("0x{:08X}", pdu.command_status.0)),
    }
    o.num("sequence_number", pdu.sequence_number);
    body(&mut o, &pdu.body);
    o.finish()
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
        Body::Other { body, .. } => o.str("body", &hex(body)),
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
    o.str(
        "interface_version",
        &format!("0x{:02X}", b.interface_version),
    );
    o.num("addr_ton", b.addr_ton);
    o.num("addr_npi", b.addr_npi);
    o.cstr("address_range", &b.address_range);
}

fn short_message_pdu(o: &mut Obj, sm: &Sm) {
    o.cstr("service_type", &sm.service_type);
    o.addr("source", &sm.source);
    o.addr("destination", &sm.destination);
    o.str("esm_class", &format!("0x{:02X}", sm.esm_class));
    o.num("protocol_id", sm.protocol_id);
    o.num("priority_flag", sm.priority_flag);
    o.cstr("schedule_delivery_time", &sm.schedule_delivery_time);
    o.cstr("validity_period", &sm.validity_period);
    o.num("registered_delivery", sm.registered_delivery);
    o.num("replace_if_present_flag", sm.replace_if_present_flag);
    o.str("data_coding", &format!("0x{:02X}", sm.data_coding));
    o.num("sm_default_msg_id", sm.sm_default_msg_id);
    o.num("sm_length", sm.short_message.len());
    o.str("short_message", &hex(&sm.short_message));
    let mut user_data = sm.short_message.as_slice();
    if sm.esm_class & 0x40 != 0 {
        match split_udh(user_data) {
            Ok((udh, rest)) => {
                o.raw("udh", &udh_json(&udh));
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

fn udh_json(udh: &Udh) -> String {
    let mut o = Obj::new();
    if let Some(c) = udh.concat {
        let mut co = Obj::new();
        co.num("reference", c.reference);
        co.num("total", c.total);
        co.num("seq", c.seq);
        co.raw("ref16", if c.ref16 { "true" } else { "false" });
        o.raw("concat", &co.finish());
    }
    if let Some((dst, src)) = udh.ports {
        o.raw(
            "ports",
            &format!("{{\"destination\":{dst},\"source\":{src}}}"),
        );
    }
    if !udh.other.is_empty() {
        let items: Vec<String> = udh
            .other
            .iter()
            .map(|ie| {
                format!(
                    "{{\"iei\":\"0x{:02X}\",\"data\":\"{}\"}}",
                    ie.iei,
                    hex(&ie.data)
                )
            })
            .collect();
        o.raw("other", &format!("[{}]", items.join(",")));
    }
    o.finish()
}

fn message_id_resp(o: &mut Obj, r: &MessageIdResp) {
    o.cstr("message_id", &r.message_id);
    tlvs(o, &r.tlvs, None);
}

fn data_sm(o: &mut Obj, d: &DataSm) {
    o.cstr("service_type", &d.service_type);
    o.addr("source", &d.source);
    o.addr("destination", &d.destination);
    o.str("esm_class", &format!("0x{:02X}", d.esm_class));
    o.num("registered_delivery", d.registered_delivery);
    o.str("data_coding", &format!("0x{:02X}", d.data_coding));
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
    if tlvs.is_empty() {
        return;
    }
    let items: Vec<String> = tlvs.iter().map(|t| tlv_json(t, data_coding)).collect();
    o.raw("tlvs", &format!("[{}]", items.join(",")));
}

fn tlv_json(t: &Tlv, data_coding: Option<u8>) -> String {
    let mut o = Obj::new();
    match t.name() {
        Some(name) => o.str("name", name),
        None => o.str("name", &format!("0x{:04X}", t.tag)),
    }
    o.num("length", t.value.len());
    o.str("value", &hex(&t.value));
    match (t.tag, t.value.as_slice()) {
        (tag::RECEIPTED_MESSAGE_ID | tag::ADDITIONAL_STATUS_INFO_TEXT, v) => {
            let v = v.strip_suffix(&[0]).unwrap_or(v);
            o.str("decoded", &String::from_utf8_lossy(v));
        }
        (tag::MESSAGE_PAYLOAD, v) => decoded_text(&mut o, "decoded", data_coding.unwrap_or(4), v),
        (tag::NETWORK_ERROR_CODE, [kind, hi, lo]) => o.raw(
            "decoded",
            &format!(
                "{{\"type\":{kind},\"code\":{}}}",
                u16::from_be_bytes([*hi, *lo])
            ),
        ),
        (tag, v) if t.name().is_some() && is_integer_tlv(tag) => {
            if let Some(n) = be_integer(v) {
                o.num("decoded", n);
            }
        }
        _ => {}
    }
    o.finish()
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

/// A JSON object being written.
struct Obj {
    out: String,
}

impl Obj {
    fn new() -> Self {
        Obj {
            out: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_json_string(&mut self.out, key);
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_string(&mut self.out, value);
    }

    fn cstr(&mut self, key: &str, value: &COctet) {
        self.str(key, &value.to_string_lossy());
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

    fn addr(&mut self, key: &str, a: &Address) {
        let mut o = Obj::new();
        o.num("ton", a.ton);
        o.num("npi", a.npi);
        o.cstr("addr", &a.addr);
        self.raw(key, &o.finish());
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// A JSON string literal: quotes, backslashes and control chars escaped, other chars as UTF-8.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7F}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::pdu::Outbind;
    use crate::smpp::CommandStatus;

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
                system_id: "esmed".into(),
                password: "s3cr\"et".into(),
                system_type: "".into(),
                interface_version: 0x34,
                addr_ton: 0,
                addr_npi: 0,
                address_range: "".into(),
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
                system_id: "smsc".into(),
                password: "hunter2".into(),
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
            source: Address::new(5, 0, "ESMED"),
            destination: Address::new(1, 1, "447700900123"),
            esm_class: 0x40,
            data_coding: 8,
            short_message,
            tlvs: vec![
                Tlv::u16(tag::SAR_MSG_REF_NUM, 42),
                Tlv::new(tag::NETWORK_ERROR_CODE, vec![3, 0, 11]),
                Tlv::new(0x1401, vec![0xAB]),
                Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"0A1B"),
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
                message_id: "a\\b".into(),
                tlvs: vec![],
            }),
            Body::QuerySmResp(QuerySmResp::default()),
            Body::CancelSm(CancelSm::default()),
            Body::DataSm(Box::new(DataSm {
                data_coding: 0,
                tlvs: vec![Tlv::new(tag::MESSAGE_PAYLOAD, vec![0x48, 0x69, 0x80])],
                ..DataSm::default()
            })),
            Body::AlertNotification(AlertNotification::default()),
            Body::Other {
                command_id: 0x0001_0200,
                body: vec![1, 2],
            },
            Body::DeliverSm(Box::new(Sm {
                esm_class: 0x40,
                short_message: vec![9, 9],
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

    proptest::proptest! {
        #[test]
        fn any_deliver_sm_renders_valid_json(
            esm_class: u8,
            data_coding: u8,
            short_message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            addr in "\\PC{0,30}",
        ) {
            let sm = Sm {
                source: Address::new(1, 1, addr.as_str()),
                esm_class,
                data_coding,
                short_message,
                ..Sm::default()
            };
            let json = pdu_to_json(&Pdu::new(1, Body::DeliverSm(Box::new(sm))));
            proptest::prop_assert!(check_json(&json).is_ok(), "{}", json);
        }
    }
}
