//! `--since`: `30m`, `24h`, `7d`, `2w`, or a date (`2026-11-30`, `2026-11-30 14:00:00`, RFC 3339).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};

/// A `--since` value, parsed into the text form of the `started_at` columns (UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Since(pub String);

impl std::str::FromStr for Since {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text, Utc::now()).map(Since)
    }
}

impl Since {
    /// The time itself.
    pub fn utc(&self) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(&self.0, "%Y-%m-%d %H:%M:%S%.f")
            .map(|at| at.and_utc())
            .unwrap_or_default()
    }
}

fn format(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

pub fn parse(text: &str, now: DateTime<Utc>) -> Result<String, String> {
    let text = text.trim();
    let unit = text.chars().last().unwrap_or(' ');
    if let Ok(amount) = text[..text.len() - unit.len_utf8().min(text.len())].parse::<i64>() {
        let delta = match unit {
            's' => TimeDelta::try_seconds(amount),
            'm' => TimeDelta::try_minutes(amount),
            'h' => TimeDelta::try_hours(amount),
            'd' => TimeDelta::try_days(amount),
            'w' => TimeDelta::try_weeks(amount),
            _ => None,
        };
        if let Some(at) = delta.and_then(|d| now.naive_utc().checked_sub_signed(d)) {
            return Ok(format(at));
        }
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(format(at.naive_utc()));
    }
    for pattern in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, pattern) {
            return Ok(format(at));
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(format(day.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    Err(format!(
        "'{text}' is not a duration (30m, 24h, 7d, 2w) or a date (2026-11-30, 2026-11-30 14:00:00)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates_become_utc_column_text() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse("7d", now).unwrap(), "2026-11-23 12:00:00.000000");
        assert_eq!(parse("24h", now).unwrap(), "2026-11-29 12:00:00.000000");
        assert_eq!(parse("30m", now).unwrap(), "2026-11-30 11:30:00.000000");
        assert_eq!(
            parse("2026-11-01", now).unwrap(),
            "2026-11-01 00:00:00.000000"
        );
        assert_eq!(
            parse("2026-11-01 08:30:00", now).unwrap(),
            "2026-11-01 08:30:00.000000"
        );
        assert_eq!(
            parse("2026-11-01T08:30:00+01:00", now).unwrap(),
            "2026-11-01 07:30:00.000000"
        );
        assert!(parse("yesterday", now).is_err());
        assert!(parse("", now).is_err());
        assert!(parse("7x", now).is_err());
    }
}
