//! Calendar dates of UTC times, for the protocol's text forms (`YYYY-MM-DD`, RFC 3339 with
//! milliseconds): Howard Hinnant's day-number algorithms on the proleptic Gregorian calendar.

use crate::ids::Ms;

const MS_PER_DAY: i64 = 86_400_000;

/// The wall clock as Unix milliseconds (0 before 1970, which a correct clock never reads).
pub fn now_ms() -> Ms {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| Ms::try_from(d.as_millis()).unwrap_or(Ms::MAX))
}

/// `(year, month, day)` of a day number (days since 1970-01-01).
pub fn date_of_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// The day number of a date, or `None` when the month or day does not exist.
pub fn days_of_date(year: i64, month: u32, day: u32) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[month as usize - 1] {
        return None;
    }
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    Some(era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468)
}

/// `YYYY-MM-DD` of a day number.
pub fn date_text(days: i64) -> String {
    let (y, m, d) = date_of_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let y = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let d = parts.next()?.parse().ok()?;
    days_of_date(y, m, d)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of a time in ms since the epoch.
pub fn rfc3339_ms(ms: Ms) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        date_text(days),
        rem / 3_600_000,
        rem % 3_600_000 / 60_000,
        rem % 60_000 / 1000,
        rem % 1000
    )
}

/// The time of `YYYY-MM-DDTHH:MM:SS[.fff]Z` in ms since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<Ms> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let days = parse_date(date)?;
    let mut hms = time.splitn(3, ':');
    let h: i64 = hms.next()?.parse().ok()?;
    let min: i64 = hms.next()?.parse().ok()?;
    let secs: f64 = hms.next()?.parse().ok()?;
    if !(0..24).contains(&h) || !(0..60).contains(&min) || !(0.0..61.0).contains(&secs) {
        return None;
    }
    Some(days * MS_PER_DAY + h * 3_600_000 + min * 60_000 + (secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_day_numbers_agree() {
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(parse_date("2026-11-25"), Some(20_782));
        assert_eq!(date_text(20_782), "2026-11-25");
        assert_eq!(date_text(-1), "1969-12-31");
        assert!(parse_date("2000-02-29").is_some());
        for bad in ["2100-02-29", "2026-13-01", "2026-00-10", "x", "2026-1"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        for days in (-700_000..800_000).step_by(997) {
            assert_eq!(parse_date(&date_text(days)), Some(days));
        }
    }

    #[test]
    fn rfc3339_round_trips_to_the_millisecond() {
        assert_eq!(rfc3339_ms(1500), "1970-01-01T00:00:01.500Z");
        assert_eq!(
            parse_rfc3339("2026-11-25T10:31:22.211Z"),
            Some(1_795_602_682_211)
        );
        for ms in [0, 1, 999, 1_795_602_682_211, -1] {
            assert_eq!(parse_rfc3339(&rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339("2026-11-25 10:31:22Z"), None);
        assert_eq!(parse_rfc3339("2026-11-25T25:00:00Z"), None);
    }
}
