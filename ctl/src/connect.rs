//! The broker connection of the CLI: connect (with a clear failure when
//! the broker is away or refuses us), subscribe, receive.

use super::args::BrokerOpts;
use super::Failure;
use rumqttc::{Client, ConnectReturnCode, ConnectionError, Event, Incoming, MqttOptions, QoS, Transport};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest message accepted (bounded buffers).
const MAX_PACKET: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Set by SIGINT/SIGTERM: stop watching and leave cleanly.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C ends the current wait instead of killing the process.
pub fn catch_interrupt() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { sigaction(s, &act) };
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// One message received.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

enum Ev {
    Connected,
    Refused(ConnectReturnCode),
    Failed(String),
    SubAck,
    Publish(Message),
}

/// A connected client.
pub struct Conn {
    pub client: Client,
    rx: Receiver<Ev>,
    pending: VecDeque<Message>,
    cancel: Option<Arc<AtomicBool>>,
}

fn refused_text(code: ConnectReturnCode) -> String {
    match code {
        ConnectReturnCode::BadUserNamePassword => "bad username or password (check --user and --password / DMA_CTL_PASSWORD)".into(),
        ConnectReturnCode::NotAuthorized => "not authorized (check --user, --password, or the client certificate)".into(),
        ConnectReturnCode::ServiceUnavailable => "service unavailable".into(),
        ConnectReturnCode::BadClientId => "client id rejected".into(),
        ConnectReturnCode::RefusedProtocolVersion => "MQTT 3.1.1 not supported by the broker".into(),
        ConnectReturnCode::Success => "success".into(),
    }
}

fn options(b: &BrokerOpts) -> Result<MqttOptions, Failure> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let id = format!("dma-ctl-{}-{now}", std::process::id());
    let mut o = MqttOptions::new(id, b.host.clone(), b.port());
    o.set_clean_session(true);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    if !b.user.is_empty() || !b.password.is_empty() {
        o.set_credentials(b.user.clone(), b.password.clone());
    }
    if b.tls {
        let tls = dma_agent::mqtt::tls::client_config(&b.ca, &b.cert, &b.key).map_err(Failure::usage)?;
        o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
    }
    Ok(o)
}

impl Conn {
    /// Connect and wait for the broker's CONNACK.
    pub fn open(b: &BrokerOpts) -> Result<Conn, Failure> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let opts = options(b)?;
        let where_ = format!("{}:{}", b.host, b.port());
        let (client, mut connection) = Client::new(opts, 64);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        connection.eventloop.set_network_options(net);
        let (tx, rx) = sync_channel::<Ev>(1024);
        std::thread::Builder::new()
            .name("ctl-mqtt".into())
            .spawn(move || {
                for ev in connection.iter() {
                    let out = match ev {
                        Ok(Event::Incoming(Incoming::ConnAck(_))) => Ev::Connected,
                        Ok(Event::Incoming(Incoming::SubAck(_))) => Ev::SubAck,
                        Ok(Event::Incoming(Incoming::Publish(p))) => {
                            Ev::Publish(Message { topic: p.topic.clone(), payload: p.payload.to_vec(), retain: p.retain })
                        }
                        Ok(_) => continue,
                        Err(ConnectionError::ConnectionRefused(code)) => Ev::Refused(code),
                        Err(e) => Ev::Failed(e.to_string()),
                    };
                    let last = matches!(out, Ev::Refused(_) | Ev::Failed(_));
                    if tx.send(out).is_err() || last {
                        return;
                    }
                }
            })
            .map_err(|e| Failure::broker(format!("cannot start the MQTT thread: {e}")))?;
        match rx.recv_timeout(CONNECT_TIMEOUT) {
            Ok(Ev::Connected) => Ok(Conn { client, rx, pending: VecDeque::new(), cancel: None }),
            Ok(Ev::Refused(code)) => Err(Failure::broker(format!("broker {where_} refused the connection: {}", refused_text(code)))),
            Ok(Ev::Failed(e)) => Err(Failure::broker(format!("cannot reach the broker at {where_}: {e} (check --host/--port{})", if b.tls { "" } else { "/--tls" }))),
            Ok(_) | Err(_) => Err(Failure::broker(format!("no answer from the broker at {where_} within {}s", CONNECT_TIMEOUT.as_secs()))),
        }
    }

    /// Waits end early (as on Ctrl-C) once `flag` is set.
    pub fn cancel_on(&mut self, flag: Arc<AtomicBool>) {
        self.cancel = Some(flag);
    }

    fn cancelled(&self) -> bool {
        interrupted() || self.cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Subscribe (QoS 1) and wait until the broker confirms.
    pub fn subscribe(&mut self, filters: &[String]) -> Result<(), Failure> {
        for f in filters {
            self.client.subscribe(f.clone(), QoS::AtLeastOnce).map_err(|e| Failure::broker(format!("subscribe {f}: {e}")))?;
        }
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let mut acked = 0;
        while acked < filters.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Ev::SubAck) => acked += 1,
                Ok(Ev::Publish(m)) => self.push_pending(m),
                Ok(Ev::Failed(e)) => return Err(Failure::broker(format!("connection to the broker lost: {e}"))),
                Ok(_) => {}
                Err(_) => return Err(Failure::broker("the broker did not confirm the subscription")),
            }
        }
        Ok(())
    }

    fn push_pending(&mut self, m: Message) {
        if self.pending.len() >= 1024 {
            self.pending.pop_front();
        }
        self.pending.push_back(m);
    }

    /// Publish one command (QoS 1).
    pub fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), Failure> {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).map_err(|e| Failure::broker(format!("publish {topic}: {e}")))
    }

    /// Whether the last wait ended because of Ctrl-C or the cancel flag.
    pub fn was_cancelled(&self) -> bool {
        self.cancelled()
    }

    /// The next message before `deadline` (None: none came, or Ctrl-C).
    pub fn next(&mut self, deadline: Option<Instant>) -> Result<Option<Message>, Failure> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        loop {
            if self.cancelled() {
                return Ok(None);
            }
            let step = Duration::from_millis(200);
            let wait = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    left.min(step)
                }
                None => step,
            };
            match self.rx.recv_timeout(wait) {
                Ok(Ev::Publish(m)) => return Ok(Some(m)),
                Ok(Ev::Failed(e)) => return Err(Failure::broker(format!("connection to the broker lost: {e}"))),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(Failure::broker("connection to the broker lost")),
            }
        }
    }

    /// Leave cleanly (bounded).
    pub fn close(self) {
        let _ = self.client.disconnect();
        std::thread::sleep(Duration::from_millis(50));
    }
}
