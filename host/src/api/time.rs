//! Reading event times out of data: epoch numbers and the usual date-time strings.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

/// Epoch milliseconds from a JSON value: a number (epoch milliseconds), or a string holding an
/// RFC 3339 date-time, a `YYYY-MM-DD[ T]HH:MM:SS[.fff]` time (UTC), a date, or digits.
pub fn timestamp_millis(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => parse_timestamp_millis(s),
        _ => None,
    }
}

/// See [`timestamp_millis`].
pub fn parse_timestamp_millis(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    s.parse::<i64>().ok()
}

/// The UTC calendar date of an epoch-milliseconds time, as `YYYY-MM-DD`.
pub fn date_of_millis(millis: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(millis).map(|dt| dt.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_numbers_and_common_strings() {
        let expected = 1_704_113_445_000; // 2024-01-01T12:50:45Z
        assert_eq!(timestamp_millis(&json!(expected)), Some(expected));
        assert_eq!(
            timestamp_millis(&json!("2024-01-01T12:50:45Z")),
            Some(expected)
        );
        assert_eq!(
            timestamp_millis(&json!("2024-01-01T13:50:45+01:00")),
            Some(expected)
        );
        assert_eq!(
            timestamp_millis(&json!("2024-01-01 12:50:45")),
            Some(expected)
        );
        assert_eq!(
            timestamp_millis(&json!("2024-01-01T12:50:45.000")),
            Some(expected)
        );
        assert_eq!(
            timestamp_millis(&json!("2024-01-01")),
            Some(1_704_067_200_000)
        );
        assert_eq!(timestamp_millis(&json!("yesterday")), None);
        assert_eq!(date_of_millis(expected).as_deref(), Some("2024-01-01"));
    }
}
