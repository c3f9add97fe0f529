//! The connection thread: drives rumqttc's event loop, reconnects with
//! backoff, re-subscribes and re-publishes the birth message on every
//! connect, and hands incoming commands to the agent.

use super::backoff::Backoff;
use super::tracker::AckTracker;
use super::{Publisher, Topics};
use crate::config::AgentConfig;
use rumqttc::{Client, Connection, ConnectReturnCode, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS, Transport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the agent does on session events. Called on the connection
/// thread: implementations must not block.
pub trait SessionEvents: Send + Sync + 'static {
    /// Connected (again). Subscriptions are already requested.
    fn connected(&self, session_present: bool);
    fn disconnected(&self, reason: &str);
    /// A message on the command topic.
    fn command(&self, payload: &[u8]);
}

/// Largest MQTT packet accepted or sent: bounds memory per message.
pub const MAX_PACKET: usize = 256 * 1024;
/// Capacity of rumqttc's request channel.
pub const REQUEST_CAP: usize = 64;
/// Publishes in flight before rumqttc waits for acks.
pub const INFLIGHT: u16 = 32;
/// A connection that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

pub struct Session {
    pub publisher: Publisher,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pending: Option<(Connection, Backoff)>,
}

/// The will and the offline form of the state message.
pub fn offline_payload(sn: &str) -> Vec<u8> {
    serde_json::json!({"sn": sn, "online": false}).to_string().into_bytes()
}

pub fn build_options(cfg: &AgentConfig, topics: &Topics) -> Result<MqttOptions, String> {
    let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.broker_host.clone(), cfg.broker_port);
    opts.set_keep_alive(Duration::from_secs(cfg.keepalive));
    // Persistent session: QoS 1 commands published while we are away are
    // kept by the broker and delivered after we come back.
    opts.set_clean_session(false);
    opts.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    opts.set_inflight(INFLIGHT);
    opts.set_request_channel_capacity(REQUEST_CAP);
    opts.set_last_will(LastWill::new(topics.state.clone(), offline_payload(&cfg.sn), QoS::AtLeastOnce, true));
    if !cfg.username.is_empty() {
        opts.set_credentials(cfg.username.clone(), cfg.password.clone());
    }
    if cfg.tls {
        let tls = super::tls::client_config(&cfg.ca_file, &cfg.cert_file, &cfg.key_file)?;
        opts.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
    }
    Ok(opts)
}

impl Session {
    /// Create the client. Nothing connects until [`Session::start`], so the
    /// agent can build everything that handles commands first and no
    /// command delivered right after connecting finds nobody to take it.
    pub fn create(cfg: &AgentConfig) -> Result<Session, String> {
        let topics = Topics::new(&cfg.prefix, &cfg.sn);
        let opts = build_options(cfg, &topics)?;
        let (client, connection) = Client::new(opts, REQUEST_CAP);
        let tracker = AckTracker::default();
        let publisher = Publisher::new(client, tracker, topics, cfg.sn.clone());
        let backoff = Backoff::new(Duration::from_secs(cfg.reconnect_min), Duration::from_secs(cfg.reconnect_max));
        Ok(Session { publisher, stop: Arc::new(AtomicBool::new(false)), thread: None, pending: Some((connection, backoff)) })
    }

    /// Start the connection thread. Returns at once; the connection is
    /// made (and remade) in the background.
    pub fn start(&mut self, events: Arc<dyn SessionEvents>) -> Result<(), String> {
        let (connection, backoff) = self.pending.take().ok_or("session already started")?;
        let stop = self.stop.clone();
        let client = self.publisher.client().clone();
        let tracker = self.publisher.tracker().clone();
        let cmd_topic = self.publisher.topics.cmd.clone();
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .stack_size(512 * 1024) // TLS handshakes, tokio's event loop
            .spawn(move || run(connection, client, tracker, cmd_topic, events, stop, backoff))
            .map_err(|e| e.to_string())?;
        self.thread = Some(thread);
        Ok(())
    }

    /// Send DISCONNECT (so the will is not published) and wait, bounded,
    /// for the connection thread to flush it and end.
    pub fn shutdown(&mut self, timeout: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.publisher.client().try_disconnect();
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + timeout;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn run(
    mut connection: Connection,
    client: Client,
    tracker: AckTracker,
    cmd_topic: String,
    events: Arc<dyn SessionEvents>,
    stop: Arc<AtomicBool>,
    mut backoff: Backoff,
) {
    let mut connected_at: Option<Instant> = None;
    loop {
        // Blocks until the next event (keep-alive pings included): no idle polling.
        let ev = match connection.recv() {
            Ok(ev) => ev,
            Err(rumqttc::RecvError) => return,
        };
        match ev {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                if ack.code != ConnectReturnCode::Success {
                    log::error!("broker refused the connection: {:?}", ack.code);
                    continue;
                }
                log::info!("connected to broker (session present: {})", ack.session_present);
                connected_at = Some(Instant::now());
                if let Err(e) = client.try_subscribe(cmd_topic.clone(), QoS::AtLeastOnce) {
                    log::error!("cannot subscribe to {cmd_topic}: {e}");
                }
                events.connected(ack.session_present);
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if p.topic == cmd_topic {
                    events.command(&p.payload);
                } else {
                    log::warn!("message on unexpected topic {} ignored", p.topic);
                }
            }
            Ok(Event::Incoming(Incoming::PubAck(a))) => tracker.on_puback(a.pkid),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => tracker.on_outgoing(pkid),
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => tracker.on_collision(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                if stop.load(Ordering::SeqCst) {
                    // Give the DISCONNECT a moment to leave before we drop the socket.
                    let _ = connection.recv_timeout(Duration::from_millis(200));
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                if connected_at.take().map(|t| t.elapsed() >= STABLE_AFTER).unwrap_or(false) {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                let reason = describe(&e);
                log::warn!("broker connection: {reason}; retrying in {} ms", delay.as_millis());
                events.disconnected(&reason);
                let until = Instant::now() + delay;
                while Instant::now() < until {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
                }
            }
        }
    }
}

/// A short, secret-free description of a connection error.
fn describe(e: &rumqttc::ConnectionError) -> String {
    match e {
        rumqttc::ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                "broker refused the credentials".into()
            }
            other => format!("broker refused the connection: {other:?}"),
        },
        other => other.to_string(),
    }
}
