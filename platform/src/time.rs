//! Unix time and the calendar forms the API shows (UTC).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

use dma_wire::time::civil_from_days;

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
