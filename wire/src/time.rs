//! Calendar forms of the contract's unix times (UTC): the one civil-date
//! algorithm of the workspace, used by the agent (build stamp in
//! `versions`, `ctl`'s display) and the platform (`YYYYMMDD`, `datetime`).

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`; exact for every `i64` day count the callers pass).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe.saturating_add(era.saturating_mul(400)).saturating_add(i64::from(m <= 2)), m, d)
}

/// (year, month, day, hour, minute, second) of a unix time, UTC.
pub fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    (y, m, d, s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_542_994_604), (2018, 11, 23, 17, 36, 44));
        assert_eq!(civil(4_107_542_399), (2100, 2, 28, 23, 59, 59));
        assert_eq!(civil(4_107_542_400), (2100, 3, 1, 0, 0, 0), "2100 is not a leap year");
        assert_eq!(civil(-1), (1969, 12, 31, 23, 59, 59));
    }
}
