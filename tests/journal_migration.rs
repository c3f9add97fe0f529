//! A router upgraded in the field keeps its journal (issue 22 item 2):
//! `tests/data/journal-v1.log` is a real journal written by the agent
//! before dma-wire (format 1, commit b57b983: `sh` 7001 ok and
//! acknowledged, `sh` "mig-s" failed, `report` 18446744073709551615 ok,
//! `sh` 7004 still running when the agent was killed, `sh` 7003 finished
//! while the broker was away so its answer was never acknowledged). Its
//! commands wrote to `$DMA_MIG_DIR/count`. The new agent starts on it: the
//! unacknowledged answer is published again, succeeded ids are answered
//! from the journal without running again, the interrupted one is not run,
//! the failed one is retried, and the file is rewritten in format 2.

mod common;
use common::*;
use std::time::Duration;

const SN: &str = "AA00000000F1";

fn cmd(id: &str, command: &str, d: &str, detached: bool) -> String {
    let det = if detached { r#", "detached": true"# } else { "" };
    format!(r#"{{"id": {id}, "from": "console", "command": "{command}", "method": ""{det}, "d": {d}}}"#)
}

#[test]
fn a_journal_of_the_previous_format_is_kept_and_honoured() {
    let work = temp_dir("journal-migration");
    let state = work.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/journal-v1.log"), state.join("journal.log")).unwrap();
    // The commands' effects land here: none may happen again.
    std::env::set_var("DMA_MIG_DIR", &work);
    let count = work.join("count");
    let runs = || std::fs::read_to_string(&count).map(|s| s.lines().count()).unwrap_or(0);

    let broker = Broker::start();
    let p = Platform::connect(broker.port, "dma");
    let mut a = Agent::start(SN, &agent_section(SN, broker.port, &state, ""));
    p.wait(&format!("dma/state/{SN}"), T, |m| m.json["online"] == true).unwrap_or_else(|| panic!("no birth; log:\n{}", a.log()));

    // 7003's answer was never acknowledged: published again on connect, unasked.
    let m = p.wait("dma/resp/cmd", T, |m| m.raw.starts_with(r#"{"id":7003,"#)).unwrap_or_else(|| panic!("7003 not re-published; log:\n{}", a.log()));
    assert_eq!((m.json["status"].as_str(), m.json["d"]["result"].as_str()), (Some("ok"), Some("b2ZmbGluZQo=")), "{}", m.raw);

    let send = |payload: String, id_text: &str| -> Msg {
        let from = p.count();
        p.publish_raw(&format!("dma/cmd/{SN}"), &payload);
        let head = format!("{{\"id\":{id_text},");
        p.wait_from(from, "dma/resp/cmd", T, |m| m.raw.starts_with(&head)).unwrap_or_else(|| panic!("no answer to {payload}"))
    };
    let c7001 = cmd("7001", "sh", r#"{"shcmd": "echo ran >> \"$DMA_MIG_DIR/count\"; echo first"}"#, false);
    let c7003 = cmd("7003", "sh", r#"{"shcmd": "sleep 2; echo late >> \"$DMA_MIG_DIR/count\"; echo offline"}"#, true);
    let big = cmd("18446744073709551615", "report", r#"{"what": "sys"}"#, false);
    for _ in 0..2 {
        // Succeeded: the stored answer (same output), no second run.
        let r = send(c7001.clone(), "7001");
        assert_eq!((r.json["status"].as_str(), r.json["d"]["result"].as_str()), (Some("ok"), Some("Zmlyc3QK")), "{}", r.raw);
        let r = send(c7003.clone(), "7003");
        assert_eq!(r.json["d"]["result"], "b2ZmbGluZQo=", "{}", r.raw);
        let r = send(big.clone(), "18446744073709551615");
        assert_eq!(r.json["d"]["result"]["requested"][0], "sys", "{}", r.raw);
        // Running when the old agent died: interrupted, never run again.
        let r = send(cmd("7004", "sh", r#"{"shcmd": "sleep 30"}"#, true), "7004");
        assert!(r.json["d"]["msg"].as_str().unwrap_or("").starts_with("interrupted"), "{}", r.raw);
        assert_eq!(runs(), 0, "nothing of the old journal ran again");
        // Same id, another command: still a conflict.
        let r = send(cmd("7001", "sh", r#"{"shcmd": "true"}"#, false), "7001");
        assert!(r.json["d"]["msg"].as_str().unwrap_or("").starts_with("conflict"), "{}", r.raw);
        // And once more after a restart on the journal now written in format 2.
        a.stop();
        let text = std::fs::read_to_string(state.join("journal.log")).unwrap();
        assert!(text.lines().all(|l| l.starts_with(r#"{"v":2,"#)), "rewritten in format 2:\n{text}");
        a.spawn();
        p.wait_from(p.count(), &format!("dma/state/{SN}"), T, |m| m.json["online"] == true).expect("back online");
    }
    // Failed before: a redelivery is a retry (it runs, and fails again the same way).
    let r = send(cmd(r#""mig-s""#, "sh", r#"{"shcmd": "exit 3"}"#, false), r#""mig-s""#);
    assert_eq!((r.json["status"].as_str(), r.json["d"]["code"].as_i64()), (Some("err"), Some(3)), "{}", r.raw);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(runs(), 0);
    drop(a);
    let _ = std::fs::remove_dir_all(&work);
}
