//! The four LAN simulators on loopback and the agent configuration that
//! points at them.

use dma_sims::goip::{GoipSim, GoipSimConfig};
use dma_sims::iad::{IadSim, IadSimConfig};
use dma_sims::s20::{S20Sim, S20SimConfig};
use dma_sims::vpn::{VpnSim, VpnSimConfig};
use std::path::Path;

pub const SN: &str = "DE0000C0FFEE";
pub const PREFIX: &str = "dma";

/// The running simulators (dropping them stops them).
pub struct Fleet {
    pub iad: IadSim,
    pub s20: S20Sim,
    pub goip: GoipSim,
    pub vpn: VpnSim,
    vpn_secret: String,
}

impl Fleet {
    pub fn start() -> Result<Fleet, String> {
        let bind = "127.0.0.1:0";
        let iad = IadSim::start(bind, IadSimConfig::default()).map_err(|e| format!("IAD simulator: {e}"))?;
        let s20 = S20Sim::start(bind, S20SimConfig::default()).map_err(|e| format!("S20 simulator: {e}"))?;
        let goip = GoipSim::start(bind, GoipSimConfig::default()).map_err(|e| format!("GoIP simulator: {e}"))?;
        let vpn_cfg = VpnSimConfig::default();
        let vpn_secret = vpn_cfg.secret.clone();
        let vpn = VpnSim::start(bind, vpn_cfg).map_err(|e| format!("VPN simulator: {e}"))?;
        Ok(Fleet { iad, s20, goip, vpn, vpn_secret })
    }

    /// One line per simulator, for the banner.
    pub fn describe(&self) -> Vec<String> {
        vec![
            format!("IAD  (VoIP gateway)          {}", self.iad.url()),
            format!("S20  (Thread border router)  {}", self.s20.url()),
            format!("GoIP (GSM gateway)           {}", self.goip.url()),
            format!("VPN  (SSL-VPN console)       {}", self.vpn.url()),
        ]
    }

    /// The agent's UCI configuration: broker on `broker_port`, state in
    /// `state_dir`, the SMS receiver on `sms_port`, the four devices.
    pub fn agent_config(&self, broker_port: u16, state_dir: &Path, sms_port: u16, trusted_key: &str) -> String {
        let dev = |name: &str, kind: &str, url: &str, user: &str, pass: &str, extra: &str| {
            let creds = if user.is_empty() { String::new() } else { format!("\toption username '{user}'\n\toption password '{pass}'\n") };
            format!("config device '{name}'\n\toption type '{kind}'\n\toption address '{url}'\n{creds}\toption poll_interval '5'\n{extra}\n")
        };
        let vpn_extra = format!("\toption api_secret '{}'\n\toption fingerprint '{}'\n", self.vpn_secret, self.vpn.cert_sha256());
        let noop = "echo demo: not done in the demo";
        let noop_upgrade = "echo demo: not installing {file}";
        [
            format!(
                "config agent 'agent'\n\toption sn '{SN}'\n\toption broker_host '127.0.0.1'\n\toption broker_port '{broker_port}'\n\
                 \toption prefix '{PREFIX}'\n\toption state_dir '{}'\n\toption clock_trust 'always'\n\toption reconnect_min '1'\n\
                 \toption reconnect_max '5'\n\toption keepalive '10'\n\toption sys_interval '30'\n\toption procs_interval '30'\n\
                 \toption periph_interval '60'\n\toption reboot_command '{noop}'\n\toption upgrade_command '{noop_upgrade}'\n\tlist trusted_key '{trusted_key}'\n\n",
                state_dir.display()
            ),
            format!("config sms_receiver 'sms'\n\toption enabled '1'\n\toption listen '127.0.0.1:{sms_port}'\n\n"),
            dev("iad1", "iad", &self.iad.url(), "admin", "admin", ""),
            dev("s20", "s20", &self.s20.url(), "root", "goodlife123", ""),
            dev("goip1", "goip", &self.goip.url(), "root", "root", ""),
            dev("vpn1", "vpn", &self.vpn.url(), "", "", &vpn_extra),
        ]
        .concat()
    }
}
