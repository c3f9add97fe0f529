//! `ctl send`: publish one command, wait for the answer with its id.

use super::args::SendOpts;
use super::connect::Conn;
use super::Failure;
use serde_json::{json, Value};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A fresh command id: unix milliseconds × 1000 + a per-process counter
/// part, unique enough for an operator's shell.
pub fn new_id() -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let ms = now.as_millis() as u64;
    Value::from(ms.saturating_mul(1000) + u64::from(now.subsec_nanos() % 1000))
}

/// The command document the platform would publish.
pub fn command_doc(o: &SendOpts, id: &Value) -> Value {
    json!({"id": id, "from": "dma-ctl", "command": o.command, "method": o.method, "d": o.body,
           "publishTime": crate::util::unix_now(), "expires": o.timeout.as_secs().max(60), "tryTimes": 1})
}

/// Same id, whichever way it travelled (number or string).
fn same_id(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    a == b || text(a) == text(b)
}

/// Send and wait. `Ok(answer)`; a timeout is `Failure` code 3.
pub fn send(conn: &mut Conn, prefix: &str, o: &SendOpts) -> Result<Value, Failure> {
    let id = o.id.clone().unwrap_or_else(new_id);
    conn.subscribe(&crate::mqtt::topics::filters(prefix, "resp/cmd", Some(&o.sn)))?;
    let doc = command_doc(o, &id);
    conn.publish(&format!("{prefix}/cmd/{}", o.sn), doc.to_string().into_bytes())?;
    let deadline = Instant::now() + o.timeout;
    while let Some(m) = conn.next(Some(deadline))? {
        let Ok(v) = serde_json::from_slice::<Value>(&m.payload) else { continue };
        if v.get("id").is_some_and(|x| same_id(x, &id)) && v.get("sn").and_then(Value::as_str).is_none_or(|s| s == o.sn) {
            return Ok(v);
        }
    }
    if conn.was_cancelled() {
        return Err(Failure::timeout(format!("interrupted before device {} answered command {id}", o.sn)));
    }
    Err(Failure::timeout(format!(
        "no answer from device {} within {}s (command id {id}); the serial may be wrong, the device offline \
         (see `dma-agent ctl devices`), or the prefix not '{prefix}'",
        o.sn,
        o.timeout.as_secs_f64()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_across_types() {
        assert!(same_id(&json!(18446744073709551615u64), &json!("18446744073709551615")));
        assert!(!same_id(&json!(1), &json!(2)));
        let a = new_id();
        assert!(a.as_u64().is_some());
    }
}
