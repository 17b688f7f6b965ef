//! The SMSC account esmed uses: the one enabled `smpp_servers` row.
//!
//! Columns the old schema left nullable are read with their documented defaults, so a NULL a
//! user wrote means "the default", not an error.

use postgres::{Client, Row};

use super::{pg, DbError};
use crate::config::Secret;
use crate::smpp::concat::LongMode;
use crate::smpp::text::CodingPolicy;

/// Every `smpp_servers` column (timers in seconds, as stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRow {
    pub(crate) id: i32,
    pub(crate) enabled: bool,
    pub(crate) name: Option<String>,
    pub host: String,
    pub port: i32,
    pub esme_system_id: String,
    pub esme_password: Secret,
    pub(crate) esme_source_addr: Option<String>,
    pub esme_bind_transceiver: bool,
    pub(crate) esme_registered_delivery: bool,
    pub esme_max_submission_attempts: i32,
    pub(crate) smpp_session_init_timer: i32,
    pub(crate) smpp_enquire_link_timer: i32,
    pub(crate) smpp_inactivity_timer: i32,
    pub(crate) smpp_response_timer: i32,
    pub(crate) smpp_pdu_read_timer: i32,
    /// A separate receiver bind next to a transmitter bind.
    pub esme_bind_receiver: bool,
    pub(crate) esme_system_type: String,
    /// Maximum submit_sm awaiting a response.
    pub smpp_window: i32,
    /// Segments per second; 0 = unlimited.
    pub smpp_rate_limit: i32,
    pub smpp_text_coding: CodingPolicy,
    pub smpp_long_message_mode: LongMode,
    /// None = chosen from the source address's shape.
    pub esme_source_addr_ton: Option<i32>,
    pub(crate) esme_source_addr_npi: Option<i32>,
    pub esme_dest_addr_ton: i32,
    pub esme_dest_addr_npi: i32,
    /// Vendor command_status codes (0x400-0x4FF) to treat as permanent failures.
    pub smpp_permanent_statuses: Vec<i32>,
    /// SMPP over TLS.
    pub smpp_tls: bool,
    /// PEM bundle of trusted CAs; None = the system's trust store.
    pub smpp_tls_ca_file: Option<String>,
    /// Check the SMSC's certificate; false only for testing.
    pub smpp_tls_verify: bool,
    /// SNI and verification name; None = host.
    pub smpp_tls_server_name: Option<String>,
    /// Our certificate chain and key (PEM files) for an SMSC that wants a client certificate.
    pub smpp_tls_cert_file: Option<String>,
    pub smpp_tls_key_file: Option<String>,
}

const SELECT_ENABLED: &str = "
    SELECT id, COALESCE(enabled, false), name, host, COALESCE(port, 2775),
           esme_system_id, esme_password, esme_source_addr,
           COALESCE(esme_bind_transceiver, false), COALESCE(esme_registered_delivery, false),
           COALESCE(esme_max_submission_attempts, 3), COALESCE(smpp_session_init_timer, 30),
           COALESCE(smpp_enquire_link_timer, 10), COALESCE(smpp_inactivity_timer, 120),
           COALESCE(smpp_response_timer, 60), COALESCE(smpp_pdu_read_timer, 10),
           esme_bind_receiver, esme_system_type, smpp_window, smpp_rate_limit,
           smpp_text_coding, smpp_long_message_mode, esme_source_addr_ton,
           esme_source_addr_npi, esme_dest_addr_ton, esme_dest_addr_npi, smpp_permanent_statuses,
           smpp_tls, smpp_tls_ca_file, smpp_tls_verify, smpp_tls_server_name,
           smpp_tls_cert_file, smpp_tls_key_file
    FROM smpp_servers
    WHERE enabled
    ORDER BY id
    LIMIT 1";

/// The enabled server, or None when no row is enabled (esmed then idles).
pub fn load_enabled_server(c: &mut Client) -> Result<Option<ServerRow>, DbError> {
    let row = c
        .query_opt(SELECT_ENABLED, &[])
        .map_err(pg("load the enabled server"))?;
    row.map(|row| server_from_row(&row)).transpose()
}

fn server_from_row(row: &Row) -> Result<ServerRow, DbError> {
    let coding: String = get(row, 20)?;
    let mode: String = get(row, 21)?;
    Ok(ServerRow {
        id: get(row, 0)?,
        enabled: get(row, 1)?,
        name: get(row, 2)?,
        host: get(row, 3)?,
        port: get(row, 4)?,
        esme_system_id: get(row, 5)?,
        esme_password: Secret::new(get::<String>(row, 6)?),
        esme_source_addr: get(row, 7)?,
        esme_bind_transceiver: get(row, 8)?,
        esme_registered_delivery: get(row, 9)?,
        esme_max_submission_attempts: get(row, 10)?,
        smpp_session_init_timer: get(row, 11)?,
        smpp_enquire_link_timer: get(row, 12)?,
        smpp_inactivity_timer: get(row, 13)?,
        smpp_response_timer: get(row, 14)?,
        smpp_pdu_read_timer: get(row, 15)?,
        esme_bind_receiver: get(row, 16)?,
        esme_system_type: get(row, 17)?,
        smpp_window: get(row, 18)?,
        smpp_rate_limit: get(row, 19)?,
        smpp_text_coding: coding
            .parse()
            .map_err(|_| unexpected("smpp_text_coding", coding.clone()))?,
        smpp_long_message_mode: mode
            .parse()
            .map_err(|_| unexpected("smpp_long_message_mode", mode.clone()))?,
        esme_source_addr_ton: get(row, 22)?,
        esme_source_addr_npi: get(row, 23)?,
        esme_dest_addr_ton: get(row, 24)?,
        esme_dest_addr_npi: get(row, 25)?,
        smpp_permanent_statuses: get(row, 26)?,
        smpp_tls: get(row, 27)?,
        smpp_tls_ca_file: get(row, 28)?,
        smpp_tls_verify: get(row, 29)?,
        smpp_tls_server_name: get(row, 30)?,
        smpp_tls_cert_file: get(row, 31)?,
        smpp_tls_key_file: get(row, 32)?,
    })
}

/// One column, with a typed error instead of `Row::get`'s panic.
pub(crate) fn get<'a, T: postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, DbError> {
    row.try_get(index).map_err(pg("read a column"))
}

fn unexpected(column: &'static str, value: String) -> DbError {
    DbError::UnexpectedValue { column, value }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A row as the schema's defaults make it.
    pub(crate) fn row() -> ServerRow {
        ServerRow {
            id: 1,
            enabled: true,
            name: None,
            host: "smsc.example".into(),
            port: 2775,
            esme_system_id: "esmed".into(),
            esme_password: Secret::new("secret"),
            esme_source_addr: None,
            esme_bind_transceiver: false,
            esme_registered_delivery: false,
            esme_max_submission_attempts: 3,
            smpp_session_init_timer: 30,
            smpp_enquire_link_timer: 10,
            smpp_inactivity_timer: 120,
            smpp_response_timer: 60,
            smpp_pdu_read_timer: 10,
            esme_bind_receiver: false,
            esme_system_type: String::new(),
            smpp_window: 10,
            smpp_rate_limit: 0,
            smpp_text_coding: CodingPolicy::Gsm7,
            smpp_long_message_mode: LongMode::Udh8,
            esme_source_addr_ton: None,
            esme_source_addr_npi: None,
            esme_dest_addr_ton: 1,
            esme_dest_addr_npi: 1,
            smpp_permanent_statuses: Vec::new(),
            smpp_tls: false,
            smpp_tls_ca_file: None,
            smpp_tls_verify: true,
            smpp_tls_server_name: None,
            smpp_tls_cert_file: None,
            smpp_tls_key_file: None,
        }
    }

    #[test]
    fn codings_and_modes_parse_the_check_constraint_values() {
        for (text, coding) in [
            ("gsm7", CodingPolicy::Gsm7),
            ("ascii_only", CodingPolicy::AsciiOnly),
            ("latin1", CodingPolicy::Latin1),
            ("ucs2", CodingPolicy::Ucs2),
        ] {
            assert_eq!(text.parse::<CodingPolicy>().ok(), Some(coding));
        }
        for (text, mode) in [
            ("udh", LongMode::Udh8),
            ("udh16", LongMode::Udh16),
            ("sar", LongMode::Sar),
            ("payload", LongMode::Payload),
        ] {
            assert_eq!(text.parse::<LongMode>().ok(), Some(mode));
        }
    }
}
