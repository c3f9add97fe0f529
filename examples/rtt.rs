//! Command round-trip benchmark (issue 24), for `bench/latency.sh`; never
//! part of the router binary.
//!
//!   rtt --port P --sn SN [--host H] [--prefix dma] [--n 500] [--warmup 10]
//!
//! Two MQTT connections to one broker, both with TCP_NODELAY as the agent's:
//! an echo client (subscribes `bench/echo/req`, republishes each message at
//! once on `bench/echo/resp`, QoS 1 both ways like a command and its answer)
//! and a measuring client. The measuring client sends N `agent get`
//! commands to the agent (`{prefix}/cmd/{sn}`, answer on
//! `{prefix}/resp/cmd/{sn}`) and N echo requests, interleaved (the order
//! alternates every round, one request in flight at a time), and prints
//! p50/p90/p99/mean of both and the agent/echo ratio as a markdown table.
//! `--command`/`--body` choose another command (e.g. `report`).

use rumqttc::{Client, Connection, Event, MqttOptions, NetworkOptions, Packet, QoS};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args {
    host: String,
    port: u16,
    sn: String,
    prefix: String,
    n: usize,
    warmup: usize,
    command: String,
    method: String,
    body: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 1883,
        sn: String::new(),
        prefix: "dma".into(),
        n: 500,
        warmup: 10,
        command: "agent".into(),
        method: "get".into(),
        body: r#"{"keys":["sn"]}"#.into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--host" => a.host = v,
            "--port" => a.port = v.parse().map_err(|_| "bad --port")?,
            "--sn" => a.sn = v,
            "--prefix" => a.prefix = v,
            "--n" => a.n = v.parse().map_err(|_| "bad --n")?,
            "--warmup" => a.warmup = v.parse().map_err(|_| "bad --warmup")?,
            "--command" => a.command = v,
            "--method" => a.method = v,
            "--body" => a.body = v,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.sn.is_empty() {
        return Err("--sn is required".into());
    }
    Ok(a)
}

fn connect(a: &Args, id: &str) -> (Client, Connection) {
    let mut o = MqttOptions::new(id, a.host.clone(), a.port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (c, mut conn) = Client::new(o, 64);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    conn.eventloop.set_network_options(net);
    (c, conn)
}

/// Drive a connection on its own thread; incoming publishes (topic, payload)
/// and SUBACKs (empty topic) go to the returned channel.
fn pump(mut conn: Connection) -> Receiver<(String, Vec<u8>)> {
    let (tx, rx): (SyncSender<(String, Vec<u8>)>, _) = sync_channel(1024);
    std::thread::spawn(move || {
        for ev in conn.iter() {
            let m = match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => (p.topic.clone(), p.payload.to_vec()),
                Ok(Event::Incoming(Packet::SubAck(_))) => (String::new(), Vec::new()),
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("rtt: connection: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            if tx.send(m).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_suback(rx: &Receiver<(String, Vec<u8>)>) -> Result<(), String> {
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((t, _)) if t.is_empty() => return Ok(()),
            Ok(_) => continue,
            Err(_) => return Err("no SUBACK within 10 s".into()),
        }
    }
}

/// Wait for a message on `topic` whose payload names `id`; others are skipped.
fn wait_for(rx: &Receiver<(String, Vec<u8>)>, topic: &str, id: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((t, p)) if t == topic && contains_id(&p, id) => return Ok(()),
            Ok(_) => continue,
            Err(RecvTimeoutError::Timeout) => return Err(format!("no answer on {topic} for id {id} within 10 s")),
            Err(RecvTimeoutError::Disconnected) => return Err("connection thread ended".into()),
        }
    }
}

/// Only the top-level `id`, the rest skipped unbuilt: the measuring
/// client's cost stays small and nearly the same for a 2 KB answer and a
/// 200-byte echo (building a whole `Value` of the larger answer added
/// tens of µs to the agent's side of the comparison).
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    id: Option<&'a serde_json::value::RawValue>,
}

fn contains_id(p: &[u8], id: &str) -> bool {
    serde_json::from_slice::<Head>(p).ok().and_then(|h| h.id).is_some_and(|x| x.get() == id)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // nearest-rank percentile
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let cmd_topic = format!("{}/cmd/{}", a.prefix, a.sn);
    let resp_topic = format!("{}/resp/cmd/{}", a.prefix, a.sn);
    let (req, resp) = ("bench/echo/req", "bench/echo/resp");
    let tag = std::process::id();

    // The echo client: answers each request at once.
    let (echo, echo_conn) = connect(&a, &format!("rtt-echo-{tag}"));
    let echo_rx = pump(echo_conn);
    echo.subscribe(req, QoS::AtLeastOnce).map_err(|e| e.to_string())?;
    wait_suback(&echo_rx)?;
    std::thread::spawn(move || {
        for (t, p) in echo_rx.iter() {
            if t == req && echo.publish(resp, QoS::AtLeastOnce, false, p).is_err() {
                return;
            }
        }
    });

    // The measuring client.
    let (m, m_conn) = connect(&a, &format!("rtt-meas-{tag}"));
    let rx = pump(m_conn);
    m.subscribe(&resp_topic, QoS::AtLeastOnce).map_err(|e| e.to_string())?;
    wait_suback(&rx)?;
    m.subscribe(resp, QoS::AtLeastOnce).map_err(|e| e.to_string())?;
    wait_suback(&rx)?;

    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let base = now * 1000;
    let body: serde_json::Value = serde_json::from_str(&a.body).map_err(|e| format!("--body: {e}"))?;
    let agent_rt = |i: u64| -> Result<f64, String> {
        let id = base + i;
        let c = serde_json::json!({"id": id, "from": "bench", "command": a.command, "method": a.method,
            "d": body, "publishTime": now, "expires": 3600});
        let t0 = Instant::now();
        m.publish(&cmd_topic, QoS::AtLeastOnce, false, c.to_string()).map_err(|e| e.to_string())?;
        wait_for(&rx, &resp_topic, &id.to_string())?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };
    let echo_rt = |i: u64| -> Result<f64, String> {
        let id = base + i;
        // The same size class as a command, so both carry alike.
        let c = serde_json::json!({"id": id, "from": "bench", "command": a.command, "method": a.method,
            "d": body, "publishTime": now, "expires": 3600});
        let t0 = Instant::now();
        m.publish(req, QoS::AtLeastOnce, false, c.to_string()).map_err(|e| e.to_string())?;
        wait_for(&rx, resp, &id.to_string())?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };

    let (mut ag, mut ec) = (Vec::with_capacity(a.n), Vec::with_capacity(a.n));
    let total = (a.warmup + a.n) as u64;
    for i in 0..total {
        let (x, y) = if i % 2 == 0 {
            let x = agent_rt(i)?;
            (x, echo_rt(i)?)
        } else {
            let y = echo_rt(i)?;
            (agent_rt(i)?, y)
        };
        if i >= a.warmup as u64 {
            ag.push(x);
            ec.push(y);
        }
    }
    ag.sort_by(f64::total_cmp);
    ec.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!("| round trip ({} each, interleaved) | p50 (ms) | p90 (ms) | p99 (ms) | mean (ms) |", a.n);
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, v: &[f64]| {
        println!("| {name} | {:.3} | {:.3} | {:.3} | {:.3} |", pct(v, 50.0), pct(v, 90.0), pct(v, 99.0), mean(v));
    };
    row(&format!("agent `{} {}`", a.command, a.method), &ag);
    row("echo client", &ec);
    println!(
        "| **ratio agent/echo** | **{:.2}×** | {:.2}× | **{:.2}×** | {:.2}× |",
        pct(&ag, 50.0) / pct(&ec, 50.0),
        pct(&ag, 90.0) / pct(&ec, 90.0),
        pct(&ag, 99.0) / pct(&ec, 99.0),
        mean(&ag) / mean(&ec)
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("rtt: {e}");
        std::process::exit(1);
    }
}
