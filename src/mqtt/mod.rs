//! The MQTT session with the platform's broker: options and TLS, the
//! connection thread with reconnect backoff, topic names, and a publisher
//! that can tell when the broker acknowledged a QoS 1 message.

pub mod backoff;
pub mod fit;
pub mod publisher;
pub mod session;
pub mod tls;
pub mod topics;
pub mod tracker;

pub use publisher::Publisher;
pub use session::{CommandAck, Session, SessionEvents};
pub use topics::Topics;
pub use tracker::AckWaiter;
