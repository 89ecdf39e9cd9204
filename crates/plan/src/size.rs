//! Byte sizes: parsing `"64M"`-style strings and printing sizes for people.

use alloc::string::ToString;
use core::fmt;

use crate::PlanError;

/// One kibibyte.
pub const KIB: u64 = 1 << 10;
/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// One gibibyte.
pub const GIB: u64 = 1 << 30;

/// Parses a size: a decimal number of bytes, optionally followed by one of
/// the binary suffixes `K`, `M`, `G` or `T` (either case), e.g. `"64M"`,
/// `"1G"`, `"512K"`, `"4096"`.
pub fn parse_size(text: &str) -> Result<u64, PlanError> {
    let bad = |reason| PlanError::BadSize {
        text: text.to_string(),
        reason,
    };
    let (digits, unit) = match text.char_indices().last() {
        None => return Err(bad("empty size")),
        Some((at, c)) if c.is_ascii_alphabetic() => {
            let unit = match c.to_ascii_uppercase() {
                'K' => KIB,
                'M' => MIB,
                'G' => GIB,
                'T' => GIB << 10,
                _ => return Err(bad("unknown unit (use K, M, G or T)")),
            };
            (&text[..at], unit)
        }
        Some(_) => (text, 1),
    };
    let count = parse_decimal(digits).ok_or_else(|| bad("expected a decimal number"))?;
    count
        .checked_mul(unit)
        .ok_or_else(|| bad("too large for 64 bits"))
}

/// Parses a non-empty string of ASCII digits (no sign, no spaces) as a
/// `u64`; `None` if it is anything else or overflows.
pub(crate) fn parse_decimal(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Displays a byte count in the largest binary unit that divides it exactly
/// (`"256 MiB"`, `"1 GiB"`), else in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        match [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")]
            .into_iter()
            .find(|&(unit, _)| n != 0 && n.is_multiple_of(unit))
        {
            Some((unit, name)) => write!(f, "{} {name}", n / unit),
            None => write!(f, "{n} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn parses_suffixes_and_plain_bytes() {
        assert_eq!(parse_size("64M"), Ok(64 * MIB));
        assert_eq!(parse_size("1G"), Ok(GIB));
        assert_eq!(parse_size("512K"), Ok(512 * KIB));
        assert_eq!(parse_size("2t"), Ok(2 << 40));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn rejects_malformed_sizes() {
        for text in [
            "", "M", "64X", "-1", "+5", " 64M", "6 4M", "64MB", "0x10", "é",
        ] {
            match parse_size(text) {
                Err(PlanError::BadSize { text: t, .. }) => assert_eq!(t, text),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        let err = parse_size("99999999999999999999G").unwrap_err();
        assert!(format!("{err}").contains("99999999999999999999G"), "{err}");
        let err = parse_size("17179869184G").unwrap_err();
        assert!(format!("{err}").contains("too large"), "{err}");
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(format!("{}", Bytes(256 * MIB)), "256 MiB");
        assert_eq!(format!("{}", Bytes(2 * GIB)), "2 GiB");
        assert_eq!(format!("{}", Bytes(3 * KIB)), "3 KiB");
        assert_eq!(format!("{}", Bytes(1000)), "1000 bytes");
        assert_eq!(format!("{}", Bytes(0)), "0 bytes");
    }
}
