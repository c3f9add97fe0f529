//! A TCP proxy between the agent and the broker, to make uplink faults
//! real: `cut` closes every connection and refuses new ones (the link is
//! down), `pause` accepts and holds everything (a link that silently stops
//! carrying data), `pause_up` holds only agent → broker (so commands still
//! arrive but no answer or PUBACK leaves), `pause_down` the other way
//! (what the agent sends arrives, no PUBACK comes back), `resume` brings it back, and
//! `set_delay` slows each chunk down.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Mode {
    refuse: bool,
    hold_up: bool,
    hold_down: bool,
}

#[derive(Default)]
struct Shared {
    mode: Mutex<Mode>,
    /// Bumped by `cut`: pumps of an older generation end.
    generation: AtomicU64,
    /// Both sockets of every live connection, to shut them on `cut`.
    socks: Mutex<Vec<TcpStream>>,
    delay_ms: AtomicU64,
    stop: AtomicBool,
    /// Connections accepted and forwarded so far.
    accepted: AtomicU64,
}

pub struct Proxy {
    pub port: u16,
    target: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listen on a free port of 127.0.0.1 and forward to 127.0.0.1:`target`.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared::default());
        let s2 = shared.clone();
        std::thread::spawn(move || accept_loop(listener, target, s2));
        Proxy { port, target, shared }
    }

    /// The link goes down: every connection is closed, new ones are refused
    /// (accepted and closed at once), data held by a pause is dropped.
    pub fn cut(&self) {
        self.shared.mode.lock().unwrap().refuse = true;
        self.drop_all();
    }

    /// Close every connection now, without refusing new ones.
    pub fn drop_all(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        for s in self.shared.socks.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Accept, but forward nothing in either direction.
    pub fn pause(&self) {
        let mut m = self.shared.mode.lock().unwrap();
        m.hold_up = true;
        m.hold_down = true;
    }

    /// Forward nothing from the agent to the broker (answers, PUBACKs,
    /// pings); broker → agent still flows.
    pub fn pause_up(&self) {
        self.shared.mode.lock().unwrap().hold_up = true;
    }

    /// Forward nothing from the broker to the agent (PUBACKs, commands,
    /// ping answers); agent → broker still flows.
    pub fn pause_down(&self) {
        self.shared.mode.lock().unwrap().hold_down = true;
    }

    /// Back to normal: accept and forward (what a pause held goes on).
    pub fn resume(&self) {
        let mut m = self.shared.mode.lock().unwrap();
        *m = Mode::default();
    }

    /// Delay every forwarded chunk by `ms` (0: none).
    pub fn set_delay(&self, ms: u64) {
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.drop_all();
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn accept_loop(listener: TcpListener, target: u16, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        if shared.mode.lock().unwrap().refuse {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let gen = shared.generation.load(Ordering::SeqCst);
        {
            let mut socks = shared.socks.lock().unwrap();
            for s in [&client, &upstream] {
                if let Ok(c) = s.try_clone() {
                    socks.push(c);
                }
            }
        }
        let pair = |a: &TcpStream, b: &TcpStream| (a.try_clone().expect("clone"), b.try_clone().expect("clone"));
        let (c1, u1) = pair(&client, &upstream);
        let (s_up, s_down) = (shared.clone(), shared.clone());
        std::thread::spawn(move || pump(c1, u1, true, gen, s_up));
        std::thread::spawn(move || pump(upstream, client, false, gen, s_down));
    }
}

/// Copy `from` → `to` until either side closes or a `cut` ends this
/// generation. `up`: agent → broker.
fn pump(mut from: TcpStream, mut to: TcpStream, up: bool, gen: u64, shared: Arc<Shared>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 16 * 1024];
    let alive = || shared.generation.load(Ordering::SeqCst) == gen && !shared.stop.load(Ordering::SeqCst);
    'outer: while alive() {
        // While held, read nothing more: TCP back-pressure does the rest.
        while held(&shared, up) {
            if !alive() {
                break 'outer;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        // Data read just as a pause began is held too.
        while held(&shared, up) {
            if !alive() {
                break 'outer;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let d = shared.delay_ms.load(Ordering::SeqCst);
        if d > 0 {
            std::thread::sleep(Duration::from_millis(d));
        }
        if !alive() || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn held(shared: &Shared, up: bool) -> bool {
    let m = shared.mode.lock().unwrap();
    if up {
        m.hold_up
    } else {
        m.hold_down
    }
}
