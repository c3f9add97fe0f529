//! `ctl send`: publish one command, wait for the answer with its id.

use super::args::SendOpts;
use super::connect::Conn;
use super::Failure;
use dma_wire::command::Outgoing;
use dma_wire::Id;
use serde_json::Value;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A fresh command id: unix milliseconds × 1000 + a per-process counter
/// part, unique enough for an operator's shell.
pub fn new_id() -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let ms = now.as_millis() as u64;
    Value::from(ms.saturating_mul(1000) + u64::from(now.subsec_nanos() % 1000))
}

/// The command document the platform would publish (dma-wire's envelope).
pub fn command_doc(o: &SendOpts, id: &Value) -> Outgoing {
    Outgoing {
        id: Id::from_value(id),
        from: "dma-ctl".into(),
        command: o.command.clone(),
        method: o.method.clone(),
        d: o.body.clone(),
        publish_time: Some(dma_agent::util::unix_now()),
        expires: Some(o.timeout.as_secs().max(60)),
        max_retries: None,
        try_times: Some(1),
        detached: false,
        sn: None,
    }
}

fn bytes(doc: &Outgoing) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(doc).map_err(|e| Failure::usage(format!("cannot write the command: {e}")))
}

/// The payload to publish: the command document, or with `--sign-key` the
/// signed envelope of docs/PROTOCOL.md (inner command + `sn`, `publishTime`
/// now; the signature over `dma-cmd-v1\n` + the inner bytes).
pub fn payload(o: &SendOpts, id: &Value) -> Result<Vec<u8>, Failure> {
    let mut doc = command_doc(o, id);
    let Some(sign) = &o.sign else { return bytes(&doc) };
    let pem = std::fs::read_to_string(&sign.key_file).map_err(|e| Failure::usage(format!("--sign-key {}: {e}", sign.key_file)))?;
    let pair = dma_agent::trust::keys::load_private(&pem).map_err(|e| Failure::usage(format!("--sign-key {}: {e}", sign.key_file)))?;
    let kid = match &sign.kid {
        Some(k) => k.clone(),
        None => {
            use ring::signature::KeyPair as _;
            dma_agent::trust::keys::default_kid(pair.public_key().as_ref())
        }
    };
    doc.try_times = None;
    doc.sn = Some(o.sn.clone());
    Ok(dma_agent::trust::verify::seal(&pair, &kid, &bytes(&doc)?).into_bytes())
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

/// Same id, whichever way it travelled (number or string); the answer's
/// id read as its exact text (dma-wire), so ids beyond 64 bits match too.
fn same_id(answer: &[u8], id: &Id) -> bool {
    dma_wire::Answer::parse(answer).is_ok_and(|a| a.id.matches_text(id.text()))
}

/// Send and wait. `Ok(answer)`; a timeout is `Failure` code 3.
pub fn send(conn: &mut Conn, prefix: &str, o: &SendOpts) -> Result<Value, Failure> {
    let id = o.id.clone().unwrap_or_else(new_id);
    let wire_id = Id::from_value(&id);
    conn.subscribe(&dma_agent::mqtt::topics::filters(prefix, "resp/cmd", Some(&o.sn)))?;
    let body = payload(o, &id)?;
    conn.publish(&format!("{prefix}/cmd/{}", o.sn), body)?;
    let deadline = Instant::now() + o.timeout;
    while let Some(m) = conn.next(Some(deadline))? {
        let Ok(v) = serde_json::from_slice::<Value>(&m.payload) else { continue };
        if same_id(&m.payload, &wire_id) && v.get("sn").and_then(Value::as_str).is_none_or(|s| s == o.sn) {
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
        assert!(same_id(br#"{"id":18446744073709551615}"#, &Id::from_string("18446744073709551615")));
        assert!(same_id(br#"{"id":"7"}"#, &Id::from_u64(7)));
        assert!(same_id(br#"{"id":18446744073709551616}"#, &Id::from_text("18446744073709551616").unwrap()));
        assert!(!same_id(br#"{"id":1}"#, &Id::from_u64(2)));
        let a = new_id();
        assert!(a.as_u64().is_some());
    }
}
