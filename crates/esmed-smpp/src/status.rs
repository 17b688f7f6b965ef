//! The command_status table (SMPP 3.4 §5.1.3): every v3.4 code with its name, meaning and the
//! retry class esmed's policy uses. Unknown values are kept as they are.
//!
//! One static [`TABLE`] drives `name`, `meaning` and `class`; the class is a default policy
//! (the daemon may override it per provider), not part of the protocol.

use std::fmt;

/// A `command_status` header value. Associated constants name the v3.4 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandStatus(pub u32);

/// What the ESME should do about a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// Success.
    Ok,
    /// Time can fix it; the message was not accepted, so resubmitting is safe.
    Transient,
    /// Resubmitting unchanged fails again; report the message as failed.
    Permanent,
    /// The session, credentials or bind state is wrong; fix the session first.
    Session,
}

#[allow(non_upper_case_globals)]
impl CommandStatus {
    pub const ESME_ROK: CommandStatus = CommandStatus(0x0000_0000);
    pub const ESME_RINVMSGLEN: CommandStatus = CommandStatus(0x0000_0001);
    pub const ESME_RINVCMDLEN: CommandStatus = CommandStatus(0x0000_0002);
    pub const ESME_RINVCMDID: CommandStatus = CommandStatus(0x0000_0003);
    pub const ESME_RINVBNDSTS: CommandStatus = CommandStatus(0x0000_0004);
    pub const ESME_RALYBND: CommandStatus = CommandStatus(0x0000_0005);
    pub const ESME_RINVPRTFLG: CommandStatus = CommandStatus(0x0000_0006);
    pub const ESME_RINVREGDLVFLG: CommandStatus = CommandStatus(0x0000_0007);
    pub const ESME_RSYSERR: CommandStatus = CommandStatus(0x0000_0008);
    pub const ESME_RINVSRCADR: CommandStatus = CommandStatus(0x0000_000A);
    pub const ESME_RINVDSTADR: CommandStatus = CommandStatus(0x0000_000B);
    pub const ESME_RINVMSGID: CommandStatus = CommandStatus(0x0000_000C);
    pub const ESME_RBINDFAIL: CommandStatus = CommandStatus(0x0000_000D);
    pub const ESME_RINVPASWD: CommandStatus = CommandStatus(0x0000_000E);
    pub const ESME_RINVSYSID: CommandStatus = CommandStatus(0x0000_000F);
    pub const ESME_RCANCELFAIL: CommandStatus = CommandStatus(0x0000_0011);
    pub const ESME_RREPLACEFAIL: CommandStatus = CommandStatus(0x0000_0013);
    pub const ESME_RMSGQFUL: CommandStatus = CommandStatus(0x0000_0014);
    pub const ESME_RINVSERTYP: CommandStatus = CommandStatus(0x0000_0015);
    pub const ESME_RINVNUMDESTS: CommandStatus = CommandStatus(0x0000_0033);
    pub const ESME_RINVDLNAME: CommandStatus = CommandStatus(0x0000_0034);
    pub const ESME_RINVDESTFLAG: CommandStatus = CommandStatus(0x0000_0040);
    pub const ESME_RINVSUBREP: CommandStatus = CommandStatus(0x0000_0042);
    pub const ESME_RINVESMCLASS: CommandStatus = CommandStatus(0x0000_0043);
    pub const ESME_RCNTSUBDL: CommandStatus = CommandStatus(0x0000_0044);
    pub const ESME_RSUBMITFAIL: CommandStatus = CommandStatus(0x0000_0045);
    pub const ESME_RINVSRCTON: CommandStatus = CommandStatus(0x0000_0048);
    pub const ESME_RINVSRCNPI: CommandStatus = CommandStatus(0x0000_0049);
    pub const ESME_RINVDSTTON: CommandStatus = CommandStatus(0x0000_0050);
    pub const ESME_RINVDSTNPI: CommandStatus = CommandStatus(0x0000_0051);
    pub const ESME_RINVSYSTYP: CommandStatus = CommandStatus(0x0000_0053);
    pub const ESME_RINVREPFLAG: CommandStatus = CommandStatus(0x0000_0054);
    pub const ESME_RINVNUMMSGS: CommandStatus = CommandStatus(0x0000_0055);
    pub const ESME_RTHROTTLED: CommandStatus = CommandStatus(0x0000_0058);
    pub const ESME_RINVSCHED: CommandStatus = CommandStatus(0x0000_0061);
    pub const ESME_RINVEXPIRY: CommandStatus = CommandStatus(0x0000_0062);
    pub const ESME_RINVDFTMSGID: CommandStatus = CommandStatus(0x0000_0063);
    pub const ESME_RX_T_APPN: CommandStatus = CommandStatus(0x0000_0064);
    pub const ESME_RX_P_APPN: CommandStatus = CommandStatus(0x0000_0065);
    pub const ESME_RX_R_APPN: CommandStatus = CommandStatus(0x0000_0066);
    pub const ESME_RQUERYFAIL: CommandStatus = CommandStatus(0x0000_0067);
    pub const ESME_RINVOPTPARSTREAM: CommandStatus = CommandStatus(0x0000_00C0);
    pub const ESME_ROPTPARNOTALLWD: CommandStatus = CommandStatus(0x0000_00C1);
    pub const ESME_RINVPARLEN: CommandStatus = CommandStatus(0x0000_00C2);
    pub const ESME_RMISSINGOPTPARAM: CommandStatus = CommandStatus(0x0000_00C3);
    pub const ESME_RINVOPTPARAMVAL: CommandStatus = CommandStatus(0x0000_00C4);
    pub const ESME_RDELIVERYFAILURE: CommandStatus = CommandStatus(0x0000_00FE);
    pub const ESME_RUNKNOWNERR: CommandStatus = CommandStatus(0x0000_00FF);
    // v5.0 codes in the range 3.4 reserves for extensions; SMSCs send them to 3.4 clients too.
    pub const ESME_RSERTYPUNAUTH: CommandStatus = CommandStatus(0x0000_0100);
    pub const ESME_RPROHIBITED: CommandStatus = CommandStatus(0x0000_0101);
    pub const ESME_RSERTYPUNAVAIL: CommandStatus = CommandStatus(0x0000_0102);
    pub const ESME_RSERTYPDENIED: CommandStatus = CommandStatus(0x0000_0103);
    pub const ESME_RINVDCS: CommandStatus = CommandStatus(0x0000_0104);
}

use StatusClass::{Ok as S_OK, Permanent as PERM, Session as SESS, Transient as TRAN};

/// Every named code: value, name, short meaning and default class.
/// ESME_RDELIVERYFAILURE "depends" on delivery_failure_reason; without it the default is
/// permanent, so that is its class here.
pub const TABLE: [(CommandStatus, &str, &str, StatusClass); 53] = [
    (CommandStatus::ESME_ROK, "ESME_ROK", "OK", S_OK),
    (
        CommandStatus::ESME_RINVMSGLEN,
        "ESME_RINVMSGLEN",
        "message length invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVCMDLEN,
        "ESME_RINVCMDLEN",
        "command length invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVCMDID,
        "ESME_RINVCMDID",
        "command id invalid / unsupported",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVBNDSTS,
        "ESME_RINVBNDSTS",
        "PDU not allowed in current bind state",
        SESS,
    ),
    (
        CommandStatus::ESME_RALYBND,
        "ESME_RALYBND",
        "already bound",
        SESS,
    ),
    (
        CommandStatus::ESME_RINVPRTFLG,
        "ESME_RINVPRTFLG",
        "bad priority_flag",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVREGDLVFLG,
        "ESME_RINVREGDLVFLG",
        "bad registered_delivery",
        PERM,
    ),
    (
        CommandStatus::ESME_RSYSERR,
        "ESME_RSYSERR",
        "SMSC system error",
        TRAN,
    ),
    (
        CommandStatus::ESME_RINVSRCADR,
        "ESME_RINVSRCADR",
        "source address invalid/not allowed",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVDSTADR,
        "ESME_RINVDSTADR",
        "invalid destination address",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVMSGID,
        "ESME_RINVMSGID",
        "message_id invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RBINDFAIL,
        "ESME_RBINDFAIL",
        "bind failed",
        SESS,
    ),
    (
        CommandStatus::ESME_RINVPASWD,
        "ESME_RINVPASWD",
        "password invalid",
        SESS,
    ),
    (
        CommandStatus::ESME_RINVSYSID,
        "ESME_RINVSYSID",
        "system_id invalid",
        SESS,
    ),
    (
        CommandStatus::ESME_RCANCELFAIL,
        "ESME_RCANCELFAIL",
        "cancel_sm failed",
        PERM,
    ),
    (
        CommandStatus::ESME_RREPLACEFAIL,
        "ESME_RREPLACEFAIL",
        "replace_sm failed",
        PERM,
    ),
    (
        CommandStatus::ESME_RMSGQFUL,
        "ESME_RMSGQFUL",
        "message queue full",
        TRAN,
    ),
    (
        CommandStatus::ESME_RINVSERTYP,
        "ESME_RINVSERTYP",
        "service_type invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVNUMDESTS,
        "ESME_RINVNUMDESTS",
        "bad number_of_dests",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVDLNAME,
        "ESME_RINVDLNAME",
        "bad distribution list name",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVDESTFLAG,
        "ESME_RINVDESTFLAG",
        "bad dest_flag",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVSUBREP,
        "ESME_RINVSUBREP",
        "\"submit with replace\" refused",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVESMCLASS,
        "ESME_RINVESMCLASS",
        "esm_class invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RCNTSUBDL,
        "ESME_RCNTSUBDL",
        "cannot submit to distribution list",
        PERM,
    ),
    (
        CommandStatus::ESME_RSUBMITFAIL,
        "ESME_RSUBMITFAIL",
        "submit failed (generic)",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVSRCTON,
        "ESME_RINVSRCTON",
        "source TON invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVSRCNPI,
        "ESME_RINVSRCNPI",
        "source NPI invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVDSTTON,
        "ESME_RINVDSTTON",
        "destination TON invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVDSTNPI,
        "ESME_RINVDSTNPI",
        "destination NPI invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVSYSTYP,
        "ESME_RINVSYSTYP",
        "system_type invalid",
        SESS,
    ),
    (
        CommandStatus::ESME_RINVREPFLAG,
        "ESME_RINVREPFLAG",
        "replace_if_present_flag invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVNUMMSGS,
        "ESME_RINVNUMMSGS",
        "invalid number of messages",
        PERM,
    ),
    (
        CommandStatus::ESME_RTHROTTLED,
        "ESME_RTHROTTLED",
        "throttled (ESME exceeded allowed rate)",
        TRAN,
    ),
    (
        CommandStatus::ESME_RINVSCHED,
        "ESME_RINVSCHED",
        "schedule_delivery_time invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVEXPIRY,
        "ESME_RINVEXPIRY",
        "validity_period invalid",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVDFTMSGID,
        "ESME_RINVDFTMSGID",
        "sm_default_msg_id invalid / not found",
        PERM,
    ),
    (
        CommandStatus::ESME_RX_T_APPN,
        "ESME_RX_T_APPN",
        "ESME receiver temporary error",
        TRAN,
    ),
    (
        CommandStatus::ESME_RX_P_APPN,
        "ESME_RX_P_APPN",
        "ESME receiver permanent error",
        PERM,
    ),
    (
        CommandStatus::ESME_RX_R_APPN,
        "ESME_RX_R_APPN",
        "ESME receiver rejects message",
        PERM,
    ),
    (
        CommandStatus::ESME_RQUERYFAIL,
        "ESME_RQUERYFAIL",
        "query_sm failed",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVOPTPARSTREAM,
        "ESME_RINVOPTPARSTREAM",
        "TLV section malformed",
        PERM,
    ),
    (
        CommandStatus::ESME_ROPTPARNOTALLWD,
        "ESME_ROPTPARNOTALLWD",
        "TLV not allowed",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVPARLEN,
        "ESME_RINVPARLEN",
        "invalid parameter length",
        PERM,
    ),
    (
        CommandStatus::ESME_RMISSINGOPTPARAM,
        "ESME_RMISSINGOPTPARAM",
        "expected TLV missing",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVOPTPARAMVAL,
        "ESME_RINVOPTPARAMVAL",
        "invalid TLV value",
        PERM,
    ),
    (
        CommandStatus::ESME_RDELIVERYFAILURE,
        "ESME_RDELIVERYFAILURE",
        "delivery failure",
        PERM,
    ),
    (
        CommandStatus::ESME_RUNKNOWNERR,
        "ESME_RUNKNOWNERR",
        "unknown error",
        TRAN,
    ),
    (
        CommandStatus::ESME_RSERTYPUNAUTH,
        "ESME_RSERTYPUNAUTH",
        "service type not authorised (v5.0)",
        PERM,
    ),
    (
        CommandStatus::ESME_RPROHIBITED,
        "ESME_RPROHIBITED",
        "ESME prohibited from using operation (v5.0)",
        PERM,
    ),
    (
        CommandStatus::ESME_RSERTYPUNAVAIL,
        "ESME_RSERTYPUNAVAIL",
        "service type unavailable (v5.0)",
        TRAN,
    ),
    (
        CommandStatus::ESME_RSERTYPDENIED,
        "ESME_RSERTYPDENIED",
        "service type denied (v5.0)",
        PERM,
    ),
    (
        CommandStatus::ESME_RINVDCS,
        "ESME_RINVDCS",
        "invalid data_coding (v5.0)",
        PERM,
    ),
];

/// The SMSC-vendor range (0x400–0x4FF).
const VENDOR_RANGE: std::ops::RangeInclusive<u32> = 0x400..=0x4FF;

impl CommandStatus {
    fn entry(self) -> Option<&'static (CommandStatus, &'static str, &'static str, StatusClass)> {
        TABLE.iter().find(|e| e.0 == self)
    }

    /// The spec's name, e.g. `ESME_RINVDSTADR`; `None` for reserved and vendor values.
    pub fn name(self) -> Option<&'static str> {
        self.entry().map(|e| e.1)
    }

    /// The short meaning of the code; unnamed values say which range they are in.
    pub fn meaning(self) -> &'static str {
        match self.entry() {
            Some(e) => e.2,
            None if self.is_vendor_specific() => "vendor-specific error",
            None if (0x100..0x400).contains(&self.0) => "reserved (SMPP extension)",
            None => "reserved",
        }
    }

    /// The default retry class. Vendor codes are transient until the provider's table says
    /// otherwise (the daemon applies that override); other unnamed values are permanent.
    pub fn class(self) -> StatusClass {
        match self.entry() {
            Some(e) => e.3,
            None if self.is_vendor_specific() => StatusClass::Transient,
            None => StatusClass::Permanent,
        }
    }

    /// 0x400–0x4FF: SMSC-vendor-specific codes.
    pub fn is_vendor_specific(self) -> bool {
        VENDOR_RANGE.contains(&self.0)
    }

    pub fn is_ok(self) -> bool {
        self == CommandStatus::ESME_ROK
    }
}

impl From<u32> for CommandStatus {
    fn from(value: u32) -> Self {
        CommandStatus(value)
    }
}

impl From<CommandStatus> for u32 {
    fn from(status: CommandStatus) -> u32 {
        status.0
    }
}

/// `ESME_RINVDSTADR (0x0000000B): invalid destination address`, or for unnamed values
/// `0x00000401 (vendor-specific error)`.
impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:08X}): {}", self.0, self.meaning()),
            None => write!(f, "0x{:08X} ({})", self.0, self.meaning()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The specification's table, copied by hand: (value, name).
    const REFERENCE: [(u32, &str); 48] = [
        (0x00, "ESME_ROK"),
        (0x01, "ESME_RINVMSGLEN"),
        (0x02, "ESME_RINVCMDLEN"),
        (0x03, "ESME_RINVCMDID"),
        (0x04, "ESME_RINVBNDSTS"),
        (0x05, "ESME_RALYBND"),
        (0x06, "ESME_RINVPRTFLG"),
        (0x07, "ESME_RINVREGDLVFLG"),
        (0x08, "ESME_RSYSERR"),
        (0x0A, "ESME_RINVSRCADR"),
        (0x0B, "ESME_RINVDSTADR"),
        (0x0C, "ESME_RINVMSGID"),
        (0x0D, "ESME_RBINDFAIL"),
        (0x0E, "ESME_RINVPASWD"),
        (0x0F, "ESME_RINVSYSID"),
        (0x11, "ESME_RCANCELFAIL"),
        (0x13, "ESME_RREPLACEFAIL"),
        (0x14, "ESME_RMSGQFUL"),
        (0x15, "ESME_RINVSERTYP"),
        (0x33, "ESME_RINVNUMDESTS"),
        (0x34, "ESME_RINVDLNAME"),
        (0x40, "ESME_RINVDESTFLAG"),
        (0x42, "ESME_RINVSUBREP"),
        (0x43, "ESME_RINVESMCLASS"),
        (0x44, "ESME_RCNTSUBDL"),
        (0x45, "ESME_RSUBMITFAIL"),
        (0x48, "ESME_RINVSRCTON"),
        (0x49, "ESME_RINVSRCNPI"),
        (0x50, "ESME_RINVDSTTON"),
        (0x51, "ESME_RINVDSTNPI"),
        (0x53, "ESME_RINVSYSTYP"),
        (0x54, "ESME_RINVREPFLAG"),
        (0x55, "ESME_RINVNUMMSGS"),
        (0x58, "ESME_RTHROTTLED"),
        (0x61, "ESME_RINVSCHED"),
        (0x62, "ESME_RINVEXPIRY"),
        (0x63, "ESME_RINVDFTMSGID"),
        (0x64, "ESME_RX_T_APPN"),
        (0x65, "ESME_RX_P_APPN"),
        (0x66, "ESME_RX_R_APPN"),
        (0x67, "ESME_RQUERYFAIL"),
        (0xC0, "ESME_RINVOPTPARSTREAM"),
        (0xC1, "ESME_ROPTPARNOTALLWD"),
        (0xC2, "ESME_RINVPARLEN"),
        (0xC3, "ESME_RMISSINGOPTPARAM"),
        (0xC4, "ESME_RINVOPTPARAMVAL"),
        (0xFE, "ESME_RDELIVERYFAILURE"),
        (0xFF, "ESME_RUNKNOWNERR"),
    ];

    #[test]
    fn every_reference_row_is_in_the_table() {
        for (value, name) in REFERENCE {
            assert_eq!(CommandStatus(value).name(), Some(name), "0x{value:X}");
        }
        // The table holds the 3.4 rows plus the five v5.0 codes 0x100–0x104.
        assert_eq!(TABLE.len(), REFERENCE.len() + 5);
        for (value, name) in [(0x100, "ESME_RSERTYPUNAUTH"), (0x104, "ESME_RINVDCS")] {
            assert_eq!(CommandStatus(value).name(), Some(name));
        }
    }

    #[test]
    fn names_and_values_are_unique_and_sorted() {
        let names: HashSet<_> = TABLE.iter().map(|e| e.1).collect();
        assert_eq!(names.len(), TABLE.len());
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(TABLE.iter().all(|e| !e.2.is_empty()));
    }

    #[test]
    fn classes_follow_the_policy() {
        use StatusClass::*;
        let transient = [0x08, 0x14, 0x58, 0x64, 0xFF, 0x102];
        let session = [0x04, 0x05, 0x0D, 0x0E, 0x0F, 0x53];
        for e in TABLE.iter() {
            let v = e.0 .0;
            let expected = if v == 0 {
                Ok
            } else if transient.contains(&v) {
                Transient
            } else if session.contains(&v) {
                Session
            } else {
                Permanent
            };
            assert_eq!(e.0.class(), expected, "{}", e.1);
        }
        assert_eq!(CommandStatus(0x401).class(), Transient);
        assert_eq!(CommandStatus(0x4FF).class(), Transient);
        assert_eq!(CommandStatus(0x500).class(), Permanent);
        assert_eq!(CommandStatus(0x09).class(), Permanent);
    }

    #[test]
    fn unknown_values_have_range_meanings() {
        assert!(CommandStatus(0x400).is_vendor_specific());
        assert!(!CommandStatus(0x3FF).is_vendor_specific());
        assert!(!CommandStatus(0x500).is_vendor_specific());
        assert_eq!(CommandStatus(0x401).name(), None);
        assert_eq!(CommandStatus(0x09).meaning(), "reserved");
        assert_eq!(CommandStatus(0x200).meaning(), "reserved (SMPP extension)");
        assert_eq!(CommandStatus(0xFFFF_FFFF).meaning(), "reserved");
    }

    #[test]
    fn display_format() {
        assert_eq!(
            CommandStatus::ESME_RINVDSTADR.to_string(),
            "ESME_RINVDSTADR (0x0000000B): invalid destination address"
        );
        assert_eq!(
            CommandStatus(0x401).to_string(),
            "0x00000401 (vendor-specific error)"
        );
        assert_eq!(CommandStatus(0x09).to_string(), "0x00000009 (reserved)");
        assert_eq!(
            CommandStatus::ESME_ROK.to_string(),
            "ESME_ROK (0x00000000): OK"
        );
    }
}
