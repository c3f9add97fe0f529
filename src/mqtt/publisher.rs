//! Publishing to the broker without ever blocking the caller.

use super::fit;
use super::tracker::{AckTracker, AckWaiter, Bell};
use super::Topics;
use rumqttc::{Client, QoS};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cheap, cloneable handle used by every part of the agent that publishes.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    tracker: AckTracker,
    connected: Arc<AtomicBool>,
    pub topics: Topics,
    pub sn: String,
}

/// Why a publish was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The client's request queue is full (the broker has been away a
    /// while); the caller decides whether to keep the message elsewhere.
    QueueFull,
    /// A periodic report while the broker is away: not worth sending late.
    Offline,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::QueueFull => f.write_str("MQTT request queue full"),
            PublishError::Offline => f.write_str("broker not connected; report dropped"),
        }
    }
}

impl Publisher {
    pub fn new(client: Client, tracker: AckTracker, topics: Topics, sn: String) -> Publisher {
        Publisher { client, tracker, connected: Arc::new(AtomicBool::new(false)), topics, sn }
    }

    /// Queue a publish. For QoS 1 the returned waiter completes on PUBACK.
    /// A payload over the packet limit is cut to fit (see [`fit`]): rumqttc
    /// would otherwise drop the connection over it, again and again.
    /// Periodic reports (`sys`, `procs`, `versions`, `periph`) are dropped
    /// while the broker is away: stale ones are worthless, and fresh ones
    /// follow the reconnect.
    pub fn publish(&self, topic: &str, qos1: bool, retain: bool, payload: Vec<u8>) -> Result<Option<AckWaiter>, PublishError> {
        self.publish_bell(topic, qos1, retain, payload, None)
    }

    /// A QoS 1 publish whose waiter rings `bell` when it settles (the outbox's).
    pub fn publish_rung(&self, topic: &str, retain: bool, payload: Vec<u8>, bell: Bell) -> Result<AckWaiter, PublishError> {
        self.publish_bell(topic, true, retain, payload, Some(bell))?.ok_or(PublishError::QueueFull)
    }

    fn publish_bell(&self, topic: &str, qos1: bool, retain: bool, payload: Vec<u8>, bell: Option<Bell>) -> Result<Option<AckWaiter>, PublishError> {
        if !self.is_connected() && self.is_report_topic(topic) {
            return Err(PublishError::Offline);
        }
        let payload = if fit::fits(topic, payload.len()) { payload } else { refit(topic, &payload) };
        let qos = if qos1 { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        self.tracker
            .publish_with_bell(qos1, bell, || self.client.try_publish(topic, qos, retain, payload).is_ok())
            .ok_or(PublishError::QueueFull)
    }

    pub fn publish_json(&self, topic: &str, qos1: bool, retain: bool, v: &Value) -> Result<Option<AckWaiter>, PublishError> {
        let s = v.to_string();
        if fit::fits(topic, s.len()) {
            return self.publish(topic, qos1, retain, s.into_bytes());
        }
        drop(s);
        let fitted = fit::fit(topic, v.clone());
        log::warn!("message on {topic} cut to fit the {} byte packet limit", fit::MAX_PACKET);
        self.publish(topic, qos1, retain, fitted.to_string().into_bytes())
    }

    /// Is `topic` one of the periodic reports (stale once the connection dropped)?
    pub fn is_report_topic(&self, topic: &str) -> bool {
        let t = &self.topics;
        topic == t.sys || topic == t.procs || topic == t.versions || topic == t.periph
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tracker(&self) -> &AckTracker {
        &self.tracker
    }
}

/// Raw bytes over the limit: cut them as JSON; what is not JSON is
/// replaced by a note saying how large it was.
fn refit(topic: &str, payload: &[u8]) -> Vec<u8> {
    log::warn!("message of {} bytes on {topic} cut to fit the {} byte packet limit", payload.len(), fit::MAX_PACKET);
    match serde_json::from_slice::<Value>(payload) {
        Ok(v) => fit::fit(topic, v).to_string().into_bytes(),
        Err(_) => serde_json::json!({"truncated": true, "bytes": payload.len()}).to_string().into_bytes(),
    }
}
