//! Time facts: build time, boot time, and whether the clock can be trusted
//! to judge a command's `expires`.
//!
//! Routers without an RTC boot with a clock in the past (OpenWrt sets it
//! to the newest file time it finds) until NTP syncs. The rule (option
//! `clock_trust`): `ntp` (default) trusts the clock when the kernel reports
//! it synchronised (adjtimex without STA_UNSYNC, which busybox ntpd and
//! chrony clear) and it is not before this agent's build time; `always`
//! and `never` override. When untrusted, `expires` is not judged and the
//! command runs.

use crate::config::ClockTrust;

/// Unix time of the build.
pub fn build_epoch() -> u64 {
    env!("DMA_BUILD_EPOCH").parse().unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a unix time.
pub fn format_utc(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `YYYYMMDD-HHMMSS` (UTC) of a unix time: the platform's form of a build
/// time in `versions` (its device list shows `"1.0.0 20181114-173644"`).
pub fn format_build_stamp(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

/// (year, month, day, hour, minute, second) of a unix time, UTC
/// (`dma_wire::time`, the workspace's one calendar algorithm).
pub fn civil(secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let (y, m, d, hh, mm, ss) = dma_wire::time::civil(i64::try_from(secs).unwrap_or(i64::MAX));
    (y, m, d, hh.unsigned_abs(), mm.unsigned_abs(), ss.unsigned_abs())
}

/// Seconds since boot, from /proc/uptime.
pub fn uptime() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(crate::util::decimal))
        .map(|f| f as u64)
        .unwrap_or(0)
}

/// Unix time the router booted.
pub fn boot_time() -> u64 {
    crate::util::unix_now().saturating_sub(uptime())
}

/// Does the kernel say the clock is NTP-synchronised?
pub fn kernel_synced() -> bool {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state
    // into the zeroed struct we own.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::adjtimex(&mut tx) };
    rc >= 0 && rc != libc::TIME_ERROR && (tx.status & libc::STA_UNSYNC) == 0
}

pub fn trusted(mode: ClockTrust) -> bool {
    match mode {
        ClockTrust::Always => true,
        ClockTrust::Never => false,
        ClockTrust::Ntp => crate::util::unix_now() >= build_epoch() && kernel_synced(),
    }
}

/// Has a command with these fields expired? Only judged on a trusted clock:
/// `trusted_now` is now when the clock may be believed ([`trusted`]), else
/// `None` (one look at the kernel's clock state per command, not one per rule).
pub fn expired_at(publish_time: Option<u64>, expires: Option<u64>, trusted_now: Option<u64>) -> bool {
    match (publish_time, expires, trusted_now) {
        (Some(p), Some(e), Some(now)) if e > 0 && p > 0 => now > p.saturating_add(e),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formats_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1542604400), "2018-11-19T05:13:20Z");
        assert_eq!(format_utc(1_951_257_600), "2031-11-01T00:00:00Z");
        assert_eq!(format_build_stamp(1542217004), "20181114-173644");
        assert_eq!(format_build_stamp(0), "19700101-000000");
    }
    #[test]
    fn expiry_only_on_trusted_clock() {
        let now = crate::util::unix_now();
        assert!(expired_at(Some(1000), Some(10), trusted(ClockTrust::Always).then_some(now)));
        assert!(!expired_at(Some(1000), Some(10), trusted(ClockTrust::Never).then_some(now)));
        assert!(!expired_at(Some(now), Some(100), Some(now)));
        assert!(!expired_at(None, Some(10), Some(now)));
        assert!(expired_at(Some(1000), Some(10), Some(1011)));
        assert!(!expired_at(Some(1000), Some(10), Some(1010)));
        assert!(!expired_at(Some(1000), Some(10), None), "an untrusted clock judges nothing");
        assert!(!expired_at(Some(1000), Some(0), Some(5000)), "expires 0: never");
    }
}
