//! The SMSC account esmed uses: the one enabled `smpp_servers` row.
//!
//! Columns the old schema left nullable are read with their documented defaults, so a NULL a
//! user wrote means "the default", not an error.

use std::fmt;
use std::str::FromStr;

use postgres::{Client, Row};

use super::{pg, DbError};

/// Every `smpp_servers` column (timers in seconds, as stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRow {
    pub id: i32,
    pub enabled: bool,
    pub name: Option<String>,
    pub host: String,
    pub port: i32,
    pub esme_system_id: String,
    pub esme_password: Password,
    pub esme_source_addr: Option<String>,
    pub esme_bind_transceiver: bool,
    pub esme_registered_delivery: bool,
    pub esme_max_submission_attempts: i32,
    pub smpp_session_init_timer: i32,
    pub smpp_enquire_link_timer: i32,
    pub smpp_inactivity_timer: i32,
    pub smpp_response_timer: i32,
    pub smpp_pdu_read_timer: i32,
    /// A separate receiver bind next to a transmitter bind.
    pub esme_bind_receiver: bool,
    pub esme_system_type: String,
    /// Maximum submit_sm awaiting a response.
    pub smpp_window: i32,
    /// Segments per second; 0 = unlimited.
    pub smpp_rate_limit: i32,
    pub smpp_text_coding: TextCoding,
    pub smpp_long_message_mode: LongMessageMode,
    /// None = chosen from the source address's shape.
    pub esme_source_addr_ton: Option<i32>,
    pub esme_source_addr_npi: Option<i32>,
    pub esme_dest_addr_ton: i32,
    pub esme_dest_addr_npi: i32,
    /// Vendor command_status codes (0x400-0x4FF) to treat as permanent failures.
    pub smpp_permanent_statuses: Vec<i32>,
}

/// A password that never shows up in logs: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: String) -> Password {
        Password(secret)
    }

    /// The secret itself, for the bind PDU only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `smpp_servers.smpp_text_coding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextCoding {
    /// GSM 03.38 default alphabet; UCS2 when the text needs it.
    Gsm7,
    AsciiOnly,
    Latin1,
    Ucs2,
}

impl FromStr for TextCoding {
    type Err = ();
    fn from_str(s: &str) -> Result<TextCoding, ()> {
        match s {
            "gsm7" => Ok(TextCoding::Gsm7),
            "ascii_only" => Ok(TextCoding::AsciiOnly),
            "latin1" => Ok(TextCoding::Latin1),
            "ucs2" => Ok(TextCoding::Ucs2),
            _ => Err(()),
        }
    }
}

/// `smpp_servers.smpp_long_message_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongMessageMode {
    /// Concatenation UDH with an 8-bit reference.
    Udh,
    /// Concatenation UDH with a 16-bit reference.
    Udh16,
    /// sar_* TLVs.
    Sar,
    /// One submit_sm with the whole text in message_payload.
    Payload,
}

impl FromStr for LongMessageMode {
    type Err = ();
    fn from_str(s: &str) -> Result<LongMessageMode, ()> {
        match s {
            "udh" => Ok(LongMessageMode::Udh),
            "udh16" => Ok(LongMessageMode::Udh16),
            "sar" => Ok(LongMessageMode::Sar),
            "payload" => Ok(LongMessageMode::Payload),
            _ => Err(()),
        }
    }
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
           esme_source_addr_npi, esme_dest_addr_ton, esme_dest_addr_npi, smpp_permanent_statuses
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
        esme_password: Password::new(get(row, 6)?),
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
            .map_err(|()| unexpected("smpp_text_coding", coding.clone()))?,
        smpp_long_message_mode: mode
            .parse()
            .map_err(|()| unexpected("smpp_long_message_mode", mode.clone()))?,
        esme_source_addr_ton: get(row, 22)?,
        esme_source_addr_npi: get(row, 23)?,
        esme_dest_addr_ton: get(row, 24)?,
        esme_dest_addr_npi: get(row, 25)?,
        smpp_permanent_statuses: get(row, 26)?,
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
mod tests {
    use super::*;

    #[test]
    fn password_debug_and_display_hide_the_secret() {
        let password = Password::new("s3cret".into());
        assert_eq!(format!("{password:?} {password}"), "*** ***");
        assert_eq!(password.expose(), "s3cret");
    }

    #[test]
    fn codings_and_modes_parse_the_check_constraint_values() {
        for (text, coding) in [
            ("gsm7", TextCoding::Gsm7),
            ("ascii_only", TextCoding::AsciiOnly),
            ("latin1", TextCoding::Latin1),
            ("ucs2", TextCoding::Ucs2),
        ] {
            assert_eq!(text.parse::<TextCoding>(), Ok(coding));
        }
        for (text, mode) in [
            ("udh", LongMessageMode::Udh),
            ("udh16", LongMessageMode::Udh16),
            ("sar", LongMessageMode::Sar),
            ("payload", LongMessageMode::Payload),
        ] {
            assert_eq!(text.parse::<LongMessageMode>(), Ok(mode));
        }
        assert!("GSM7".parse::<TextCoding>().is_err());
    }
}
