//! The connection thread: drives rumqttc's event loop, reconnects with
//! backoff, re-subscribes and re-publishes the birth message on every
//! connect, and hands incoming commands to the agent.
//!
//! Faults it handles (README "Faults and what the agent does"):
//! - on a dropped connection, periodic reports still waiting are thrown
//!   away (never sent late); answers and events are kept;
//! - on every connect the subscription and the birth message go out before
//!   anything that waited;
//! - `session present: 0` (the broker lost our session): PUBACK tracking is
//!   reset and the owners of unacknowledged messages send them again;
//! - commands are acknowledged (manual acks) by the engine once journalled;
//! - a command larger than the packet limit is read anyway (the incoming
//!   limit is higher) so it can be answered "too large" instead of the
//!   connection failing on it forever.

use super::backoff::Backoff;
use super::tracker::AckTracker;
use super::{Publisher, Topics};
use crate::config::AgentConfig;
use rumqttc::{Client, Connection, ConnectReturnCode, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS, Request, Transport};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The session's stop request: a flag the connection thread can also
/// sleep on (its reconnect backoff ends at once when it is set).
#[derive(Default)]
struct Stop {
    set: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    fn set(&self) {
        *self.set.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    fn is_set(&self) -> bool {
        *self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleep `d` unless stopped first; true when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let g = self.set.lock().unwrap_or_else(|p| p.into_inner());
        match self.cv.wait_timeout_while(g, d, |stopped| !*stopped) {
            Ok((g, _)) => *g,
            Err(p) => *p.into_inner().0,
        }
    }
}

/// What the agent does on session events. Called on the connection
/// thread: implementations must not block.
pub trait SessionEvents: Send + Sync + 'static {
    /// Connected (again). Subscriptions are already requested.
    fn connected(&self, session_present: bool);
    fn disconnected(&self, reason: &str);
    /// A message on the command topic. `ack` must be called once the
    /// command is journalled or answered (until then the broker keeps it
    /// and delivers it again after a reconnect or restart).
    fn command(&self, payload: &[u8], ack: CommandAck);
    /// The retained birth message (`{p}/state/{sn}`), sent first on every connect.
    fn birth(&self) -> Vec<u8>;
}

/// The PUBACK of one incoming command, sent when the agent is done with it.
pub struct CommandAck {
    client: Client,
    publish: rumqttc::Publish,
    /// Shared, not cloned per command (a `Publisher` holds the topic names).
    publisher: Arc<Publisher>,
}

impl CommandAck {
    /// Acknowledge to the broker, without waiting (the MQTT thread). If the
    /// request queue is full or the connection dropped meanwhile the ack is
    /// lost and the broker delivers the command again after the next
    /// connect: the journal then answers it without running it twice.
    pub fn ack(self) {
        if let Err(e) = self.client.try_ack(&self.publish) {
            log::warn!("command ack not queued ({e}); the broker will deliver it again");
        }
    }

    /// Acknowledge, waiting up to `timeout` (while connected) for room in
    /// the request queue: an ack lost while connected would leave the
    /// command with the broker until the next reconnect.
    pub fn ack_waiting(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let tracker = self.publisher.tracker();
        loop {
            let seen = tracker.room_seq();
            if self.client.try_ack(&self.publish).is_ok() {
                return;
            }
            let now = Instant::now();
            if !self.publisher.is_connected() || now >= deadline {
                log::warn!("command ack not queued; the broker will deliver it again");
                return;
            }
            // Woken when a request leaves the queue or the connection drops.
            tracker.wait_room(seen, deadline - now);
        }
    }
}

/// Largest MQTT packet sent (see [`super::fit`]).
pub const MAX_PACKET: usize = super::fit::MAX_PACKET;
/// Largest packet read. Higher than what a command may be
/// ([`MAX_COMMAND`]) so that an oversized command is still read and
/// answered "too large"; rumqttc drops a connection on a larger packet,
/// and the broker would deliver it again after every reconnect. A larger
/// one raises the limit for the next connection up to [`INCOMING_HARD_MAX`].
pub const INCOMING_MAX: usize = 1024 * 1024;
/// The most the incoming limit is raised to read one oversized packet;
/// beyond it the session is dropped (a clean connection) to get rid of it.
pub const INCOMING_HARD_MAX: usize = 8 * 1024 * 1024;
/// Largest command run; larger ones are answered "too large".
pub const MAX_COMMAND: usize = 256 * 1024;
/// Capacity of rumqttc's request channel.
pub const REQUEST_CAP: usize = 64;
/// Publishes in flight before rumqttc waits for acks.
pub const INFLIGHT: u16 = 32;
/// A connection that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

pub struct Session {
    pub publisher: Publisher,
    stop: Arc<Stop>,
    thread: Option<(JoinHandle<()>, Receiver<()>)>,
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
    opts.set_max_packet_size(INCOMING_MAX, MAX_PACKET);
    // A command is acknowledged only once journalled (see CommandAck).
    opts.set_manual_acks(true);
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
        let topics = super::topics::for_agent(&cfg.prefix, &cfg.sn, cfg.topic_layout);
        let opts = build_options(cfg, &topics)?;
        let (client, mut connection) = Client::new(opts, REQUEST_CAP);
        // TCP_NODELAY: an answer is one small packet; with Nagle it waited
        // for the broker's delayed ACK (~40 ms per round trip, issue 24).
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        connection.eventloop.set_network_options(net);
        let tracker = AckTracker::default();
        let publisher = Publisher::new(client, tracker, topics, cfg.sn.clone());
        let backoff = Backoff::new(Duration::from_secs(cfg.reconnect_min), Duration::from_secs(cfg.reconnect_max));
        Ok(Session { publisher, stop: Arc::new(Stop::default()), thread: None, pending: Some((connection, backoff)) })
    }

    /// Start the connection thread. Returns at once; the connection is
    /// made (and remade) in the background.
    pub fn start(&mut self, events: Arc<dyn SessionEvents>) -> Result<(), String> {
        let (connection, backoff) = self.pending.take().ok_or("session already started")?;
        let stop = self.stop.clone();
        let client = self.publisher.client().clone();
        let publisher = self.publisher.clone();
        let cmd_topic = self.publisher.topics.cmd.clone();
        // The thread says when it ends (a bounded join at shutdown).
        let (done_tx, done) = channel();
        let thread = crate::stack::spawn("mqtt".into(), move || {
            run(connection, client, publisher, cmd_topic, events, &stop, backoff);
            let _ = done_tx.send(());
        })
        .map_err(|e| e.to_string())?;
        self.thread = Some((thread, done));
        Ok(())
    }

    /// Send DISCONNECT (so the will is not published) and wait, bounded,
    /// for the connection thread to flush it and end.
    pub fn shutdown(&mut self, timeout: Duration) {
        self.stop.set();
        let _ = self.publisher.client().try_disconnect();
        if let Some((t, done)) = self.thread.take() {
            if done.recv_timeout(timeout).is_ok() {
                let _ = t.join();
            }
        }
    }
}

fn run(
    mut connection: Connection,
    client: Client,
    publisher: Publisher,
    cmd_topic: String,
    events: Arc<dyn SessionEvents>,
    stop: &Stop,
    mut backoff: Backoff,
) {
    let tracker = publisher.tracker().clone();
    let for_acks = Arc::new(publisher.clone());
    let mut connected_at: Option<Instant> = None;
    // Tickets of never-sent publishes in rumqttc's pending list (lost with
    // the list when the broker has no session for us).
    let mut pending_tickets = 0usize;
    // The next connection is a clean one, to drop a packet too large to read.
    let mut drop_session = false;
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
                // The TLS handshake was this thread's deepest call: give its pages back.
                crate::stack::release_unused();
                if !ack.session_present {
                    // rumqttc has dropped what it meant to send again.
                    tracker.session_lost(pending_tickets);
                }
                pending_tickets = 0;
                if drop_session {
                    // The clean session dropped the oversized packet; back to
                    // a persistent session at once (a new connection).
                    drop_session = false;
                    connection.eventloop.mqtt_options.set_clean_session(false);
                    connection.eventloop.clean();
                    pending_tickets = tracker.filter_pending(&mut connection.eventloop.pending, |p| publisher.is_report_topic(&p.topic));
                    log::warn!("dropped the MQTT session; reconnecting with a persistent one");
                    continue;
                }
                connected_at = Some(Instant::now());
                // Subscription, then birth, ahead of everything that waited.
                let pending = &mut connection.eventloop.pending;
                let mut birth = rumqttc::Publish::new(publisher.topics.state.clone(), QoS::AtLeastOnce, events.birth());
                birth.retain = true;
                pending.push_front(Request::Publish(birth));
                let _ = tracker.push_front_qos1();
                pending.push_front(Request::Subscribe(rumqttc::Subscribe::new(cmd_topic.clone(), QoS::AtLeastOnce)));
                publisher.set_connected(true);
                events.connected(ack.session_present);
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if p.payload.len() > INCOMING_MAX {
                    // Read the oversized one; back to the normal limit for the next connection.
                    connection.eventloop.mqtt_options.set_max_packet_size(INCOMING_MAX, MAX_PACKET);
                }
                if p.topic == cmd_topic {
                    let payload = p.payload.clone();
                    let ack = CommandAck { client: client.clone(), publish: rumqttc::Publish { payload: Default::default(), ..p }, publisher: for_acks.clone() };
                    events.command(&payload, ack);
                } else {
                    log::warn!("message on unexpected topic {} ignored", p.topic);
                }
            }
            Ok(Event::Incoming(Incoming::PubAck(a))) => tracker.on_puback(a.pkid),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                tracker.on_outgoing(pkid);
                tracker.on_room();
            }
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                tracker.on_collision(pkid);
                tracker.on_room();
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                if stop.is_set() {
                    // Give the DISCONNECT a moment to leave before we drop the socket.
                    let _ = connection.recv_timeout(Duration::from_millis(200));
                    return;
                }
            }
            // Any other packet out (acks of commands, pings, subscribe) left the queue too.
            Ok(Event::Outgoing(_)) => tracker.on_room(),
            Ok(_) => {}
            Err(e) => {
                publisher.set_connected(false);
                // Whoever waits for room learns the connection dropped.
                tracker.on_room();
                // Periodic reports that did not leave are stale now.
                pending_tickets = tracker.filter_pending(&mut connection.eventloop.pending, |p| publisher.is_report_topic(&p.topic));
                if stop.is_set() {
                    return;
                }
                if let rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(rumqttc::Error::PayloadSizeLimitExceeded(n))) = &e {
                    if *n <= INCOMING_HARD_MAX {
                        // Read it once so it can be answered; see INCOMING_MAX.
                        let raise = (*n + 16).max(INCOMING_MAX);
                        log::warn!("the broker sent a packet of {n} bytes; reading up to {raise} bytes on the next connection");
                        connection.eventloop.mqtt_options.set_max_packet_size(raise, MAX_PACKET);
                    } else {
                        // Too large to read on a router: the broker would send
                        // it again after every reconnect. Only a clean session
                        // drops it (and whatever else waits in the session:
                        // the platform retries unanswered commands).
                        log::error!(
                            "the broker holds a packet of {n} bytes (over {INCOMING_HARD_MAX}); dropping the MQTT session to get rid of it"
                        );
                        connection.eventloop.mqtt_options.set_clean_session(true);
                        drop_session = true;
                    }
                }
                if connected_at.take().map(|t| t.elapsed() >= STABLE_AFTER).unwrap_or(false) {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                let reason = describe(&e);
                log::warn!("broker connection: {reason}; retrying in {} ms", delay.as_millis());
                events.disconnected(&reason);
                // The backoff; a stop ends it at once.
                if stop.sleep(delay) {
                    return;
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
