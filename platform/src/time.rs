//! Unix time and the calendar forms the API shows (UTC).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYYMMDD` of a unix time, e.g. 20181126.
pub fn yyyymmdd(t: i64) -> u64 {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    (y.clamp(0, 9999) * 10_000 + m * 100 + d) as u64
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), the seed's `datetime` form.
pub fn datetime(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(yyyymmdd(0), 19700101);
        assert_eq!(yyyymmdd(1543190400), 20181126);
        assert_eq!(datetime(1536748977), "2018-09-12 10:42:57");
        assert_eq!(yyyymmdd(951_782_400), 20000229);
    }
}
