//! Ids echoed byte for byte, whatever their size or type (issue 21 item 8,
//! docs/PROTOCOL.md "Commands"): a real mosquitto, the real agent, and the
//! answers' raw bytes. Before dma-wire an id above 2^64-1 came back as
//! `1.8446744073709552e+19`.

mod common;
use common::signer::{now, Key};
use common::*;
use std::path::Path;

const SN: &str = "AA00000000E1";

fn setup(extra: &str) -> (Broker, Platform, Agent) {
    let broker = Broker::start();
    let platform = Platform::connect(broker.port, "dma");
    let agent = Agent::start(SN, &agent_section(SN, broker.port, Path::new("{state}"), extra));
    platform.wait(&format!("dma/state/{SN}"), T, |m| m.json["online"] == true).unwrap_or_else(|| panic!("no birth message; agent log:\n{}", agent.log()));
    (broker, platform, agent)
}

/// Publish `payload` raw and wait for an answer whose bytes start with
/// `{"id":<id_text>,`; returns those bytes.
fn answer_to(p: &Platform, payload: &str, id_text: &str, a: &Agent) -> String {
    let from = p.count();
    p.publish_raw(&format!("dma/cmd/{SN}"), payload);
    let head = format!("{{\"id\":{id_text},");
    p.wait_from(from, "dma/resp/cmd", T, |m| m.raw.starts_with(&head))
        .unwrap_or_else(|| panic!("no answer echoing {id_text} to {payload}; answers: {:?}\nagent log:\n{}", p.all("dma/resp/cmd").iter().map(|m| m.raw.clone()).collect::<Vec<_>>(), a.log()))
        .raw
}

/// The ids of the issue: 2^64, 10^30, 64-bit ones, strings (with escapes).
const IDS: &[&str] = &[
    "18446744073709551616",
    "1000000000000000000000000000000",
    "18446744073709551615",
    "-9223372036854775808",
    "201811260000000001",
    r#""wire-\u00e9\"1""#,
    "1234567890123456789012345678901234567890",
];

#[test]
fn ids_of_any_size_are_echoed_exactly_and_stay_so_in_the_journal() {
    let (_b, p, mut a) = setup("");
    let count = a.dir.join("count");
    let sh = |id: &str| format!(r#"{{"id": {id}, "from": "test", "command": "sh", "method": "", "d": {{"shcmd": "echo x >> {}"}}}}"#, count.display());
    let runs = || std::fs::read_to_string(&count).map(|s| s.lines().count()).unwrap_or(0);
    for (i, id) in IDS.iter().enumerate() {
        let raw = answer_to(&p, &sh(id), id, &a);
        assert!(raw.contains(r#""status":"ok""#), "{raw}");
        assert_eq!(runs(), i + 1);
    }
    // Redelivered: answered from the journal, the id still exact, no second run.
    for id in IDS {
        let raw = answer_to(&p, &sh(id), id, &a);
        assert!(raw.contains(r#""status":"ok""#), "{raw}");
    }
    assert_eq!(runs(), IDS.len(), "each id ran once");
    // Across a restart: the journal (format 2) kept every id as received.
    a.stop();
    let journal = std::fs::read_to_string(a.state_dir().join("journal.log")).unwrap();
    assert!(journal.lines().all(|l| l.starts_with(r#"{"v":2,"#)), "{journal}");
    assert!(journal.contains(r#""a":{"id":1000000000000000000000000000000,"#), "{journal}");
    a.spawn();
    p.wait_from(p.count(), &format!("dma/state/{SN}"), T, |m| m.json["online"] == true).expect("back online");
    for id in IDS {
        answer_to(&p, &sh(id), id, &a);
    }
    assert_eq!(runs(), IDS.len(), "no id ran again after the restart");
    // The same big id with another command is a conflict, not a new run.
    let other = r#"{"id": 18446744073709551616, "command": "sh", "d": {"shcmd": "true"}}"#;
    let raw = answer_to(&p, other, "18446744073709551616", &a);
    assert!(raw.contains("conflict: id 18446744073709551616 was already used"), "{raw}");
}

#[test]
fn ids_refused_are_echoed_as_sent_with_the_reason() {
    let (_b, p, a) = setup("");
    for (id, why) in [
        ("1.8446744073709552e+19", "id must be an integer of up to 40 digits"),
        ("1.5", "id must be an integer of up to 40 digits"),
        ("12345678901234567890123456789012345678901", "id has 41 digits; at most 40"),
        ("true", "id must be an integer of up to 40 digits"),
    ] {
        let raw = answer_to(&p, &format!(r#"{{"id": {id}, "command": "sh", "d": {{"shcmd": "true"}}}}"#), id, &a);
        assert!(raw.contains(r#""status":"err""#) && raw.contains(why), "{id}: {raw}");
    }
}

#[test]
fn signed_commands_echo_big_ids_exactly() {
    let key = Key::new("k1");
    let (_b, p, a) = setup(&key.uci());
    for id in ["18446744073709551616", "1000000000000000000000000000000", r#""sig-\u00e9""#] {
        let inner = format!(r#"{{"id": {id}, "from": "test", "command": "report", "method": "", "d": {{"what": "sys"}}, "sn": "{SN}", "publishTime": {}, "expires": 0}}"#, now());
        let raw = answer_to(&p, &key.seal_as("k1", inner.as_bytes()), id, &a);
        assert!(raw.contains(r#""status":"ok""#), "{raw}");
        // A replay of the same bytes: the guard knows the id (its key is
        // the exact id), the stored answer comes back, still exact.
        let raw = answer_to(&p, &key.seal_as("k1", inner.as_bytes()), id, &a);
        assert!(raw.contains(r#""status":"ok""#), "{raw}");
    }
}
