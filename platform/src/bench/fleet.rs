//! N simulated devices on a few MQTT connections: retained births, then
//! `sys` and `procs` on their per-device topics every `period`, spread
//! evenly over the period (device i at i·period/N, its `procs` half a
//! period later), and on demand a burst of marker `sys` from every device.
//! Every `sys` carries `pt` (publish time, ms), `seq` (the fleet's publish
//! order) and `mark`.
//!
//! A device's regular `sys` (its connection's steady thread) and its marker
//! (the burst's thread) are sent from different threads. Each message is
//! stamped and handed to its connection under that connection's lock, so a
//! device's messages reach the broker in `seq` order, as one real device's
//! would: the message of a device with the highest `seq` is its last. (`pt`
//! alone cannot order them: a regular `sys` stamped in the same millisecond
//! as the marker, or stamped before it but handed over after, looked older
//! than a marker it had replaced, and the probe waited a whole period for
//! the device's next report.)

use super::now_ms;
use rumqttc::{Client, MqttOptions, QoS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The serial of device `i`.
pub fn sn(i: usize) -> String {
    format!("FB{i:08}")
}

/// The index of a serial made by `sn`.
pub fn index(sn: &str) -> Option<usize> {
    sn.strip_prefix("FB").and_then(|s| s.parse().ok())
}

pub struct Fleet {
    pub n: usize,
    prefix: String,
    clients: Vec<Client>,
    /// One per connection: held while a message is stamped and handed over.
    locks: Vec<Mutex<()>>,
    /// The last `seq` given (the first message gets 1).
    seq: AtomicU64,
    /// Messages handed to the connections.
    pub sent: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
    /// Each device's last marker's `seq` (0: none yet): a `sys` with this
    /// `seq` or a higher one is the marker or was published after it.
    pub marker_seq: Vec<AtomicU64>,
}

/// A `sys` payload stamped `seq`, published now.
pub fn sys_payload(sn: &str, mark: u64, seq: u64) -> String {
    let t = now_ms();
    format!(
        r#"{{"sn":"{sn}","time":{},"pt":{t},"seq":{seq},"mark":{mark},"d":{{"load":[0.12,0.08,0.05],"mem":{{"total":126976,"free":53412,"cached":21004}},"uptime":{},"wan":{{"ip":"10.20.30.40","rx":123456789,"tx":98765432}},"lte":{{"rssi":-71,"rsrp":-98,"operator":"Bench"}}}}}}"#,
        t / 1000,
        t / 1000 % 1_000_000
    )
}

fn procs_payload(sn: &str) -> String {
    format!(
        r#"{{"sn":"{sn}","time":{},"d":[{{"name":"dnsmasq","pid":1201,"mem":1320}},{{"name":"dropbear","pid":988,"mem":640}},{{"name":"dma-agent","pid":1502,"mem":2100}},{{"name":"netifd","pid":770,"mem":1012}}]}}"#,
        now_ms() / 1000
    )
}

impl Fleet {
    /// Connect `conns` clients to the broker on 127.0.0.1:`port`.
    pub fn connect(port: u16, prefix: &str, n: usize, conns: usize) -> Fleet {
        let mut clients = Vec::new();
        for k in 0..conns.max(1) {
            let mut o = MqttOptions::new(format!("fleet-bench-{k}-{}", std::process::id()), "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(30));
            o.set_inflight(200);
            let (client, mut conn) = Client::new(o, 10_000);
            std::thread::spawn(move || {
                for ev in conn.iter() {
                    if ev.is_err() {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            });
            clients.push(client);
        }
        let locks = clients.iter().map(|_| Mutex::new(())).collect();
        Fleet {
            n,
            prefix: prefix.to_string(),
            clients,
            locks,
            seq: AtomicU64::new(0),
            sent: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            marker_seq: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn client(&self, i: usize) -> &Client {
        // `clients` is never empty (connect makes at least one).
        &self.clients[i % self.clients.len()]
    }

    fn publish(&self, i: usize, topic: String, payload: String, retain: bool) {
        if self.client(i).publish(topic, QoS::AtLeastOnce, retain, payload.into_bytes()).is_ok() {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Device `i`'s `sys` (`mark` 0: a regular one), stamped and handed to
    /// its connection under the connection's lock (so in `seq` order).
    /// Returns its `seq`.
    pub fn publish_sys(&self, i: usize, mark: u64) -> u64 {
        let _turn = self.locks.get(i % self.locks.len().max(1)).map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        if mark > 0 {
            if let Some(m) = self.marker_seq.get(i) {
                m.store(seq, Ordering::Relaxed);
            }
        }
        let s = sn(i);
        self.publish(i, format!("{}/sys/{s}", self.prefix), sys_payload(&s, mark, seq), false);
        seq
    }

    /// Every device's retained birth.
    pub fn births(&self) {
        self.births_range(0..self.n);
    }

    /// The retained births of devices `range`.
    pub fn births_range(&self, range: std::ops::Range<usize>) {
        for i in range {
            let s = sn(i);
            let p = format!(r#"{{"sn":"{s}","online":true,"bootTime":{},"ver":"bench","signed":true}}"#, now_ms() / 1000 - 3600);
            self.publish(i, format!("{}/state/{s}", self.prefix), p, true);
        }
    }

    /// One marker `sys` from every device, as fast as the connections take them.
    pub fn marker(&self, mark: u64) {
        for i in 0..self.n {
            self.publish_sys(i, mark);
        }
    }

    /// `sys` + `procs` from every device each `period`, spread evenly, until `stop`.
    pub fn steady(self: &Arc<Self>, period: Duration) -> Vec<std::thread::JoinHandle<()>> {
        let per = self.clients.len();
        (0..per)
            .map(|k| {
                let f = self.clone();
                std::thread::spawn(move || {
                    let start = Instant::now();
                    let n = f.n.max(1);
                    let slot = period.as_secs_f64() / n as f64;
                    // This connection's events in time order: (offset s, device, is sys).
                    let mut ev: Vec<(f64, usize, bool)> = Vec::new();
                    for i in (k..f.n).step_by(per) {
                        ev.push((i as f64 * slot, i, true));
                        ev.push(((i as f64 * slot + period.as_secs_f64() / 2.0) % period.as_secs_f64(), i, false));
                    }
                    ev.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let mut round = 0u32;
                    while !f.stop.load(Ordering::Relaxed) {
                        let base = period.as_secs_f64() * f64::from(round);
                        for (off, i, is_sys) in &ev {
                            if f.stop.load(Ordering::Relaxed) {
                                return;
                            }
                            let due = Duration::from_secs_f64(base + off);
                            let el = start.elapsed();
                            if due > el {
                                std::thread::sleep(due - el);
                            }
                            if *is_sys {
                                f.publish_sys(*i, 0);
                            } else {
                                let s = sn(*i);
                                f.publish(*i, format!("{}/procs/{s}", f.prefix), procs_payload(&s), false);
                            }
                        }
                        round += 1;
                    }
                })
            })
            .collect()
    }
}
