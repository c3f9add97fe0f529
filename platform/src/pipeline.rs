//! The ingest pipeline between the MQTT session and the database: two
//! bounded queues, each with its own worker thread, so telemetry can never
//! delay what must not wait.
//!
//! - **control** (`state`, `periph`, `event`, `resp/cmd`): states and
//!   peripherals one by one, each its own durable transaction, as before;
//!   the answers waiting together are taken in one durable transaction,
//!   the events in another (group commit, no added wait). A full queue makes the
//!   MQTT thread wait (back-pressure on the broker connection): nothing of
//!   these is ever shed.
//! - **telemetry** (`sys`, `procs`, `versions`, and topics only a
//!   message route subscribes to): written in batches — one transaction
//!   (PostgreSQL: two at once, split by serial, for 1,000 rows or more)
//!   for up to `ingest.batch_max` messages, the last value winning for each
//!   device and kind (`ingest::telemetry_read`, `telemetry_write`). A full queue sheds the
//!   message and counts it: a device reports again within its interval.
//!   Reading a batch (parse, trust, routes) and writing it are two
//!   threads: the next batch is read while the last one commits, with one
//!   read batch at most waiting for the writer. A crash loses at most the
//!   batch being written, the one read batch waiting, and what waits in
//!   the queue (telemetry only, which the next report replaces).
//!
//! The figures (`GET platform/ingest`, admin) say what came in, what was
//! written, in how many batches, and what was shed.

use crate::db::batch::TxTiming;
use crate::ingest::TelemetryWrite;
use crate::trust::{classify, Kind};
use crate::Shared;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Control messages handled together at most (answers: one transaction).
const CONTROL_BATCH: usize = 500;

/// One message as the broker delivered it, with its receipt time.
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub now: i64,
}

/// Counters since start.
#[derive(Default)]
pub struct Figures {
    pub telemetry_in: AtomicU64,
    pub telemetry_shed: AtomicU64,
    pub telemetry_written: AtomicU64,
    pub batches: AtomicU64,
    pub largest_batch: AtomicU64,
    pub slowest_batch_ms: AtomicU64,
    /// Where the telemetry batches' time went, summed (µs), and the
    /// slowest batch's parts: reading the messages (parse, trust, routes),
    /// waiting for the writer connection, the statements, the commit.
    pub stage_us: [AtomicU64; 4],
    pub slowest_parts_ms: [AtomicU64; 4],
    pub control_in: AtomicU64,
    pub control_waits: AtomicU64,
    pub control_done: AtomicU64,
    pub write_errors: AtomicU64,
}

pub struct Pipeline {
    telemetry: SyncSender<Msg>,
    control: SyncSender<Msg>,
    pub figures: Figures,
}

/// The receiving ends, handed to `start`.
pub struct Receivers {
    telemetry: Receiver<Msg>,
    control: Receiver<Msg>,
}

impl Pipeline {
    pub fn new(cfg: &crate::config::IngestConfig) -> (Pipeline, Receivers) {
        let (ttx, trx) = sync_channel(cfg.queue);
        let (ctx, crx) = sync_channel(cfg.control_queue);
        (Pipeline { telemetry: ttx, control: ctx, figures: Figures::default() }, Receivers { telemetry: trx, control: crx })
    }

    /// The figures as JSON, with the queues' current depths.
    pub fn figures_json(&self) -> Value {
        let f = &self.figures;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (tin, tshed, tw) = (g(&f.telemetry_in), g(&f.telemetry_shed), g(&f.telemetry_written));
        let (cin, cdone) = (g(&f.control_in), g(&f.control_done));
        json!({
            "telemetry": {
                "received": tin, "shed": tshed, "written": tw,
                "waiting": tin.saturating_sub(tshed).saturating_sub(tw),
                "batches": g(&f.batches), "largestBatch": g(&f.largest_batch), "slowestBatchMs": g(&f.slowest_batch_ms),
                "stagesMs": stages(&f.stage_us, 1000), "slowestBatchStagesMs": stages(&f.slowest_parts_ms, 1),
            },
            "control": {"received": cin, "done": cdone, "waiting": cin.saturating_sub(cdone), "brokerWaits": g(&f.control_waits)},
            "writeErrors": g(&f.write_errors),
        })
    }
}

/// The four stages by name (`Figures::stage_us`), each divided by `div`.
fn stages(v: &[AtomicU64; 4], div: u64) -> Value {
    let [a, b, c, d] = v.each_ref().map(|x| x.load(Ordering::Relaxed) / div.max(1));
    json!({"read": a, "lock": b, "write": c, "commit": d})
}

/// Which queue a topic goes to: true for telemetry.
fn is_telemetry(sh: &Shared, topic: &str) -> bool {
    let dt = topic.strip_prefix(&sh.cfg.broker.prefix).and_then(|r| r.strip_prefix('/')).and_then(classify);
    match dt {
        Some(d) => matches!(d.kind, Kind::Sys | Kind::Procs | Kind::Versions),
        None => true, // a route-only topic
    }
}

impl Shared {
    /// Hand one message from the broker to its queue (the MQTT thread).
    pub fn ingest(&self, m: Msg) {
        if let Some(t) = m.topic.strip_prefix("$SYS/") {
            return self.sys.record(t, &m.payload);
        }
        let f = &self.ingest.figures;
        if is_telemetry(self, &m.topic) {
            f.telemetry_in.fetch_add(1, Ordering::Relaxed);
            if let Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) = self.ingest.telemetry.try_send(m) {
                let n = f.telemetry_shed.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    log::warn!("ingest: telemetry queue full, shedding ({} shed so far, last {:?})", n + 1, crate::logger::clean(&m.topic));
                }
            }
            return;
        }
        f.control_in.fetch_add(1, Ordering::Relaxed);
        match self.ingest.control.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(m)) => {
                f.control_waits.fetch_add(1, Ordering::Relaxed);
                if self.ingest.control.send(m).is_err() {
                    f.control_done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                f.control_done.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Start the two workers.
pub fn start(sh: Arc<Shared>, rx: Receivers) -> Result<(), String> {
    let c = sh.clone();
    let control = rx.control;
    std::thread::Builder::new()
        .name("ingest-control".into())
        .spawn(move || {
            // No lingering: an answer waits for nothing but the messages already queued.
            while let Some(batch) = next_batch(&control, CONTROL_BATCH, Duration::ZERO) {
                let n = batch.len() as u64;
                crate::ingest::control_batch(&c, batch);
                c.ingest.figures.control_done.fetch_add(n, Ordering::Relaxed);
            }
        })
        .map_err(|e| format!("ingest thread: {e}"))?;
    let telemetry = rx.telemetry;
    // One read batch waits for the writer at most: reading the next batch
    // overlaps the last one's statements and commit (the disk sync), and
    // a slow disk holds the reader back (then the queue, then shedding).
    let (wtx, wrx) = sync_channel::<(TelemetryWrite, Duration)>(1);
    let w = sh.clone();
    std::thread::Builder::new()
        .name("ingest-write".into())
        .spawn(move || {
            for (batch, read) in wrx {
                let t0 = Instant::now();
                let timing = crate::ingest::telemetry_write(&w, &batch).unwrap_or_default();
                record(&w.ingest.figures, batch.messages, read, t0.elapsed(), timing);
            }
        })
        .map_err(|e| format!("ingest thread: {e}"))?;
    std::thread::Builder::new()
        .name("ingest-telemetry".into())
        .spawn(move || {
            let max = sh.cfg.ingest.batch_max;
            let linger = Duration::from_millis(sh.cfg.ingest.batch_linger_ms);
            while let Some(batch) = next_batch(&telemetry, max, linger) {
                let t0 = Instant::now();
                let prepared = crate::ingest::telemetry_read(&sh, batch);
                if wtx.send((prepared, t0.elapsed())).is_err() {
                    return log::error!("ingest: the writer thread is gone");
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("ingest thread: {e}"))
}

/// Count a written batch: its messages, its size, and where its time went
/// (reading, then the write's lock, statements and commit).
fn record(f: &Figures, n: u64, read: Duration, write: Duration, timing: TxTiming) {
    f.telemetry_written.fetch_add(n, Ordering::Relaxed);
    f.batches.fetch_add(1, Ordering::Relaxed);
    f.largest_batch.fetch_max(n, Ordering::Relaxed);
    let db = timing.lock + timing.write + timing.commit;
    // What the write took outside the transaction's parts (logging a failure) counts as its statements.
    let parts = [read, timing.lock, timing.write + write.saturating_sub(db), timing.commit];
    for (sum, d) in f.stage_us.iter().zip(parts) {
        sum.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
    let ms = (read + write).as_millis() as u64;
    if f.slowest_batch_ms.fetch_max(ms, Ordering::Relaxed) < ms {
        for (slot, d) in f.slowest_parts_ms.iter().zip(parts) {
            slot.store(d.as_millis() as u64, Ordering::Relaxed);
        }
    }
}

/// Wait for one message, then take what else arrives within `linger`, up
/// to `max` (what piled up while the last batch was written comes at once).
/// The linger is one sleep, not a wait per message: a wake-up per message
/// (3,333/s at 100,000 devices) cost the MQTT thread a context switch each.
/// `None` when the queue is closed.
fn next_batch(rx: &Receiver<Msg>, max: usize, linger: Duration) -> Option<Vec<Msg>> {
    let first = rx.recv().ok()?;
    let mut batch = Vec::with_capacity(max.min(1024));
    batch.push(first);
    drain(rx, &mut batch, max);
    if batch.len() < max && !linger.is_zero() {
        std::thread::sleep(linger);
        drain(rx, &mut batch, max);
    }
    Some(batch)
}

/// Take what waits, up to `max` in `batch`.
fn drain(rx: &Receiver<Msg>, batch: &mut Vec<Msg>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(m) => batch.push(m),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_what_waits_up_to_max() {
        let (tx, rx) = sync_channel(100);
        for i in 0..10 {
            tx.send(Msg { topic: format!("t{i}"), payload: vec![], retain: false, now: 0 }).unwrap();
        }
        let b = next_batch(&rx, 4, Duration::from_millis(0)).unwrap();
        assert_eq!(b.len(), 4);
        let b = next_batch(&rx, 100, Duration::from_millis(10)).unwrap();
        assert_eq!(b.len(), 6, "the rest, after lingering 10 ms");
        drop(tx);
        assert!(next_batch(&rx, 4, Duration::from_millis(0)).is_none());
    }
}
