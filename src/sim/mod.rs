//! HTTP simulators of the four LAN devices, faithful to the vendor seeds
//! (`shared/seeds/`) and DEVICE-NOTES. Used by the tests, the demo and the
//! standalone `dma-sim` binary; never part of the router build.

pub mod goip;
pub mod iad;
pub mod s20;
pub mod server;
pub mod vpn;
pub mod wire;

pub use server::{Fault, SimRequest, SimResponse, SimServer};
