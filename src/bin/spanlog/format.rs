//! Human-readable numbers, sizes, durations and timestamps.

/// Unix nanoseconds as RFC 3339 in UTC with all nine fraction digits, e.g.
/// `2026-01-01T00:00:00.123456789Z`.
pub fn rfc3339(unix_nanos: u64) -> String {
    let nanos = unix_nanos % 1_000_000_000;
    format!("{}.{nanos:09}Z", rfc3339_seconds(unix_nanos))
}

/// Unix nanoseconds as RFC 3339 in UTC to the millisecond (truncated),
/// e.g. `2026-01-01T00:00:00.123Z`.
pub fn rfc3339_millis(unix_nanos: u64) -> String {
    let millis = unix_nanos % 1_000_000_000 / 1_000_000;
    format!("{}.{millis:03}Z", rfc3339_seconds(unix_nanos))
}

/// The date and time of day, to the second, without an offset.
fn rfc3339_seconds(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration with three significant digits: `850ns`, `12.3µs`, `1.23ms`,
/// `2.1s`, `3m05s`.
pub fn duration(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos >= 60_000_000_000 {
        let s = nanos / 1_000_000_000;
        return format!("{}m{:02}s", s / 60, s % 60);
    }
    // Thresholds just below the next unit, so 999.7µs reads 1ms, not 1000µs.
    let (value, unit) = if nanos < 999_500 {
        (nanos as f64 / 1e3, "µs")
    } else if nanos < 999_500_000 {
        (nanos as f64 / 1e6, "ms")
    } else {
        (nanos as f64 / 1e9, "s")
    };
    format!("{}{unit}", significant3(value))
}

/// `value` (at least 1) with three significant digits, trailing zeros cut.
fn significant3(value: f64) -> String {
    let decimals = if value >= 99.95 {
        0
    } else if value >= 9.995 {
        1
    } else {
        2
    };
    let s = format!("{value:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A microsecond figure from nanoseconds, for tables and JSON.
pub fn micros(nanos: u64) -> f64 {
    (nanos as f64 / 1e3 * 10.0).round() / 10.0
}

/// Binary-prefixed size: `512 B`, `3.4 KiB`, `16.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// An integer with thousands separators: `1,000,000`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` and the noun, plural unless `n` is 1: `1 error`, `3 errors`.
pub fn plural(n: u64, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {noun}{s}", count(n))
}

/// A rate rounded to an integer, with thousands separators.
pub fn rate(per_sec: f64) -> String {
    if per_sec.is_finite() && per_sec >= 0.0 {
        count(per_sec.round() as u64)
    } else {
        "-".into()
    }
}

/// Rounds to `digits` decimals, for figures in JSON output.
pub fn round(value: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (value * f).round() / f
}

/// `a / b`, or `None` when `b` is zero.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b != 0.0).then(|| a / b)
}

/// One JSON object on one line with its fields in the order given
/// (serde_json's own maps sort their keys).
pub fn json_object(fields: &[(&str, serde_json::Value)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::from(*key).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

/// `s` as it can be printed within a line of text: control characters,
/// which would end the line, move the cursor or restyle a terminal, are
/// written as Rust escapes (`\n`, `\t`, `\0`, `\u{1b}`); everything else
/// is kept as it is. Stored names and messages are data from anywhere; the
/// JSON outputs keep them exact.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Pads `s` with spaces to `width` characters (not bytes: names may hold
/// any Unicode).
pub fn pad(s: &str, width: usize) -> String {
    let len = s.chars().count();
    let mut out = s.to_string();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(len)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_767_225_600_000_000_000),
            "2026-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339(951_782_400_123_456_789),
            "2000-02-29T00:00:00.123456789Z"
        );
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(951_782_400_123_956_789),
            "2000-02-29T00:00:00.123Z"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(
            printable("GET /ü 🦀"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            printable("a\nb\r\t\0\u{1b}[2J\u{7f}\u{9b}"),
            "a\\nb\\r\\t\\0\\u{1b}[2J\\u{7f}\\u{9b}"
        );
    }

    #[test]
    fn json_objects_keep_their_field_order() {
        use serde_json::json;
        let line = json_object(&[
            ("z", json!(1)),
            ("a\"b", json!("x\ny")),
            ("m", json!([true])),
        ]);
        assert_eq!(line, r#"{"z":1,"a\"b":"x\ny","m":[true]}"#);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(850_000), "850µs");
        assert_eq!(duration(1_234_000), "1.23ms");
        assert_eq!(duration(2_100_000_000), "2.1s");
        assert_eq!(duration(999_700), "1ms");
        assert_eq!(duration(12_340), "12.3µs");
        assert_eq!(duration(185_000_000_000), "3m05s");
    }

    #[test]
    fn counts_and_sizes() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(16 << 20), "16.0 MiB");
    }
}
