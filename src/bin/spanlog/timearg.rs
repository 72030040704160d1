//! Times and durations as the command line gives them.
//!
//! Both parsers return a message meant to follow clap's
//! `invalid value '...' for '--option <VALUE>': `.

/// What a time may look like, for messages.
const TIME_FORMS: &str =
    "expected RFC 3339 such as 2017-01-26T16:46:31.639875Z or 2017-01-26T18:46:31+02:00, \
     or unix nanoseconds";

/// What a duration may look like, for messages.
const DURATION_FORMS: &str =
    "expected a number with a unit (ns, us, ms, s, m, h, d) such as 250ms, 1.5s, 1m30s \
     or 7d, or a whole number of nanoseconds";

/// The last instant unix nanoseconds in 64 bits can hold.
const LAST_TIME: &str = "2554-07-21T23:34:33.709551615Z";

/// A point in time as unix nanoseconds: RFC 3339 (any offset, up to nine
/// fraction digits) or a plain integer of unix nanoseconds.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty time: {TIME_FORMS}"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map_err(|_| format!("too large: unix nanoseconds end at {}", u64::MAX));
    }
    rfc3339(s).map_err(|why| format!("{why} ({TIME_FORMS})"))
}

/// A duration in nanoseconds: one or more numbers with units (`250ms`,
/// `1.5s`, `1m30s`, `7d`; a day is 24 hours), or a plain integer of
/// nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty duration: {DURATION_FORMS}"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map_err(|_| too_long());
    }
    if s.strip_prefix('-')
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
    {
        return Err(format!("a duration cannot be negative ({DURATION_FORMS})"));
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, after) = duration_term(rest)?;
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        rest = after;
    }
    u64::try_from(total).map_err(|_| too_long())
}

fn too_long() -> String {
    "too long: durations end at 18446744073709551615ns (about 584 years)".into()
}

/// One `number unit` term at the start of `s`: its nanoseconds and what
/// follows it.
fn duration_term(s: &str) -> Result<(u128, &str), String> {
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, rest) = s.split_at(number_len);
    let unit_len = rest
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(rest.len());
    let (unit, rest) = rest.split_at(unit_len);
    if number.is_empty() {
        return Err(format!(
            "{unit:?} has no number before it ({DURATION_FORMS})"
        ));
    }
    if unit.is_empty() {
        return Err(format!("{number} has no unit ({DURATION_FORMS})"));
    }
    let scale: u128 = match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return Err(format!("unknown unit {unit:?} ({DURATION_FORMS})")),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return Err(format!("{number:?} is not a number ({DURATION_FORMS})"));
    }
    let mut nanos: u128 = 0;
    for b in whole.bytes() {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(b - b'0')))
            .ok_or_else(too_long)?;
    }
    nanos = nanos.checked_mul(scale).ok_or_else(too_long)?;
    // Digits past the eighteenth are worth less than a nanosecond of an
    // hour; they are read and ignored.
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    for b in fraction.bytes().take(18) {
        numerator = numerator * 10 + u128::from(b - b'0');
        denominator *= 10;
    }
    nanos = nanos
        .checked_add(numerator * scale / denominator)
        .ok_or_else(too_long)?;
    Ok((nanos, rest))
}

/// RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`,
/// with `t`, `z` or a space accepted as RFC 3339 allows.
fn rfc3339(s: &str) -> Result<u64, String> {
    let mut c = Cursor {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let year = c.digits(4, "a four-digit year")?;
    c.expect(b"-", "'-' after the year")?;
    let month = c.digits(2, "a two-digit month")?;
    c.expect(b"-", "'-' after the month")?;
    let day = c.digits(2, "a two-digit day")?;
    if c.at_end() {
        return Err("a time of day and an offset are needed after the date, \
                    as in 2017-01-26T00:00:00Z"
            .into());
    }
    c.expect(b"Tt ", "'T' between date and time")?;
    let hour = c.digits(2, "a two-digit hour")?;
    c.expect(b":", "':' after the hour")?;
    let minute = c.digits(2, "two-digit minutes")?;
    c.expect(b":", "':' and seconds after the minutes")?;
    let second = c.digits(2, "two-digit seconds")?;
    let mut nanos: u64 = 0;
    if c.peek() == Some(b'.') {
        c.pos += 1;
        let start = c.pos;
        while c.peek().is_some_and(|b| b.is_ascii_digit()) {
            c.pos += 1;
        }
        let fraction = &s[start..c.pos];
        if fraction.is_empty() {
            return Err("no digits after the decimal point of the seconds".into());
        }
        if fraction.len() > 9 {
            return Err(format!(
                "{} fraction digits; at most 9 (nanoseconds) are kept",
                fraction.len()
            ));
        }
        let padded = format!("{fraction:0<9}");
        nanos = padded.parse().map_err(|_| "bad fraction of a second")?;
    }
    let offset_secs: i64 = match c.peek() {
        Some(b'Z' | b'z') => {
            c.pos += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.pos += 1;
            let h = c.digits(2, "a two-digit offset hour")?;
            c.expect(b":", "':' in the offset (+HH:MM)")?;
            let m = c.digits(2, "two-digit offset minutes")?;
            if h > 23 || m > 59 {
                return Err(format!("offset {h:02}:{m:02} is out of range"));
            }
            let secs = i64::from(h * 3600 + m * 60);
            if sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        None => return Err("no offset: end the time with Z or +HH:MM".into()),
        Some(_) => return Err(c.unexpected("Z or an offset (+HH:MM) after the time")),
    };
    if !c.at_end() {
        return Err(c.unexpected("the end after the offset"));
    }
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} is out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!(
            "day {day:02} is out of range for {year:04}-{month:02}"
        ));
    }
    if hour > 23 || minute > 59 {
        return Err(format!("time {hour:02}:{minute:02} is out of range"));
    }
    if second == 60 {
        return Err("second 60 (a leap second) has no unix time".into());
    }
    if second > 59 {
        return Err(format!("second {second:02} is out of range"));
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    let total = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    if total < 0 {
        return Err("before 1970-01-01T00:00:00Z, where unix nanoseconds begin".into());
    }
    u64::try_from(total).map_err(|_| format!("after {LAST_TIME}, where unix nanoseconds end"))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize, what: &str) -> Result<u32, String> {
        let mut value = 0;
        for _ in 0..n {
            match self.peek() {
                Some(b) if b.is_ascii_digit() => {
                    value = value * 10 + u32::from(b - b'0');
                    self.pos += 1;
                }
                _ => return Err(self.unexpected(what)),
            }
        }
        Ok(value)
    }

    /// One byte of `allowed`.
    fn expect(&mut self, allowed: &[u8], what: &str) -> Result<(), String> {
        match self.peek() {
            Some(b) if allowed.contains(&b) => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self
            .bytes
            .get(self.pos..)
            .and_then(|b| std::str::from_utf8(b).ok())
        {
            Some(rest) if !rest.is_empty() => {
                let found: String = rest.chars().take(12).collect();
                format!(
                    "expected {wanted} at character {}, found {found:?}",
                    self.pos + 1
                )
            }
            _ => format!(
                "expected {wanted} at character {}, found the end",
                self.pos + 1
            ),
        }
    }
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, after Howard
/// Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn times_in_utc() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_time("2017-01-26T16:46:31.639875Z"),
            Ok(1_485_449_191_639_875_000)
        );
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Ok(1_767_225_600 * SEC));
        assert_eq!(
            parse_time("2000-02-29T00:00:00.123456789Z"),
            Ok(951_782_400_123_456_789)
        );
        assert_eq!(parse_time(LAST_TIME), Ok(u64::MAX));
        assert_eq!(
            parse_time("2017-01-26t16:46:31z"),
            parse_time("2017-01-26T16:46:31Z")
        );
        assert_eq!(
            parse_time("2017-01-26 16:46:31Z"),
            parse_time("2017-01-26T16:46:31Z")
        );
        assert_eq!(parse_time("  1970-01-01T00:00:01Z "), Ok(SEC));
    }

    #[test]
    fn fractions_of_any_length_up_to_nanoseconds() {
        let base = 1_485_449_191 * SEC;
        for (text, nanos) in [
            ("2017-01-26T16:46:31.6Z", 600_000_000),
            ("2017-01-26T16:46:31.639Z", 639_000_000),
            ("2017-01-26T16:46:31.000001Z", 1_000),
            ("2017-01-26T16:46:31.000000001Z", 1),
            ("2017-01-26T16:46:31.999999999Z", 999_999_999),
        ] {
            assert_eq!(parse_time(text), Ok(base + nanos), "{text}");
        }
    }

    #[test]
    fn offsets_move_to_utc() {
        let utc = parse_time("2017-01-26T16:46:31.639875Z").unwrap();
        assert_eq!(parse_time("2017-01-26T18:46:31.639875+02:00"), Ok(utc));
        assert_eq!(parse_time("2017-01-26T11:16:31.639875-05:30"), Ok(utc));
        assert_eq!(parse_time("2017-01-26T16:46:31.639875+00:00"), Ok(utc));
        assert_eq!(parse_time("2017-01-26T16:46:31.639875-00:00"), Ok(utc));
        // Across a day, a month and a year boundary.
        assert_eq!(
            parse_time("2017-01-01T01:00:00+02:00"),
            parse_time("2016-12-31T23:00:00Z")
        );
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Ok(0));
    }

    #[test]
    fn unix_nanoseconds() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(
            parse_time("1485449191639875000"),
            Ok(1_485_449_191_639_875_000)
        );
        assert_eq!(parse_time("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_time("18446744073709551616")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn days_from_civil_inverts_the_formatter() {
        // Every day from 1970 to past 2100 (not a leap year), both ways.
        for days in 0..60_000u64 {
            let text = crate::format::rfc3339(days * 86_400 * SEC);
            assert_eq!(parse_time(&text), Ok(days * 86_400 * SEC), "{text}");
        }
    }

    #[test]
    fn bad_times_say_what_is_wrong() {
        let err = |text: &str| parse_time(text).unwrap_err();
        for (text, says) in [
            ("", "empty"),
            ("   ", "empty"),
            ("yesterday", "four-digit year"),
            ("-5", "four-digit year"),
            ("1.5", "four-digit year"),
            ("17-01-26T16:46:31Z", "four-digit year"),
            ("2017/01/26T16:46:31Z", "'-' after the year"),
            ("2017-1-26T16:46:31Z", "two-digit month"),
            ("2017-01-26", "time of day"),
            ("2017-01-26T16:46Z", "seconds"),
            ("2017-01-26T16:46:31", "no offset"),
            ("2017-01-26T16:46:31.Z", "no digits after the decimal point"),
            ("2017-01-26T16:46:31.1234567891Z", "10 fraction digits"),
            ("2017-01-26T16:46:31+0200", "':' in the offset"),
            ("2017-01-26T16:46:31+2:00", "offset hour"),
            ("2017-01-26T16:46:31+24:00", "offset 24:00"),
            ("2017-01-26T16:46:31ZZ", "the end after the offset"),
            ("2017-01-26T16:46:31 UTC", "offset"),
            ("2017-13-01T00:00:00Z", "month 13"),
            ("2017-00-01T00:00:00Z", "month 00"),
            ("2017-02-29T00:00:00Z", "day 29"),
            ("1900-02-29T00:00:00Z", "day 29"),
            ("2017-04-31T00:00:00Z", "day 31"),
            ("2017-01-00T00:00:00Z", "day 00"),
            ("2017-01-26T24:00:00Z", "24:00"),
            ("2017-01-26T16:60:00Z", "16:60"),
            ("2016-12-31T23:59:60Z", "leap second"),
            ("2017-01-26T16:46:61Z", "second 61"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("1970-01-01T00:59:59+01:00", "before 1970"),
            ("2554-07-21T23:34:33.709551616Z", "2554"),
            ("9999-12-31T23:59:59Z", "where unix nanoseconds end"),
            ("2017-01-26T16:46:31.6\u{b5}Z", "offset"),
        ] {
            let e = err(text);
            assert!(e.contains(says), "{text:?}: {e}");
        }
        assert!(err("2017-01-26").contains("RFC 3339"));
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("800us"), Ok(800_000));
        assert_eq!(parse_duration("800\u{b5}s"), Ok(800_000));
        assert_eq!(parse_duration("800\u{3bc}s"), Ok(800_000));
        assert_eq!(parse_duration("120ns"), Ok(120));
        assert_eq!(parse_duration("2m"), Ok(120 * SEC));
        assert_eq!(parse_duration("1h"), Ok(3_600 * SEC));
        assert_eq!(parse_duration("1m30s"), Ok(90 * SEC));
        assert_eq!(parse_duration("1h2m3.5s"), Ok(3_723_500_000_000));
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400 * SEC));
        assert_eq!(parse_duration("1.5d"), Ok(36 * 3_600 * SEC));
        assert_eq!(parse_duration("1d12h"), Ok(36 * 3_600 * SEC));
        assert_eq!(parse_duration("30m"), Ok(30 * 60 * SEC));
        assert_eq!(parse_duration("0.5ms"), Ok(500_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_duration("2.s"), Ok(2 * SEC));
        assert_eq!(parse_duration("1.0000000001s"), Ok(SEC));
        assert_eq!(parse_duration("0.0000000000000000000001h"), Ok(0));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration(" 3s "), Ok(3 * SEC));
    }

    #[test]
    fn durations_as_plain_nanoseconds() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("1500"), Ok(1_500));
        assert_eq!(parse_duration("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_duration("18446744073709551616")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("-1s", "negative"),
            ("-.5s", "negative"),
            ("--json", "no number"),
            ("1.5", "no unit"),
            ("10 ms", "unknown unit \" ms\""),
            ("5sec", "unknown unit \"sec\""),
            ("5S", "unknown unit \"S\""),
            ("1w", "unknown unit \"w\""),
            ("1D", "unknown unit \"D\""),
            ("213504d", "too long"),
            ("ms", "no number"),
            ("1s5", "no unit"),
            (".s", "not a number"),
            ("1.2.3s", "not a number"),
            ("1e3ms", "unknown unit \"e\""),
            ("5124096h", "too long"),
            ("99999999999999999999999999999999999999999h", "too long"),
            ("584y", "unknown unit"),
        ] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
