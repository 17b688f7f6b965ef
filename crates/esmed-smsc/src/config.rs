//! What a test SMSC is told to be: accepted credentials, how it numbers messages, whether and
//! how it sends delivery receipts, and which faults it injects. Plain data with defaults; the
//! behaviour lives in `session`, `faults` and `deliverer`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use esmed_smpp::pdu::SystemId;
use esmed_smpp::receipt::MessageState;
use esmed_smpp::text::{self, CodingPolicy};
use esmed_smpp::{CommandStatus, Tlv};

/// Everything [`super::Smsc::start`] needs.
#[derive(Debug, Clone)]
pub struct SmscConfig {
    /// Where to listen; port 0 picks a free port (read it back with `SmscHandle::port`).
    pub bind_addr: SocketAddr,
    /// Accepted system_id; a bind with another one gets ESME_RINVSYSID.
    pub system_id: String,
    /// Accepted password; a bind with another one gets ESME_RINVPASWD (header-only).
    pub password: String,
    /// The system_id the SMSC gives in its bind responses.
    pub smsc_system_id: SystemId,
    /// Delivery receipts.
    pub receipts: ReceiptMode,
    /// How submit_sm_resp / data_sm_resp message ids are written.
    pub id_format: IdFormat,
    /// The number behind the first message id (later ones count up by one).
    pub first_message_id: u64,
    /// Injected faults; can be changed later with `SmscHandle::set_faults`.
    pub faults: Faults,
    /// At most this many sessions bound at once; more get ESME_RBINDFAIL.
    pub max_binds: usize,
    /// A deliver_sm without deliver_sm_resp after this long is sent again…
    pub deliver_resend_after: Duration,
    /// …at most this many times (0: never resent).
    pub deliver_max_resends: u32,
    /// At most this many deliver_sm wait for their deliver_sm_resp at once (the SMSC's own
    /// window); the others wait for an answer. None: no limit.
    pub deliver_window: Option<usize>,
    /// Keep every received PDU in memory for `SmscHandle::received` (tests). The binary turns
    /// it off so a soak run does not grow without bound.
    pub journal_in_memory: bool,
    /// Append one JSON line per received submit_sm to this file (the benchmark's arrival log).
    pub journal_file: Option<PathBuf>,
    /// How many messages `query_sm` and `SmscHandle::send_receipt` remember (oldest dropped).
    pub remembered_messages: usize,
    /// Serve SMPP over TLS with this certificate; None = plain TCP.
    pub tls: Option<SmscTls>,
}

/// The test SMSC's TLS identity, as PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct SmscTls {
    /// The certificate chain, the SMSC's own certificate first.
    pub cert_chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// Require a client certificate signed by one of these CAs (PEM); None = ask for none.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for SmscTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("SmscTls")
            .field(
                "cert_chain_pem",
                &format!("{} bytes", self.cert_chain_pem.len()),
            )
            .field("client_ca_pem", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for SmscConfig {
    fn default() -> Self {
        SmscConfig {
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            system_id: "esmed".to_string(),
            password: "secret".to_string(),
            smsc_system_id: SystemId::try_from("esmed-smsc")
                .expect("10 characters fit a system_id"),
            receipts: ReceiptMode::Off,
            id_format: IdFormat::Decimal,
            first_message_id: 1,
            faults: Faults::default(),
            max_binds: 16,
            deliver_resend_after: Duration::from_secs(5),
            deliver_max_resends: 3,
            deliver_window: None,
            journal_in_memory: true,
            journal_file: None,
            remembered_messages: 200_000,
            tls: None,
        }
    }
}

/// Whether receipts are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiptMode {
    Off,
    /// One receipt per submitted message (so per part) after `delay`.
    After(ReceiptConfig),
}

/// How receipts look and when they come.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptConfig {
    /// Time from submit_sm to the receipt.
    pub delay: Duration,
    /// How the id is written in the receipt text (the TLV always carries the resp's id).
    pub text_id_format: ReceiptIdFormat,
    /// Add receipted_message_id, message_state and network_error_code TLVs.
    pub tlvs: bool,
    /// The state reported; `err:` is 000 for DELIVERED, 001 otherwise.
    pub final_state: MessageState,
    /// Send an intermediate notification (esm_class 0x20, stat ENROUTE) before the final one.
    pub intermediate_enroute: bool,
    /// Only for submits whose registered_delivery asks for one (bits 1-0 = 01, or 10 when
    /// the final state is a failure). When false every submit gets a receipt.
    pub only_when_requested: bool,
}

impl ReceiptConfig {
    /// Receipts after `delay`, DELIVERED, same id as the resp, with TLVs, when requested.
    pub fn after(delay: Duration) -> Self {
        ReceiptConfig {
            delay,
            text_id_format: ReceiptIdFormat::SameAsResp,
            tlvs: true,
            final_state: MessageState::Delivered,
            intermediate_enroute: false,
            only_when_requested: true,
        }
    }
}

/// How submit_sm_resp message ids are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdFormat {
    /// `17`
    Decimal,
    /// `11` in upper-case hex (`1A` for 26)
    HexUpper,
    /// lower-case hex
    HexLower,
    /// A UUID-shaped string derived from the counter, `00000000-0000-4000-8000-00000000001a`.
    Uuid,
}

impl IdFormat {
    pub fn render(self, n: u64) -> String {
        match self {
            IdFormat::Decimal => n.to_string(),
            IdFormat::HexUpper => format!("{n:X}"),
            IdFormat::HexLower => format!("{n:x}"),
            IdFormat::Uuid => format!(
                "{:08x}-{:04x}-4000-8000-{:012x}",
                n >> 48,
                (n >> 32) & 0xFFFF,
                n & 0xFFFF_FFFF
            ),
        }
    }

    /// The counter behind an id written by [`IdFormat::render`]; `None` for anything else.
    /// Lenient where render is strict (leading zeros, either case): callers compare the
    /// id they find with the one they were given.
    pub fn parse(self, id: &str) -> Option<u64> {
        match self {
            IdFormat::Decimal => id.parse().ok(),
            IdFormat::HexUpper | IdFormat::HexLower => u64::from_str_radix(id, 16).ok(),
            IdFormat::Uuid => {
                let mut fields = id.split('-');
                let mut next = || u64::from_str_radix(fields.next()?, 16).ok();
                let (high, middle, _, _, low) = (next()?, next()?, next()?, next()?, next()?);
                Some(high << 48 | middle << 32 | low)
            }
        }
    }
}

/// How the id is written in a receipt's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptIdFormat {
    SameAsResp,
    Decimal,
    /// Decimal zero-padded to 10 digits, as in the spec's example.
    Decimal10,
    HexUpper,
    HexLower,
}

impl ReceiptIdFormat {
    pub fn render(self, n: u64, resp_format: IdFormat) -> String {
        match self {
            ReceiptIdFormat::SameAsResp => resp_format.render(n),
            ReceiptIdFormat::Decimal => n.to_string(),
            ReceiptIdFormat::Decimal10 => format!("{n:010}"),
            ReceiptIdFormat::HexUpper => format!("{n:X}"),
            ReceiptIdFormat::HexLower => format!("{n:x}"),
        }
    }
}

/// Fault injection. Every "every Nth" counts the submit_sm received by the whole SMSC since
/// start or since the last `set_faults`, starting at 1; the first matching fault in the
/// order of the fields wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Close the connection that carries the Nth submit, without answering it (once).
    pub drop_after: Option<u32>,
    /// Never answer every Nth submit.
    pub never_answer_every: Option<u32>,
    /// Submits whose destination starts with this prefix get this status.
    pub permanent_error_prefix: Option<(String, CommandStatus)>,
    /// Every Nth submit gets this status.
    pub transient_error_every: Option<(u32, CommandStatus)>,
    /// Every Nth submit gets ESME_RTHROTTLED.
    pub throttle_every: Option<u32>,
    /// This fraction of submits get ESME_RTHROTTLED, chosen by a fixed pseudo-random
    /// sequence, so a run is reproducible.
    pub throttle_ratio: Option<f64>,
    /// Submits above this many in one wall-clock second get ESME_RTHROTTLED.
    pub max_rate: Option<u32>,
    /// Every submit_sm_resp / data_sm_resp is held back this long.
    pub response_delay: Option<Duration>,
}

/// A mobile-originated message for `SmscHandle::send_mo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoMessage {
    pub source: String,
    pub destination: String,
    /// User data as sent (UDH first when esm_class has 0x40).
    pub short_message: Vec<u8>,
    pub data_coding: u8,
    pub esm_class: u8,
    pub tlvs: Vec<Tlv>,
}

impl MoMessage {
    /// `text` in GSM 7-bit when it fits the GSM tables, else UCS2.
    pub fn text(source: &str, destination: &str, text: &str) -> Self {
        let coding = text::choose(text, CodingPolicy::Gsm7);
        // choose() picked a coding that can write every char; UCS2 writes all of them.
        let short_message = text::encode(text, coding).unwrap_or_default();
        MoMessage {
            source: source.to_string(),
            destination: destination.to_string(),
            short_message,
            data_coding: coding.data_coding(),
            esm_class: 0,
            tlvs: Vec::new(),
        }
    }

    /// Raw user data with the given data_coding and esm_class.
    pub fn raw(
        source: &str,
        destination: &str,
        bytes: &[u8],
        data_coding: u8,
        esm_class: u8,
    ) -> Self {
        MoMessage {
            source: source.to_string(),
            destination: destination.to_string(),
            short_message: bytes.to_vec(),
            data_coding,
            esm_class,
            tlvs: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esmed_smpp::pdu::MessageId;

    #[test]
    fn the_longest_id_of_each_format_fits_a_message_id() {
        let formats = [
            IdFormat::Decimal,
            IdFormat::HexUpper,
            IdFormat::HexLower,
            IdFormat::Uuid,
        ];
        for format in formats {
            assert!(
                MessageId::new(format.render(u64::MAX)).is_ok(),
                "{format:?}"
            );
        }
    }

    #[test]
    fn ids_render_in_each_format() {
        assert_eq!(IdFormat::Decimal.render(26), "26");
        assert_eq!(IdFormat::HexUpper.render(26), "1A");
        assert_eq!(IdFormat::HexLower.render(26), "1a");
        assert_eq!(
            IdFormat::Uuid.render(26),
            "00000000-0000-4000-8000-00000000001a"
        );
        assert_eq!(
            ReceiptIdFormat::Decimal10.render(26, IdFormat::HexUpper),
            "0000000026"
        );
        assert_eq!(
            ReceiptIdFormat::SameAsResp.render(26, IdFormat::HexUpper),
            "1A"
        );
    }

    #[test]
    fn ids_parse_back_to_their_counter() {
        let formats = [
            IdFormat::Decimal,
            IdFormat::HexUpper,
            IdFormat::HexLower,
            IdFormat::Uuid,
        ];
        for format in formats {
            for n in [0, 1, 26, 0xFFFF_FFFF, 0x1234_5678_9ABC, u64::MAX] {
                assert_eq!(format.parse(&format.render(n)), Some(n), "{format:?} {n}");
            }
            assert_eq!(format.parse(""), None, "{format:?}");
            assert_eq!(format.parse("not an id"), None, "{format:?}");
        }
        assert_eq!(IdFormat::Uuid.parse("00000000-0000-4000"), None);
    }

    #[test]
    fn mo_text_picks_ucs2_for_emoji() {
        assert_eq!(MoMessage::text("1", "2", "hi").data_coding, 0);
        let mo = MoMessage::text("1", "2", "😀");
        assert_eq!(mo.data_coding, 8);
        assert_eq!(mo.short_message, vec![0xD8, 0x3D, 0xDE, 0x00]);
    }
}
