//! Publishing to the broker without ever blocking the caller.

use super::tracker::{AckTracker, AckWaiter};
use super::Topics;
use rumqttc::{Client, QoS};
use serde_json::Value;

/// A cheap, cloneable handle used by every part of the agent that publishes.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    tracker: AckTracker,
    pub topics: Topics,
    pub sn: String,
}

/// Why a publish was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The client's request queue is full (the broker has been away a
    /// while); the caller decides whether to keep the message elsewhere.
    QueueFull,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MQTT request queue full")
    }
}

impl Publisher {
    pub fn new(client: Client, tracker: AckTracker, topics: Topics, sn: String) -> Publisher {
        Publisher { client, tracker, topics, sn }
    }

    /// Queue a publish. For QoS 1 the returned waiter completes on PUBACK.
    pub fn publish(&self, topic: &str, qos1: bool, retain: bool, payload: Vec<u8>) -> Result<Option<AckWaiter>, PublishError> {
        let qos = if qos1 { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        self.tracker
            .publish_with(qos1, || self.client.try_publish(topic, qos, retain, payload).is_ok())
            .ok_or(PublishError::QueueFull)
    }

    pub fn publish_json(&self, topic: &str, qos1: bool, retain: bool, v: &Value) -> Result<Option<AckWaiter>, PublishError> {
        self.publish(topic, qos1, retain, v.to_string().into_bytes())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tracker(&self) -> &AckTracker {
        &self.tracker
    }
}
