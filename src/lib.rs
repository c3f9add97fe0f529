//! dma-agent: the on-router agent that bridges the LAN devices beside an
//! OpenWrt router (VoIP gateway, Thread border router, GSM gateway, VPN
//! console) and the IoT platform's MQTT broker.
//!
//! The binary (`src/main.rs`) is a thin shell over this library so that the
//! integration tests, the operator CLI (`dma-ctl`) and the demo can reuse every piece.

pub mod code_pages;
pub mod commands;
pub mod config;
pub mod devices;
pub mod durable;
pub mod events;
pub mod heap;
pub mod httpd;
pub mod logging;
pub mod agent;
pub mod mqtt;
pub mod outbox;
pub mod sms;
pub mod stack;
pub mod telemetry;
pub mod trust;
pub mod util;

/// Agent version as published in `versions` and the birth message.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
