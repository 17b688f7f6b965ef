//! Worked examples of SMPP 3.4 PDUs as hex dumps, worked by hand from the specification: the
//! golden vectors check the codec against them, and the
//! end-to-end tests check what reaches the test SMSC against the same bytes.

/// The long-message example: two UCS2 parts, concatenation reference 0x2A.
pub const UCS2_TEXT: &str =
    "Ваш заказ №48213 передан курьеру. Доставка завтра с 10:00 до 14:00😀 Спасибо!";

/// The long-message example, part 1: UCS2, 8-bit-reference UDH, seq 3 (188 octets), copied verbatim.
pub const UCS2_UDH_PART_1: &str = "
    0000: 00 00 00 BC 00 00 00 04 00 00 00 00 00 00 00 03
    0010: 00 05 00 45 53 4D 45 44 00 01 01 34 34 37 37 30
    0020: 30 39 30 30 31 32 33 00 40 00 00 00 00 01 00 08
    0030: 00 8A 05 00 03 2A 02 01 04 12 04 30 04 48 00 20
    0040: 04 37 04 30 04 3A 04 30 04 37 00 20 21 16 00 34
    0050: 00 38 00 32 00 31 00 33 00 20 04 3F 04 35 04 40
    0060: 04 35 04 34 04 30 04 3D 00 20 04 3A 04 43 04 40
    0070: 04 4C 04 35 04 40 04 43 00 2E 00 20 04 14 04 3E
    0080: 04 41 04 42 04 30 04 32 04 3A 04 30 00 20 04 37
    0090: 04 30 04 32 04 42 04 40 04 30 00 20 04 41 00 20
    00A0: 00 31 00 30 00 3A 00 30 00 30 00 20 04 34 04 3E
    00B0: 00 20 00 31 00 34 00 3A 00 30 00 30
";
/// The long-message example, part 2, seq 4 (78 octets), copied verbatim.
pub const UCS2_UDH_PART_2: &str = "
    0000: 00 00 00 4E 00 00 00 04 00 00 00 00 00 00 00 04
    0010: 00 05 00 45 53 4D 45 44 00 01 01 34 34 37 37 30
    0020: 30 39 30 30 31 32 33 00 40 00 00 00 00 01 00 08
    0030: 00 1C 05 00 03 2A 02 02 D8 3D DE 00 00 20 04 21
    0040: 04 3F 04 30 04 41 04 38 04 31 04 3E 00 21
";
/// The long-message example with SAR TLVs, part 2, seq 6 (88 octets), copied verbatim.
pub const UCS2_SAR_PART_2: &str = "
    0000: 00 00 00 58 00 00 00 04 00 00 00 00 00 00 00 06
    0010: 00 05 00 45 53 4D 45 44 00 01 01 34 34 37 37 30
    0020: 30 39 30 30 31 32 33 00 00 00 00 00 00 01 00 08
    0030: 00 16 D8 3D DE 00 00 20 04 21 04 3F 04 30 04 41
    0040: 04 38 04 31 04 3E 00 21 02 0C 00 02 00 2A 02 0E
    0050: 00 01 02 02 0F 00 01 02
";
/// A delivery receipt deliver_sm, SMSC seq 0x10 (182 octets), copied verbatim.
pub const RECEIPT_DELIVER_SM: &str = "
    0000: 00 00 00 B6 00 00 00 05 00 00 00 00 00 00 00 10
    0010: 00 01 01 34 34 37 37 30 30 39 30 30 31 32 33 00
    0020: 05 00 45 53 4D 45 44 00 04 00 00 00 00 00 00 00
    0030: 00 6B 69 64 3A 30 31 36 39 35 35 32 39 35 37 20
    0040: 73 75 62 3A 30 30 31 20 64 6C 76 72 64 3A 30 30
    0050: 31 20 73 75 62 6D 69 74 20 64 61 74 65 3A 32 35
    0060: 30 31 33 31 31 32 30 30 20 64 6F 6E 65 20 64 61
    0070: 74 65 3A 32 35 30 31 33 31 31 32 30 31 20 73 74
    0080: 61 74 3A 44 45 4C 49 56 52 44 20 65 72 72 3A 30
    0090: 30 30 20 74 65 78 74 3A 48 65 6C 6C 6F 00 1E 00
    00A0: 09 30 41 31 42 32 43 33 44 00 04 27 00 01 02 04
    00B0: 23 00 03 03 00 00
";
/// bind_transceiver esme1/secret, seq 1 (34 octets), copied verbatim.
pub const BIND_TRANSCEIVER: &str = "
    0000: 00 00 00 22 00 00 00 09 00 00 00 00 00 00 00 01
    0010: 65 73 6D 65 31 00 73 65 63 72 65 74 00 00 34 00
    0020: 00 00
";
/// submit_sm "Hello", seq 2 (55 octets), copied verbatim.
pub const SUBMIT_SM_HELLO: &str = "
    0000: 00 00 00 37 00 00 00 04 00 00 00 00 00 00 00 02
    0010: 00 05 00 45 53 4D 45 44 00 01 01 34 34 37 37 30
    0020: 30 39 30 30 31 32 33 00 00 00 00 00 00 01 00 00
    0030: 00 05 48 65 6C 6C 6F
";

/// A hex dump's octets: hex pairs separated by white space; tokens ending in ':' (the dump's
/// offsets) are skipped. None when a token is not a hex octet.
pub fn dump_bytes(dump: &str) -> Option<Vec<u8>> {
    dump.split_whitespace()
        .filter(|token| !token.ends_with(':'))
        .map(|token| u8::from_str_radix(token, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_read_without_their_offsets() {
        assert_eq!(
            dump_bytes("0000: 00 0A ff\n0003: 10"),
            Some(vec![0, 10, 255, 16])
        );
        assert_eq!(dump_bytes("00 zz"), None);
        // Every dump here is as long as its command_length says.
        for dump in [
            UCS2_UDH_PART_1,
            UCS2_UDH_PART_2,
            UCS2_SAR_PART_2,
            RECEIPT_DELIVER_SM,
            BIND_TRANSCEIVER,
            SUBMIT_SM_HELLO,
        ] {
            let bytes = dump_bytes(dump).unwrap();
            let length = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            assert_eq!(length as usize, bytes.len());
        }
    }
}
