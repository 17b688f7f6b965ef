//! User Data Header (3GPP TS 23.040 §9.2.3.24): building the concatenation header for outgoing parts
//! and splitting an incoming short_message into its UDH and the text after it.
//!
//! Parsing keeps every information element: concatenation and port IEs are read into typed
//! fields, all others are kept raw in [`Udh::other`]. Reassembly is the daemon's job.

use std::fmt;

/// IEI: concatenated short message, 8-bit reference.
pub const IEI_CONCAT8: u8 = 0x00;
/// IEI: application port addressing, 8-bit ports.
pub const IEI_PORTS8: u8 = 0x04;
/// IEI: application port addressing, 16-bit ports.
pub const IEI_PORTS16: u8 = 0x05;
/// IEI: concatenated short message, 16-bit reference.
pub const IEI_CONCAT16: u8 = 0x08;

/// One part's place in a concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
    /// True for IEI 0x08 (16-bit reference), false for IEI 0x00.
    pub ref16: bool,
}

impl Concat {
    /// The whole UDH (UDHL included) carrying only this concatenation IE: 6 octets for an
    /// 8-bit reference (its low octet is used), 7 for a 16-bit one.
    pub fn to_udh(self) -> Vec<u8> {
        let [hi, lo] = self.reference.to_be_bytes();
        if self.ref16 {
            vec![0x06, IEI_CONCAT16, 0x04, hi, lo, self.total, self.seq]
        } else {
            vec![0x05, IEI_CONCAT8, 0x03, lo, self.total, self.seq]
        }
    }

    /// Numbers a receiver can use: 1 ≤ seq ≤ total.
    pub fn is_consistent(self) -> bool {
        self.total >= 1 && (1..=self.total).contains(&self.seq)
    }
}

/// One information element kept as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ie {
    pub iei: u8,
    pub data: Vec<u8>,
}

/// A parsed UDH.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Udh {
    pub concat: Option<Concat>,
    /// (destination port, source port), from IEI 0x04 or 0x05.
    pub ports: Option<(u16, u16)>,
    /// Every other IE (and concat/port IEs of an unexpected length), in order.
    pub other: Vec<Ie>,
}

/// Why a short_message with UDHI set has no usable UDH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdhError {
    /// short_message is empty, so there is no UDHL octet.
    Empty,
    /// UDHL says more octets than short_message holds.
    HeaderOverrun { udhl: usize, available: usize },
    /// An IE's length runs past the end of the header.
    IeOverrun { iei: u8, iedl: usize, left: usize },
}

impl fmt::Display for UdhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdhError::Empty => f.write_str("UDHI set but short_message is empty"),
            UdhError::HeaderOverrun { udhl, available } => write!(
                f,
                "UDH length {udhl} exceeds the {available} octets after it"
            ),
            UdhError::IeOverrun { iei, iedl, left } => write!(
                f,
                "UDH element 0x{iei:02X} claims {iedl} octets but only {left} remain in the header"
            ),
        }
    }
}

impl std::error::Error for UdhError {}

/// Splits a short_message whose esm_class has UDHI into the UDH and the user text after it.
pub fn split_udh(short_message: &[u8]) -> Result<(Udh, &[u8]), UdhError> {
    let (&udhl, rest) = short_message.split_first().ok_or(UdhError::Empty)?;
    let udhl = usize::from(udhl);
    if udhl > rest.len() {
        return Err(UdhError::HeaderOverrun {
            udhl,
            available: rest.len(),
        });
    }
    let (mut header, text) = rest.split_at(udhl);
    let mut udh = Udh::default();
    while let [iei, iedl, tail @ ..] = header {
        let iedl = usize::from(*iedl);
        if iedl > tail.len() {
            return Err(UdhError::IeOverrun {
                iei: *iei,
                iedl,
                left: tail.len(),
            });
        }
        let (data, next) = tail.split_at(iedl);
        udh.add(*iei, data);
        header = next;
    }
    // A single octet left over cannot be an IE; it is padding some senders leave.
    Ok((udh, text))
}

impl Udh {
    fn add(&mut self, iei: u8, data: &[u8]) {
        match (iei, data) {
            (IEI_CONCAT8, &[reference, total, seq]) => {
                self.concat = Some(Concat {
                    reference: u16::from(reference),
                    total,
                    seq,
                    ref16: false,
                })
            }
            (IEI_CONCAT16, &[hi, lo, total, seq]) => {
                self.concat = Some(Concat {
                    reference: u16::from_be_bytes([hi, lo]),
                    total,
                    seq,
                    ref16: true,
                })
            }
            (IEI_PORTS8, &[dst, src]) => self.ports = Some((u16::from(dst), u16::from(src))),
            (IEI_PORTS16, &[d1, d2, s1, s2]) => {
                self.ports = Some((u16::from_be_bytes([d1, d2]), u16::from_be_bytes([s1, s2])))
            }
            _ => self.other.push(Ie {
                iei,
                data: data.to_vec(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_both_concat_headers_from_the_reference() {
        let part = |seq, ref16| Concat {
            reference: 0x2A,
            total: 2,
            seq,
            ref16,
        };
        assert_eq!(
            part(1, false).to_udh(),
            [0x05, 0x00, 0x03, 0x2A, 0x02, 0x01]
        );
        assert_eq!(
            part(2, true).to_udh(),
            [0x06, 0x08, 0x04, 0x00, 0x2A, 0x02, 0x02]
        );
    }

    #[test]
    fn parses_concat_and_ports() {
        let sm = [
            0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x2A, 0x02, 0x01, b'H',
        ];
        let (udh, text) = split_udh(&sm).unwrap();
        assert_eq!(text, b"H");
        assert_eq!(udh.ports, Some((2948, 9200)));
        let concat = udh.concat.unwrap();
        assert_eq!((concat.reference, concat.total, concat.seq), (0x2A, 2, 1));
        assert!(!concat.ref16 && concat.is_consistent());
    }

    #[test]
    fn parses_16_bit_reference_and_8_bit_ports_and_keeps_others() {
        let sm = [
            0x0D, 0x08, 0x04, 0x12, 0x34, 0x03, 0x02, 0x04, 0x02, 0x10, 0x20, 0x24, 0x01, 0x01,
        ];
        let (udh, text) = split_udh(&sm).unwrap();
        assert!(text.is_empty());
        assert_eq!(
            udh.concat,
            Some(Concat {
                reference: 0x1234,
                total: 3,
                seq: 2,
                ref16: true
            })
        );
        assert_eq!(udh.ports, Some((0x10, 0x20)));
        assert_eq!(
            udh.other,
            vec![Ie {
                iei: 0x24,
                data: vec![0x01]
            }]
        );
    }

    #[test]
    fn overruns_are_errors() {
        assert_eq!(split_udh(&[]), Err(UdhError::Empty));
        assert!(matches!(
            split_udh(&[0x05, 0x00, 0x03]),
            Err(UdhError::HeaderOverrun { .. })
        ));
        let bad_ie = [0x03, 0x00, 0x03, 0x2A, b'x'];
        assert_eq!(
            split_udh(&bad_ie),
            Err(UdhError::IeOverrun {
                iei: 0,
                iedl: 3,
                left: 1
            })
        );
    }

    #[test]
    fn empty_header_and_odd_lengths_are_tolerated() {
        let (udh, text) = split_udh(&[0x00, b'a']).unwrap();
        assert_eq!((udh, text), (Udh::default(), &b"a"[..]));
        // A concat IE of the wrong length is kept raw, not misread.
        let (udh, _) = split_udh(&[0x04, 0x00, 0x02, 0x2A, 0x02]).unwrap();
        assert_eq!(udh.concat, None);
        assert_eq!(udh.other.len(), 1);
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let sm = [
            0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x2A, 0x02, 0x01,
        ];
        for n in 0..=sm.len() {
            let _ = split_udh(&sm[..n]);
        }
    }
}
