//! Pointing a GoIP at the receiver: the status push URL and period
//! (`goip_get_status.html?url&period`), and the SMS and status-report URLs
//! (`goip_send_cmd.html?op=set&sms_url&sr_url`; every send-sms request
//! carries them too). Done at start and again when the GoIP restarted.

use crate::devices::goip::api::CmdOp;
use crate::devices::goip::GoipClient;
use serde_json::{json, Map};

/// The URL a device pushes to: the receiver's base URL plus
/// `goip/<device>/<token>`: the token (sms/tokens.rs) says which GoIP a
/// push comes from, the name is there for people reading the GoIP's settings.
pub fn device_url(base: &str, device: &str, token: &str) -> String {
    let base = base.trim_end_matches('/');
    format!("{base}/goip/{}/{token}", crate::util::url_encode(device))
}

/// Register; the status push may be refused by older firmware while the
/// SMS URLs are taken, so both are tried and the first error returned.
pub fn register(client: &mut GoipClient, url: &str, period: u64) -> Result<(), String> {
    let status = client.set_status_push(url, period.min(u32::MAX as u64) as u32).map(|_| ()).map_err(|e| format!("status push: {e}"));
    let mut params = Map::new();
    params.insert("sms_url".into(), json!(url));
    params.insert("sr_url".into(), json!(url));
    let urls = client.send_cmd(CmdOp::Set, None, &params).map(|_| ()).map_err(|e| format!("sms_url: {e}"));
    status.and(urls)
}

#[cfg(test)]
mod tests {
    #[test]
    fn device_url_has_the_name() {
        assert_eq!(super::device_url("http://127.0.0.1:8090/", "gw1", "t0"), "http://127.0.0.1:8090/goip/gw1/t0");
        assert_eq!(super::device_url("http://h:1/in", "a b", "t1"), "http://h:1/in/goip/a%20b/t1");
    }
}
