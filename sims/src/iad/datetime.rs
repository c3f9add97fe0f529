//! The IAD's `datetime_str` (API document 4.4.2, `sys_option/datetime_get`):
//! `YYYY-MM-DDTHH:MM:SS`, e.g. "2024-07-16T16:57:30". The simulator's own
//! conversion, on purpose not the agent's: it walks whole years, then whole
//! months, from 1970 (plain and obviously right; a simulator has no need
//! for a constant-time formula).

const SECS_PER_DAY: u64 = 86_400;

fn leap(year: u64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of unix seconds, UTC (the simulator's time zone
/// setting is not applied to it: the seed does not say how `UTC-8:00` reads).
pub fn utc_text(secs: u64) -> String {
    let mut days = secs / SECS_PER_DAY;
    let rem = secs % SECS_PER_DAY;
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }
    let day = days + 1;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::utc_text;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00");
        // The seed's datetime_get example (UTC-8:00 shows 16:57:30).
        assert_eq!(utc_text(1_721_120_250), "2024-07-16T08:57:30");
        assert_eq!(utc_text(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(utc_text(951_868_799), "2000-02-29T23:59:59");
        assert_eq!(utc_text(4_107_542_400), "2100-03-01T00:00:00", "2100 is not a leap year");
        assert_eq!(utc_text(1_704_067_199), "2023-12-31T23:59:59");
    }
}
