//! Sizes in bytes as the command line gives them.
//!
//! The parser returns a message meant to follow clap's
//! `invalid value '...' for '--option <VALUE>': `.

/// What a size may look like, for messages.
const SIZE_FORMS: &str = "expected a number of bytes such as 123, or a number with a unit \
     (B, KB, MB, GB, TB for powers of 1000; KiB, MiB, GiB, TiB for powers of 1024) \
     such as 500MiB, 10GiB or 1.5GB";

/// A size in bytes: a whole number of bytes, or a number (with an optional
/// fraction) and a unit. Units are case-insensitive: `B`; `KB`, `MB`, `GB`,
/// `TB` are powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` powers of 1024.
/// Space between the number and the unit is allowed. Fractions of a byte
/// that a fractional number implies are dropped (`1.1KiB` is 1126 bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty size: {SIZE_FORMS}"));
    }
    if s.strip_prefix('-')
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
    {
        return Err(format!("a size cannot be negative ({SIZE_FORMS})"));
    }
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(number_len);
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err(format!("{s:?} does not start with a number ({SIZE_FORMS})"));
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return Err(format!("{number:?} is not a number ({SIZE_FORMS})"));
    }
    let scale: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("unknown unit {unit:?} ({SIZE_FORMS})")),
    };
    if scale == 1 && number.contains('.') {
        return Err(format!(
            "{number} is not a whole number of bytes ({SIZE_FORMS})"
        ));
    }
    let mut bytes: u128 = 0;
    for b in whole.bytes() {
        bytes = bytes
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    bytes = bytes.checked_mul(scale).ok_or_else(too_large)?;
    // Digits past the eighteenth are worth less than a byte of a tebibyte;
    // they are read and ignored.
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    for b in fraction.bytes().take(18) {
        numerator = numerator * 10 + u128::from(b - b'0');
        denominator *= 10;
    }
    bytes = bytes
        .checked_add(numerator * scale / denominator)
        .ok_or_else(too_large)?;
    u64::try_from(bytes).map_err(|_| too_large())
}

fn too_large() -> String {
    format!("too large: sizes end at {} bytes (16 EiB)", u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;

    #[test]
    fn plain_bytes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size(" 123 "), Ok(123));
        assert_eq!(parse_size("123B"), Ok(123));
        assert_eq!(parse_size("123b"), Ok(123));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn decimal_units_are_powers_of_1000() {
        assert_eq!(parse_size("1KB"), Ok(1_000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("3TB"), Ok(3_000_000_000_000));
        assert_eq!(parse_size("0.25kb"), Ok(250));
    }

    #[test]
    fn binary_units_are_powers_of_1024() {
        assert_eq!(parse_size("1KiB"), Ok(KIB));
        assert_eq!(parse_size("500MiB"), Ok(500 * MIB));
        assert_eq!(parse_size("10GiB"), Ok(10 * GIB));
        assert_eq!(parse_size("2TiB"), Ok(2 * TIB));
        assert_eq!(parse_size("1.5GiB"), Ok(3 * GIB / 2));
        assert_eq!(parse_size(".5MiB"), Ok(MIB / 2));
        assert_eq!(parse_size("2.MiB"), Ok(2 * MIB));
    }

    #[test]
    fn units_ignore_case_and_may_follow_a_space() {
        for text in ["10GiB", "10gib", "10GIB", "10gIb", "10 GiB", "10\tGiB"] {
            assert_eq!(parse_size(text), Ok(10 * GIB), "{text:?}");
        }
        for text in ["7MB", "7mb", "7Mb", "7 mB"] {
            assert_eq!(parse_size(text), Ok(7_000_000), "{text:?}");
        }
    }

    #[test]
    fn fractions_of_a_byte_are_dropped() {
        assert_eq!(parse_size("1.1KiB"), Ok(1126));
        assert_eq!(parse_size("0.0001KB"), Ok(0));
        assert_eq!(parse_size("1.0000000000000000000001TiB"), Ok(TIB));
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("  ", "empty"),
            ("-1", "negative"),
            ("-5MiB", "negative"),
            ("MiB", "does not start with a number"),
            ("lots", "does not start with a number"),
            ("--json", "does not start with a number"),
            (".", "not a number"),
            (".MiB", "not a number"),
            ("1.2.3MiB", "not a number"),
            ("1.5", "not a whole number of bytes"),
            ("1.5B", "not a whole number of bytes"),
            ("10XB", "unknown unit \"XB\""),
            ("10K", "unknown unit \"K\""),
            ("10 M", "unknown unit \"M\""),
            ("10MiBs", "unknown unit \"MiBs\""),
            ("1e9", "unknown unit \"e9\""),
            ("5 MiB 3", "unknown unit"),
            ("10PiB", "unknown unit"),
            ("18446744073709551616", "too large"),
            ("16777216TiB", "too large"),
            ("99999999999999999999999999999999999999999TB", "too large"),
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        assert!(parse_size("10XB").unwrap_err().contains("KiB"));
    }
}
