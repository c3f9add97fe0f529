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
           "publishTime": dma_agent::util::unix_now(), "expires": o.timeout.as_secs().max(60), "tryTimes": 1})
}

/// The payload to publish: the command document, or with `--sign-key` the
/// signed envelope of docs/PROTOCOL.md (inner command + `sn`, `publishTime`
/// now; the signature over `dma-cmd-v1\n` + the inner bytes).
pub fn payload(o: &SendOpts, id: &Value) -> Result<Vec<u8>, Failure> {
    let mut doc = command_doc(o, id);
    let Some(sign) = &o.sign else { return Ok(doc.to_string().into_bytes()) };
    let pem = std::fs::read_to_string(&sign.key_file).map_err(|e| Failure::usage(format!("--sign-key {}: {e}", sign.key_file)))?;
    let pair = dma_agent::trust::keys::load_private(&pem).map_err(|e| Failure::usage(format!("--sign-key {}: {e}", sign.key_file)))?;
    let kid = match &sign.kid {
        Some(k) => k.clone(),
        None => {
            use ring::signature::KeyPair as _;
            dma_agent::trust::keys::default_kid(pair.public_key().as_ref())
        }
    };
    if let Value::Object(m) = &mut doc {
        m.remove("tryTimes");
        m.insert("sn".into(), Value::from(o.sn.clone()));
    }
    Ok(dma_agent::trust::verify::seal(&pair, &kid, doc.to_string().as_bytes()).into_bytes())
}

/// `ctl keygen`: a new key in `out` (mode 0600, never over an existing
/// file); prints the public key as `kid:BASE64`.
pub fn keygen(out: &str, kid: Option<&str>) -> Result<String, Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (pem, public) = dma_agent::trust::keys::generate().map_err(Failure::usage)?;
    let kid = kid.map(str::to_string).unwrap_or_else(|| dma_agent::trust::keys::default_kid(&public));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| Failure::usage(format!("--out {out}: {e} (an existing key is never overwritten)")))?;
    f.write_all(pem.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| Failure::usage(format!("--out {out}: {e}")))?;
    Ok(dma_agent::trust::TrustedKey { kid, public }.text())
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
    conn.subscribe(&dma_agent::mqtt::topics::filters(prefix, "resp/cmd", Some(&o.sn)))?;
    let body = payload(o, &id)?;
    conn.publish(&format!("{prefix}/cmd/{}", o.sn), body)?;
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
         (see `dma-ctl devices`), or the prefix not '{prefix}'",
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
