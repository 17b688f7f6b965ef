//! One place turns the enabled `smpp_servers` row into what the sessions run with: whether
//! its port and bind fields can be used at all, the values esmed uses instead of those it
//! cannot (each named for a warning), which binds to make, and each session's settings with
//! the daemon's config. The supervisor calls it; the storage layer only reads the row.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::db::ServerRow;
use crate::handoff::BindKind;
use crate::session::submit::{ReceiptPolicy, SubmitSettings};
use crate::session::{Credentials, SessionParams, SessionTimers};
use crate::smpp::{COctet, FieldError};
use crate::tls::{TlsParams, Verify};

impl ServerRow {
    /// The SMSC's TCP port, or why esmed cannot connect with the row as written: a `port`
    /// that cannot be one (a port made up would reach the wrong service, or none). esmed then
    /// does not connect: every attempt would fail the same way.
    pub(crate) fn usable_port(&self) -> Result<u16, String> {
        u16::try_from(self.port)
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| format!("port {} is not a TCP port (1-65535)", self.port))
    }

    /// The bind fields as the bind_* carries them, or why esmed cannot bind with them: one
    /// is longer than SMPP allows (the old schema's varchar(16) and varchar(9) let one more
    /// character in). As for the port, esmed then does not connect. The password's value is
    /// never part of the error.
    pub(crate) fn credentials(&self) -> Result<Credentials, String> {
        Ok(Credentials {
            system_id: bind_field("esme_system_id", &self.esme_system_id)?,
            password: bind_field("esme_password", self.esme_password.expose())?,
            system_type: bind_field("esme_system_type", &self.esme_system_type)?,
        })
    }

    /// The values esmed cannot use as written, each with what it uses instead, for a warning
    /// when it starts the sessions (the old schema has no CHECK on these columns).
    pub(crate) fn stand_ins(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let timers = [
            ("smpp_session_init_timer", self.smpp_session_init_timer),
            ("smpp_enquire_link_timer", self.smpp_enquire_link_timer),
            ("smpp_inactivity_timer", self.smpp_inactivity_timer),
            ("smpp_response_timer", self.smpp_response_timer),
            ("smpp_pdu_read_timer", self.smpp_pdu_read_timer),
        ];
        for (column, seconds) in timers {
            let used = timer(seconds).as_secs();
            if u64::try_from(seconds).ok() != Some(used) {
                notes.push(format!(
                    "{column} = {seconds} is below 1 second; using {used}"
                ));
            }
        }
        // The source pair counts only when both are set (else both come from the address).
        let source = self.esme_source_addr_ton.zip(self.esme_source_addr_npi);
        let numbering = [
            ("esme_source_addr_ton", source.map(|(ton, _)| ton)),
            ("esme_source_addr_npi", source.map(|(_, npi)| npi)),
            ("esme_dest_addr_ton", Some(self.esme_dest_addr_ton)),
            ("esme_dest_addr_npi", Some(self.esme_dest_addr_npi)),
        ];
        for (column, value) in numbering {
            if let Some(value) = value.filter(|v| i32::from(ton_npi(*v)) != *v) {
                let used = ton_npi(value);
                notes.push(format!(
                    "{column} = {value} is not a TON/NPI (0-255); using {used}"
                ));
            }
        }
        if self.esme_max_submission_attempts < 1 {
            notes.push(format!(
                "esme_max_submission_attempts = {} is below 1; using 1",
                self.esme_max_submission_attempts
            ));
        }
        for status in self.smpp_permanent_statuses.iter().filter(|s| **s < 0) {
            notes.push(format!(
                "smpp_permanent_statuses holds {status}, not a command_status; ignoring it"
            ));
        }
        notes
    }
}

/// One bind field of the row, checked against the size SMPP gives it.
fn bind_field<const MAX: usize>(column: &str, value: &str) -> Result<COctet<MAX>, String> {
    COctet::new(value).map_err(|e| match e {
        FieldError::TooLong { len, max } => {
            format!("{column} is {len} octets, SMPP allows at most {max}")
        }
        e => format!("{column}: {e}"),
    })
}

/// A timer column as esmed uses it: whole seconds, at least one.
pub(crate) fn timer(seconds: i32) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0).max(1))
}

/// A TON or NPI column as esmed uses it: 0 when the value does not fit the octet.
pub(crate) fn ton_npi(value: i32) -> u8 {
    u8::try_from(value).unwrap_or(0)
}

/// Transceiver, or transmitter plus the optional separate receiver.
pub(crate) fn bind_kinds(row: &ServerRow) -> Vec<BindKind> {
    if row.esme_bind_transceiver {
        vec![BindKind::Transceiver]
    } else if row.esme_bind_receiver {
        vec![BindKind::Transmitter, BindKind::Receiver]
    } else {
        vec![BindKind::Transmitter]
    }
}

pub(crate) fn server_label(row: &ServerRow) -> String {
    match row.name.as_deref() {
        Some(name) if !name.is_empty() => format!("server {} '{name}'", row.id),
        _ => format!("server {}", row.id),
    }
}

/// A session's settings: the server row's, with `port` and `credentials` as
/// [`ServerRow::usable_port`] and [`ServerRow::credentials`] gave them.
pub(crate) fn session_params(
    row: &ServerRow,
    port: u16,
    credentials: Credentials,
    kind: BindKind,
    config: &Config,
) -> SessionParams {
    let receives = row.esme_bind_transceiver || row.esme_bind_receiver;
    let receipts = match (receives, row.esme_registered_delivery) {
        (true, true) => ReceiptPolicy::Always,
        (true, false) => ReceiptPolicy::PerRow,
        (false, _) => ReceiptPolicy::Never,
    };
    let source_ton_npi = match (row.esme_source_addr_ton, row.esme_source_addr_npi) {
        (Some(ton), Some(npi)) => Some((ton_npi(ton), ton_npi(npi))),
        _ => None,
    };
    SessionParams {
        label: format!("{} {kind}", server_label(row)),
        host: row.host.clone(),
        port,
        credentials,
        bind: kind,
        timers: SessionTimers {
            session_init: timer(row.smpp_session_init_timer),
            enquire_link: timer(row.smpp_enquire_link_timer),
            inactivity: timer(row.smpp_inactivity_timer),
            response: timer(row.smpp_response_timer),
            pdu_read: timer(row.smpp_pdu_read_timer),
        },
        window: usize::try_from(row.smpp_window).unwrap_or(1).max(1),
        rate_limit: u32::try_from(row.smpp_rate_limit).unwrap_or(0),
        max_pdu_len: config.daemon.max_pdu_size,
        submit: SubmitSettings {
            source_addr: row.esme_source_addr.clone(),
            source_ton_npi,
            dest_ton: ton_npi(row.esme_dest_addr_ton),
            dest_npi: ton_npi(row.esme_dest_addr_npi),
            receipts,
            coding: row.smpp_text_coding,
            long_mode: row.smpp_long_message_mode,
            max_segments: config.daemon.max_segments as usize,
            max_attempts: row.esme_max_submission_attempts.max(1),
            permanent_statuses: row
                .smpp_permanent_statuses
                .iter()
                .filter_map(|s| u32::try_from(*s).ok())
                .collect(),
            retry_min: config.daemon.retry_min,
            retry_max: config.daemon.retry_max,
        },
        reconnect_min: config.daemon.reconnect_min,
        reconnect_max: config.daemon.reconnect_max,
        shutdown_timeout: config.daemon.shutdown_timeout,
        max_uncommitted: config.daemon.max_uncommitted_results as usize,
        strict_resend_bound: config.daemon.strict_resend_bound,
        tls: tls_params(row),
    }
}

/// The smpp_tls* columns; None when smpp_tls is off. Empty strings count as NULL.
fn tls_params(row: &ServerRow) -> Option<TlsParams> {
    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    row.smpp_tls.then(|| TlsParams {
        ca_file: non_empty(&row.smpp_tls_ca_file).map(PathBuf::from),
        verify: if row.smpp_tls_verify {
            Verify::Full
        } else {
            Verify::Off
        },
        server_name: non_empty(&row.smpp_tls_server_name).unwrap_or_else(|| row.host.clone()),
        client_cert_file: non_empty(&row.smpp_tls_cert_file).map(PathBuf::from),
        client_key_file: non_empty(&row.smpp_tls_key_file).map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::db::servers::tests::row;

    #[test]
    fn a_port_outside_1_to_65535_is_refused_with_the_value() {
        assert_eq!(row().usable_port(), Ok(2775));
        for port in [0, -1, 65536, 70000] {
            let refused = ServerRow { port, ..row() }.usable_port().unwrap_err();
            assert_eq!(refused, format!("port {port} is not a TCP port (1-65535)"));
        }
        assert_eq!(
            ServerRow {
                port: 65535,
                ..row()
            }
            .usable_port(),
            Ok(65535)
        );
    }

    #[test]
    fn bind_fields_longer_than_smpp_allows_are_refused_without_the_password() {
        let longest = ServerRow {
            esme_system_id: "a".repeat(15),
            esme_password: Secret::new("p".repeat(8)),
            esme_system_type: "t".repeat(12),
            ..row()
        };
        let credentials = longest.credentials().unwrap();
        assert_eq!(credentials.system_id.as_bytes(), "a".repeat(15).as_bytes());
        assert_eq!(credentials.password.as_bytes(), b"pppppppp");
        assert_eq!(credentials.system_type.len(), 12);
        let system_id = ServerRow {
            esme_system_id: "a".repeat(16),
            ..row()
        };
        assert_eq!(
            system_id.credentials().unwrap_err(),
            "esme_system_id is 16 octets, SMPP allows at most 15"
        );
        let system_type = ServerRow {
            esme_system_type: "t".repeat(13),
            ..row()
        };
        assert_eq!(
            system_type.credentials().unwrap_err(),
            "esme_system_type is 13 octets, SMPP allows at most 12"
        );
        let password = ServerRow {
            esme_password: Secret::new("hunter2345"),
            ..row()
        };
        let refused = password.credentials().unwrap_err();
        assert_eq!(refused, "esme_password is 10 octets, SMPP allows at most 8");
        assert!(!refused.contains("hunter"));
    }

    #[test]
    fn unusable_values_are_named_with_what_is_used_instead() {
        assert!(row().stand_ins().is_empty(), "{:?}", row().stand_ins());
        let odd = ServerRow {
            smpp_enquire_link_timer: 0,
            smpp_response_timer: -5,
            esme_dest_addr_npi: 300,
            esme_source_addr_ton: Some(-1),
            esme_source_addr_npi: Some(1),
            esme_max_submission_attempts: 0,
            smpp_permanent_statuses: vec![1025, -3],
            ..row()
        };
        assert_eq!(
            odd.stand_ins(),
            [
                "smpp_enquire_link_timer = 0 is below 1 second; using 1",
                "smpp_response_timer = -5 is below 1 second; using 1",
                "esme_source_addr_ton = -1 is not a TON/NPI (0-255); using 0",
                "esme_dest_addr_npi = 300 is not a TON/NPI (0-255); using 0",
                "esme_max_submission_attempts = 0 is below 1; using 1",
                "smpp_permanent_statuses holds -3, not a command_status; ignoring it",
            ]
        );
        // Half a source pair is not used at all (both come from the address's shape).
        let half = ServerRow {
            esme_source_addr_ton: Some(999),
            ..row()
        };
        assert!(half.stand_ins().is_empty());
    }
}
