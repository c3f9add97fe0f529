//! The platform's one MQTT session (persistent, QoS 1): it subscribes to
//! what the agents publish (through `$share/<group>/…` when instances share
//! the work), to `$SYS/broker/#`, and to the message routes' topics, and
//! hands every message to the ingest queues (`pipeline.rs`). Commands go out through `Outbox`.

use crate::Shared;
use rumqttc::{Client, Connection, Event, Incoming, MqttOptions, QoS};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after connecting the non-shared `state/+` subscription stays
/// (instances sharing work): it only fetches the retained states, which a
/// shared subscription never delivers.
const CATCH_UP: Duration = Duration::from_secs(3);

/// How long a publish waits for room in the session's queue.
const PUBLISH_WAIT: Duration = Duration::from_secs(10);

pub struct Outbox {
    client: Client,
    /// Route topics subscribed in this session.
    routes: Mutex<BTreeSet<String>>,
}

impl Outbox {
    pub fn new(cfg: &crate::config::BrokerConfig) -> (Outbox, Connection) {
        let mut o = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
        o.set_keep_alive(Duration::from_secs(cfg.keepalive.max(5)));
        // One instance: a persistent session, so answers published while it
        // restarts wait at the broker. Instances sharing work: a clean
        // session, so a dead instance leaves the shared group at once and the
        // broker does not queue the group's messages for it (mosquitto
        // would); an answer lost while every instance is down is recovered
        // by the resend after `answer_timeout` (the agent re-publishes it).
        o.set_clean_session(!cfg.share_group.is_empty());
        o.set_max_packet_size(1 << 20, 1 << 20);
        if !cfg.username.is_empty() {
            o.set_credentials(cfg.username.clone(), cfg.password.clone());
        }
        let (client, conn) = Client::new(o, 1024);
        (Outbox { client, routes: Mutex::new(BTreeSet::new()) }, conn)
    }

    /// Publish QoS 1 (queued while disconnected, bounded). A full queue
    /// (a fan-out of thousands of commands) makes the caller wait for room,
    /// up to `PUBLISH_WAIT`, rather than fail the try.
    pub fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        let deadline = Instant::now() + PUBLISH_WAIT;
        let mut payload = payload;
        loop {
            match self.client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
                Ok(()) => return Ok(()),
                Err(rumqttc::ClientError::TryRequest(rumqttc::Request::Publish(p))) if Instant::now() < deadline => {
                    payload = p.payload.to_vec();
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(format!("mqtt: {e}")),
            }
        }
    }
}

impl Shared {
    /// `t` as this instance subscribes it: shared among instances when a group is set.
    pub fn shared_filter(&self, t: &str) -> String {
        match self.cfg.broker.share_group.as_str() {
            "" => t.to_string(),
            g => format!("$share/{g}/{t}"),
        }
    }

    pub fn sharing(&self) -> bool {
        !self.cfg.broker.share_group.is_empty()
    }

    /// The devices' topics: per-device (`{p}/sys/+`, …, PROTOCOL.md v2) and
    /// the shared v1 ones, still taken from devices not seen per-device.
    fn agent_topics(&self) -> Vec<String> {
        use dma_wire::topics::{filters, state, DEVICE_KINDS};
        let p = &self.cfg.broker.prefix;
        // Each kind in both layouts ([shared, per-device]); the state topic is per device in both.
        std::iter::once(state(p, "+")).chain(DEVICE_KINDS.iter().flat_map(|k| filters(p, k, None))).map(|t| self.shared_filter(&t)).collect()
    }

    /// Make sure the session subscribes to every route's topic.
    pub fn subscribe_routes(&self, topics: &[String]) {
        let mut have = self.mqtt.routes.lock().unwrap_or_else(|p| p.into_inner());
        for t in topics {
            if !have.contains(t) && self.mqtt.client.try_subscribe(self.shared_filter(t), QoS::AtLeastOnce).is_ok() {
                have.insert(t.clone());
            }
        }
    }
}

pub fn start(shared: Arc<Shared>, mut conn: Connection) -> Result<(), String> {
    std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || {
            let state_plain = format!("{}/state/+", shared.cfg.broker.prefix);
            let mut catch_up_until: Option<Instant> = None;
            for ev in conn.iter() {
                if let Some(t) = catch_up_until {
                    if Instant::now() > t {
                        let _ = shared.mqtt.client.try_unsubscribe(state_plain.clone());
                        catch_up_until = None;
                    }
                }
                match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        log::info!("connected to the broker {}:{}", shared.cfg.broker.host, shared.cfg.broker.port);
                        let c = &shared.mqtt.client;
                        for t in shared.agent_topics() {
                            let _ = c.try_subscribe(t, QoS::AtLeastOnce);
                        }
                        let _ = c.try_subscribe("$SYS/broker/#", QoS::AtMostOnce);
                        if shared.sharing() {
                            let _ = c.try_subscribe(state_plain.clone(), QoS::AtLeastOnce);
                            catch_up_until = Some(Instant::now() + CATCH_UP);
                        }
                        shared.mqtt.routes.lock().unwrap_or_else(|p| p.into_inner()).clear();
                        if let Ok(routes) = shared.db.routes() {
                            shared.subscribe_routes(&routes.into_iter().map(|r| r.topic).collect::<Vec<_>>());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let payload = p.payload.to_vec();
                        shared.ingest(crate::pipeline::Msg { topic: p.topic, payload, retain: p.retain, now: crate::time::now() });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("broker connection: {e}");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("mqtt thread: {e}"))
}
