//! The floor: a bare MQTT subscriber on the same broker counting the
//! marker `sys` messages (`mark` = M) the platform must also take in.

use super::now_ms;
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
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
                        let want = fl.mark.load(Ordering::Relaxed);
                        if want > 0 && marker_of(&p.payload) == Some(want) {
                            let t = now_ms();
                            let _ = fl.first_ms.compare_exchange(0, t, Ordering::Relaxed, Ordering::Relaxed);
                            fl.last_ms.store(t, Ordering::Relaxed);
                            fl.marked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        f
    }

    /// Count the markers of `mark` from now on.
    pub fn watch(&self, mark: u64) {
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
