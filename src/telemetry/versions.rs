//! The `versions` report: the agent, the OS release, the LAN devices'
//! firmware.

use serde_json::{json, Value};

/// `"<semver> <build YYYYMMDD-HHMMSS>"`, the platform's form.
pub fn agent_version() -> String {
    format!("{} {}", crate::VERSION, crate::agent::clock::format_build_stamp(crate::agent::clock::build_epoch()))
}

/// Value of `KEY='v'` / `KEY="v"` / `KEY=v` in a shell-style release file.
fn release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
    })
}

/// The OS release: OpenWrt's /etc/openwrt_release, else /etc/os-release.
pub fn os_release() -> (String, String) {
    if let Ok(t) = std::fs::read_to_string("/etc/openwrt_release") {
        let v = release_field(&t, "DISTRIB_DESCRIPTION")
            .or_else(|| release_field(&t, "DISTRIB_RELEASE"))
            .unwrap_or_default();
        return ("openwrt".into(), v);
    }
    if let Ok(t) = std::fs::read_to_string("/etc/os-release") {
        let v = release_field(&t, "PRETTY_NAME").or_else(|| release_field(&t, "VERSION")).unwrap_or_default();
        return ("os".into(), v);
    }
    ("os".into(), "unknown".into())
}

/// The `d` list; `lan` is (kind:name, firmware) of each known LAN device.
pub fn sample(lan: &[(String, String)]) -> Value {
    let (os_n, os_v) = os_release();
    let mut d = vec![json!({"n": "dma-agent", "v": agent_version()}), json!({"n": os_n, "v": os_v})];
    for (n, v) in lan {
        d.push(json!({"n": n, "v": v}));
    }
    Value::Array(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_release_files() {
        let t = "DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='23.05.3'\nDISTRIB_DESCRIPTION='OpenWrt 23.05.3 r23809-234f1a2efa'\n";
        assert_eq!(super::release_field(t, "DISTRIB_DESCRIPTION").unwrap(), "OpenWrt 23.05.3 r23809-234f1a2efa");
        assert_eq!(super::release_field("PRETTY_NAME=\"Debian GNU/Linux 12\"\n", "PRETTY_NAME").unwrap(), "Debian GNU/Linux 12");
    }
}
