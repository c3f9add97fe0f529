//! The broker's own figures for `monitor/brokers*`: from EMQX's REST API
//! when `emqx` is configured (`emqx.rs`), else from the `$SYS/broker/…`
//! topics that mosquitto publishes (`sys.rs`).

pub mod emqx;
pub mod sys;

pub use sys::SysStats;
