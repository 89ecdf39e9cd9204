//! Value parsers for numeric flags: one message for a negative number on
//! every flag (clap alone would call `--count -5` an unexpected argument
//! `-5`). Each numeric flag also sets `allow_negative_numbers`, so the
//! value reaches its parser; clap names the flag in the error.

/// What every numeric flag says about a negative value.
pub const NEGATIVE: &str = "must be a non-negative number";

/// Whether `text` is written as a negative number (`-5`, `-0x10`, `-1us`).
fn negative(text: &str) -> bool {
    text.trim()
        .strip_prefix('-')
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_digit() || c == '.')
}

/// A non-negative integer in `min..=max`.
fn uint<T: TryFrom<u64>>(text: &str, min: u64, max: u64) -> Result<T, String> {
    if negative(text) {
        return Err(NEGATIVE.into());
    }
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number (a non-negative integer)"))?;
    if !(min..=max).contains(&n) {
        return Err(format!("{n} is out of range (must be in {min}..={max})"));
    }
    T::try_from(n).map_err(|_| format!("{n} is out of range (must be in {min}..={max})"))
}

/// `--nodes`: 1..=4.
pub fn nodes(text: &str) -> Result<u8, String> {
    uint(text, 1, 4)
}

/// `--timeout` (seconds), `--qemu-memory-mib`.
pub fn u64_value(text: &str) -> Result<u64, String> {
    uint(text, 0, u64::MAX)
}

/// `--support`, `--target`, `--qemu-cpus`.
pub fn u8_value(text: &str) -> Result<u8, String> {
    uint(text, 0, u8::MAX.into())
}

/// `--corrupt-every`.
pub fn u32_value(text: &str) -> Result<u32, String> {
    uint(text, 0, u32::MAX.into())
}

/// `--gdb`: a port gdb can connect to (0 would let the system pick one
/// nobody is told of).
pub fn port(text: &str) -> Result<u16, String> {
    uint(text, 1, u16::MAX.into())
}

/// A numeric setting read later by its own, richer parser (units, hex,
/// range checks); refused here only when negative.
pub fn non_negative_text(text: &str) -> Result<String, String> {
    if negative(text) {
        return Err(NEGATIVE.into());
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negatives_get_one_message() {
        for text in ["-5", "-0", "-1us", "-0x10", " -3", "-.5"] {
            assert_eq!(non_negative_text(text), Err(NEGATIVE.into()), "{text}");
            assert_eq!(uint::<u64>(text, 0, 9), Err(NEGATIVE.into()), "{text}");
        }
        assert_eq!(non_negative_text("5us"), Ok("5us".into()));
    }

    #[test]
    fn ranges_and_garbage() {
        assert_eq!(nodes("4"), Ok(4));
        assert!(nodes("5").unwrap_err().contains("1..=4"));
        assert!(port("0").unwrap_err().contains("1..=65535"));
        assert!(u8_value("256").unwrap_err().contains("0..=255"));
        assert!(u64_value("abc").unwrap_err().contains("not a number"));
        assert!(u64_value("-abc").unwrap_err().contains("not a number"));
    }
}
