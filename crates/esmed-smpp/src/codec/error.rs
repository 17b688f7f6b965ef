//! The codec's error types, small `Copy` values: a [`DecodeError`] names the field at fault and
//! knows the command_status esmed answers the peer with.

use std::fmt;

use crate::{CommandId, CommandStatus};

/// Why a PDU could not be encoded: every field's type was checked when it was built, so the one
/// thing left is the whole PDU's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The whole PDU would not fit the 4-octet command_length (more than 4 GiB: only a TLV
    /// list or a raw body has no bound of its own).
    PduTooLong { len: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::PduTooLong { len } => write!(f, "PDU of {len} octets is too long"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// What was wrong with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Fewer octets than the 16-octet header.
    ShortFrame { len: usize },
    /// The header's command_length differs from the size of the frame given to `decode`.
    LengthMismatch {
        command_length: u32,
        frame_len: usize,
    },
    /// A mandatory field lies beyond the end of the PDU.
    Truncated,
    /// A C-octet string runs to the end of the PDU without its NUL, and fields follow it.
    MissingNul,
    /// sm_length counts more octets than the PDU has left.
    SmLengthOverrun { sm_length: u8 },
    /// A header-only request (unbind, enquire_link) arrived with a body.
    UnexpectedBody { len: usize },
    /// A TLV's tag/length or value runs past the end of the PDU.
    TlvOverrun,
}

/// A frame that could not be decoded: what, which field, and the header fields (command_id
/// and sequence_number are 0 when the header itself was unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub field: &'static str,
    pub command_id: CommandId,
    pub sequence_number: u32,
}

impl DecodeError {
    /// The status to answer with (generic_nack for framing problems, the operation's own
    /// response otherwise — that choice is the session's).
    pub fn command_status(&self) -> CommandStatus {
        match self.kind {
            DecodeErrorKind::SmLengthOverrun { .. } => CommandStatus::ESME_RINVMSGLEN,
            DecodeErrorKind::TlvOverrun => CommandStatus::ESME_RINVOPTPARSTREAM,
            DecodeErrorKind::ShortFrame { .. }
            | DecodeErrorKind::LengthMismatch { .. }
            | DecodeErrorKind::Truncated
            | DecodeErrorKind::MissingNul
            | DecodeErrorKind::UnexpectedBody { .. } => CommandStatus::ESME_RINVCMDLEN,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let DecodeErrorKind::ShortFrame { len } = self.kind {
            return write!(
                f,
                "frame of {len} octets is shorter than the 16-octet header"
            );
        }
        write!(
            f,
            "{} seq {}: {}: ",
            self.command_id, self.sequence_number, self.field
        )?;
        match self.kind {
            DecodeErrorKind::ShortFrame { .. } => Ok(()),
            DecodeErrorKind::LengthMismatch {
                command_length,
                frame_len,
            } => write!(
                f,
                "command_length {command_length} but frame has {frame_len} octets"
            ),
            DecodeErrorKind::Truncated => f.write_str("missing, the PDU ends before it"),
            DecodeErrorKind::MissingNul => f.write_str("missing NUL before the end of the PDU"),
            DecodeErrorKind::SmLengthOverrun { sm_length } => {
                write!(f, "sm_length {sm_length} runs past the end of the PDU")
            }
            DecodeErrorKind::UnexpectedBody { len } => {
                write!(f, "{len} octets of body on a header-only PDU")
            }
            DecodeErrorKind::TlvOverrun => f.write_str("TLV runs past the end of the PDU"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: DecodeErrorKind, field: &'static str) -> DecodeError {
        DecodeError {
            kind,
            field,
            command_id: CommandId::SubmitSm,
            sequence_number: 7,
        }
    }

    #[test]
    fn display_names_command_sequence_and_field() {
        let e = error(DecodeErrorKind::MissingNul, "destination_addr");
        assert_eq!(
            e.to_string(),
            "submit_sm seq 7: destination_addr: missing NUL before the end of the PDU"
        );
        let e = EncodeError::PduTooLong { len: 1 << 32 };
        assert_eq!(e.to_string(), "PDU of 4294967296 octets is too long");
    }

    #[test]
    fn each_kind_maps_to_the_status_to_answer_with() {
        let status = |kind| error(kind, "x").command_status();
        assert_eq!(
            status(DecodeErrorKind::TlvOverrun),
            CommandStatus::ESME_RINVOPTPARSTREAM
        );
        assert_eq!(
            status(DecodeErrorKind::SmLengthOverrun { sm_length: 9 }),
            CommandStatus::ESME_RINVMSGLEN
        );
        assert_eq!(
            status(DecodeErrorKind::Truncated),
            CommandStatus::ESME_RINVCMDLEN
        );
        assert_eq!(
            status(DecodeErrorKind::ShortFrame { len: 3 }),
            CommandStatus::ESME_RINVCMDLEN
        );
    }
}
