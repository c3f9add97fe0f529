//! The demo's embedded MQTT broker (rumqttd) on 127.0.0.1.

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A free loopback port (the OS picks it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn config(listen: SocketAddr) -> Config {
    let server = ServerSettings {
        name: "demo-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 << 20,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    }
}

/// Start the broker on a thread (it lives as long as the process) and
/// return its port once it accepts connections.
pub fn start() -> Result<u16, String> {
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let mut broker = Broker::new(config(listen));
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                eprintln!("demo broker stopped: {e}");
            }
        })
        .map_err(|e| format!("broker thread: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(listen).is_ok() {
            return Ok(port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("the embedded broker did not start on {listen}"))
}
