//! What `replay audit` reads: the bucket ([`bucket`]), the table ([`table`]) with the queries
//! kept in one file ([`queries`]), over a window of whole UTC hours ([`Window`]).

pub mod bucket;
pub mod queries;
pub mod table;

use anyhow::{Result, bail};
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};

/// Whole UTC hours, `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// `--from`/`--to` as `YYYY-MM-DD` (midnight) or `YYYY-MM-DDTHH` (an hour), UTC.
    pub fn parse(from: &str, to: &str) -> Result<Self> {
        let (from, to) = (hour(from)?, hour(to)?);
        if from >= to {
            bail!("--from must be before --to");
        }
        if to - from > Duration::days(31) {
            bail!("a window is at most 31 days");
        }
        Ok(Self { from, to })
    }

    /// The UTC day before the one `now` is in (what the daily run audits).
    pub fn yesterday(now: DateTime<Utc>) -> Self {
        let today = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        Self {
            from: today - Duration::days(1),
            to: today,
        }
    }

    /// Every hour in the window, in order: the bucket's `YYYY/MM/DD/HH` folders.
    pub fn hours(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let n = (self.to - self.from).num_hours();
        (0..n).map(move |i| self.from + Duration::hours(i))
    }
}

fn hour(s: &str) -> Result<DateTime<Utc>> {
    let parsed = match s.len() {
        10 => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
        13 => chrono::NaiveDateTime::parse_from_str(&format!("{s}:00"), "%Y-%m-%dT%H:%M").ok(),
        _ => None,
    };
    match parsed {
        Some(t) if t.minute() == 0 => Ok(t.and_utc()),
        _ => bail!("`{s}` is not YYYY-MM-DD or YYYY-MM-DDTHH (UTC)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_whole_utc_hours() {
        let w = Window::parse("2026-11-27", "2026-11-27T03").unwrap();
        let hours: Vec<String> = w
            .hours()
            .map(|h| h.format("%Y/%m/%d/%H").to_string())
            .collect();
        assert_eq!(hours, ["2026/11/27/00", "2026/11/27/01", "2026/11/27/02"]);
        assert!(Window::parse("2026-11-28", "2026-11-27").is_err());
        assert!(Window::parse("yesterday", "2026-11-27").is_err());
        assert!(
            Window::parse("2026-01-01", "2026-03-01").is_err(),
            "over 31 days"
        );
        let y = Window::yesterday("2026-11-28T06:10:00Z".parse().unwrap());
        assert_eq!(y, Window::parse("2026-11-27", "2026-11-28").unwrap());
    }
}
