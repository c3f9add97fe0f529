//! The fleet benchmark's parts (`fleet-bench` binary, `tests/fleet.rs`):
//! a generator publishing for N simulated devices over a few MQTT
//! connections (`fleet.rs`), a bare subscriber counting the same messages
//! as the floor (`floor.rs`), a fake responder answering every command on
//! the broker (`responder.rs`), and a REST client timing the API and
//! watching the device list (`probe.rs`). Only 127.0.0.1 is ever used.

pub mod fleet;
pub mod floor;
pub mod probe;
pub mod responder;

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A value at quantile `q` (0..=1) of `v` (sorted here); 0 when empty.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v.get(i.min(v.len() - 1)).copied().unwrap_or(0.0)
}
