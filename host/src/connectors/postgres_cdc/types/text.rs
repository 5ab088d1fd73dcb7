//! PostgreSQL's text forms of dates, times, timestamps, intervals and arrays (as pinned by the
//! session settings in `mod.rs`), parsed without a calendar library: civil-date arithmetic
//! covers BC dates and years past 9999, which chrono's types do not.

/// Days since 1970-01-01 of a proleptic Gregorian civil date (Howard Hinnant's algorithm).
pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` (with ` BC` for years before 1) as days since the epoch.
pub(super) fn date_days(text: &str) -> Option<i64> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    let y = if bc { 1 - y } else { y };
    Some(days_from_civil(y, m, d))
}

/// `HH:MM:SS[.ffffff]` as microseconds since midnight.
pub(super) fn time_micros(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s = parts.next()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut micros = 0i64;
    for (i, c) in frac.bytes().take(6).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        micros += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + micros)
}

/// Splits a trailing `+HH[:MM[:SS]]` / `-HH...` zone offset off; returns it in seconds.
pub(super) fn split_offset(text: &str) -> Option<(&str, i64)> {
    let at = text.rfind(['+', '-'])?;
    let (clock, zone) = text.split_at(at);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let mut secs = 0i64;
    for (i, part) in zone[1..].split(':').enumerate() {
        let v: i64 = part.parse().ok()?;
        secs += v * [3600, 60, 1].get(i)?;
    }
    Some((clock, sign * secs))
}

pub(super) fn time_tz(text: &str) -> Option<(i64, i64)> {
    let (clock, offset) = split_offset(text)?;
    Some((time_micros(clock)?, offset))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+zone][ BC]` as microseconds since the epoch of the local
/// clock, and the zone offset in seconds (0 when absent).
pub(super) fn timestamp_micros(text: &str) -> Option<(i64, i64)> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (date, rest) = text.split_once(' ')?;
    let (clock, offset) = match rest.find(['+', '-']) {
        Some(_) => split_offset(rest)?,
        None => (rest, 0),
    };
    let date = if bc {
        format!("{date} BC")
    } else {
        date.to_owned()
    };
    let days = date_days(&date)?;
    Some((days * 86_400_000_000 + time_micros(clock)?, offset))
}

/// `HH:MM:SS` plus `digits` fraction digits of a time of day in microseconds.
pub(super) fn clock(micros: i64, digits: u32) -> String {
    let secs = micros / 1_000_000;
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if digits > 0 {
        let frac = format!("{:06}", micros % 1_000_000);
        out.push('.');
        out.push_str(&frac[..digits.min(6) as usize]);
    }
    out
}

/// A time of day as Java's ISO_LOCAL_TIME prints it: seconds always, the fraction only as
/// long as it needs to be.
pub(super) fn iso_time(micros: i64) -> String {
    let mut out = clock(micros, 6);
    while out.ends_with('0') {
        out.pop();
    }
    if out.ends_with('.') {
        out.pop();
    }
    out
}

/// Debezium's ZonedTimestamp text: UTC, `Z`, the column's precision in fraction digits.
pub(super) fn zoned_timestamp(utc_micros: i64, precision: u32) -> String {
    let days = utc_micros.div_euclid(86_400_000_000);
    let of_day = utc_micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{}Z", clock(of_day, precision))
}

/// The components of an ISO 8601 interval (`IntervalStyle=iso_8601`, e.g.
/// `P1Y2M3DT4H5M6.5S`): years, months, days, hours, minutes, seconds.
pub(super) fn interval_parts(text: &str) -> Option<[f64; 6]> {
    let body = text.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let (mut years, mut months, mut days) = (0f64, 0f64, 0f64);
    let (mut hours, mut minutes, mut seconds) = (0f64, 0f64, 0f64);
    let mut number = String::new();
    for c in date.chars() {
        match c {
            'Y' => years = number.parse().ok()?,
            'M' => months = number.parse().ok()?,
            'W' => days += 7.0 * number.parse::<f64>().ok()?,
            'D' => days += number.parse::<f64>().ok()?,
            _ => {
                number.push(c);
                continue;
            }
        }
        number.clear();
    }
    for c in time.chars() {
        match c {
            'H' => hours = number.parse().ok()?,
            'M' => minutes = number.parse().ok()?,
            'S' => seconds = number.parse().ok()?,
            _ => {
                number.push(c);
                continue;
            }
        }
        number.clear();
    }
    Some([years, months, days, hours, minutes, seconds])
}

/// An interval as Debezium's MicroDuration: months count 365.25 / 12 days.
pub(super) fn interval_micros(text: &str) -> Option<i64> {
    const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
    let [years, months, days, hours, minutes, seconds] = interval_parts(text)?;
    let total_days = (years * 12.0 + months) * DAYS_PER_MONTH + days;
    let total_seconds = ((total_days * 24.0 + hours) * 60.0 + minutes) * 60.0 + seconds;
    Some((total_seconds * 1e6) as i64)
}

/// An interval as Debezium's Interval string: every component, `P1Y0M0DT0H0M0S`.
pub(super) fn interval_iso(text: &str) -> Option<String> {
    let [years, months, days, hours, minutes, seconds] = interval_parts(text)?;
    Some(format!(
        "P{years}Y{months}M{days}DT{hours}H{minutes}M{seconds}S"
    ))
}

/// The elements of a one-dimensional array literal (`{a,"b c",NULL}`); `None` elements are
/// SQL NULLs. Nested arrays are flattened, as Debezium has no nested array schema.
pub fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    // A lower bound decoration (`[0:1]={..}`) precedes the braces.
    let start = text.find('{')?;
    let body = text[start..].strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek() == Some(&'{') || chars.peek() == Some(&'}') {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == '"' {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            items.push(Some(item));
        } else {
            let mut item = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == '}' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            items.push((item != "NULL").then_some(item));
        }
        while chars.peek() == Some(&'}') {
            chars.next();
        }
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => return None,
        }
    }
    Some(items)
}
