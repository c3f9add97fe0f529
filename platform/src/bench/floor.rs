//! The floor: a bare MQTT subscriber on the same broker counting the
//! marker `sys` messages (`mark` = M) the platform must also take in, and
//! checking the generator's order: each device's `sys` must arrive in
//! `seq` order (the probe takes a device's highest `seq` as its last).

use super::now_ms;
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Floor {
    /// Messages received on `{p}/sys/+`.
    pub all: AtomicU64,
    /// Marker messages received (the mark asked for by `watch`).
    pub marked: AtomicU64,
    pub mark: AtomicU64,
    /// Receipt time of the first and last marker, ms.
    pub first_ms: AtomicI64,
    pub last_ms: AtomicI64,
    /// `sys` messages whose `seq` was not above the last one received from
    /// the same device (must stay 0: the generator's order broken).
    pub out_of_order: AtomicU64,
    /// Each device's (topic's) last `seq` received.
    last_seq: Mutex<HashMap<String, u64>>,
    /// By fleet index: the device's marker (the mark watched) received here.
    got_marker: Mutex<Vec<bool>>,
}

impl Floor {
    pub fn start(port: u16, prefix: &str) -> Arc<Floor> {
        let f = Arc::new(Floor::default());
        let mut o = MqttOptions::new(format!("fleet-floor-{}", std::process::id()), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut conn) = Client::new(o, 100);
        let topic = format!("{prefix}/sys/+");
        let fl = f.clone();
        std::thread::spawn(move || {
            let _keep: Client = client.clone();
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = client.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        fl.all.fetch_add(1, Ordering::Relaxed);
                        fl.check_order(&p.topic, &p.payload);
                        let want = fl.mark.load(Ordering::Relaxed);
                        if want > 0 && marker_of(&p.payload) == Some(want) {
                            let t = now_ms();
                            let _ = fl.first_ms.compare_exchange(0, t, Ordering::Relaxed, Ordering::Relaxed);
                            fl.last_ms.store(t, Ordering::Relaxed);
                            fl.marked.fetch_add(1, Ordering::Relaxed);
                            if let Some(i) = p.topic.rsplit('/').next().and_then(super::fleet::index) {
                                let mut got = fl.got_marker.lock().unwrap_or_else(|e| e.into_inner());
                                if got.len() <= i {
                                    got.resize(i + 1, false);
                                }
                                if let Some(g) = got.get_mut(i) {
                                    *g = true;
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        f
    }

    /// Count a `sys` that does not come after its device's previous one.
    fn check_order(&self, topic: &str, payload: &[u8]) {
        let Some(seq) = std::str::from_utf8(payload).ok().and_then(super::probe::seq_of) else { return };
        let mut last = self.last_seq.lock().unwrap_or_else(|e| e.into_inner());
        if last.insert(topic.to_string(), seq).is_some_and(|prev| prev >= seq) {
            self.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether device `i`'s marker (the mark watched) has come in here.
    pub fn got_marker(&self, i: usize) -> bool {
        self.got_marker.lock().unwrap_or_else(|e| e.into_inner()).get(i).copied().unwrap_or(false)
    }

    /// Count the markers of `mark` from now on.
    pub fn watch(&self, mark: u64) {
        self.got_marker.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.marked.store(0, Ordering::Relaxed);
        self.first_ms.store(0, Ordering::Relaxed);
        self.last_ms.store(0, Ordering::Relaxed);
        self.mark.store(mark, Ordering::Relaxed);
    }
}

/// The `mark` of a bench `sys` payload (a cheap scan, not a full parse).
pub fn marker_of(payload: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(payload).ok()?;
    let rest = &s[s.find("\"mark\":")? + 7..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}
