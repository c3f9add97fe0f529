"""Tests of openwrt/dma-agent/files/dma-agent.init with stand-in procd functions.

The script is sourced by /bin/sh in a subshell, the way /etc/rc.common does,
with procd_*, config_* and mkdir replaced by functions that log their
arguments; the test then reads what start_service, service_triggers and
reload_service registered.
"""
import os
import subprocess
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INIT = os.path.join(ROOT, "openwrt", "dma-agent", "files", "dma-agent.init")
CONFIG = os.path.join(ROOT, "openwrt", "dma-agent", "files", "dma-agent.config")

HARNESS = r'''
LOG=$1; INIT=$2; FN=$3
log() { printf '%s\n' "$*" >> "$LOG"; }
# --- stand-ins for /lib/functions/procd.sh
procd_open_instance() { log "procd_open_instance $*"; }
procd_set_param() { log "procd_set_param $*"; }
procd_append_param() { log "procd_append_param $*"; }
procd_close_instance() { log "procd_close_instance $*"; }
procd_add_reload_trigger() { log "procd_add_reload_trigger $*"; }
procd_add_config_trigger() { log "procd_add_config_trigger $*"; }
procd_add_interface_trigger() { log "procd_add_interface_trigger $*"; }
procd_open_trigger() { log "procd_open_trigger $*"; }
procd_close_trigger() { log "procd_close_trigger $*"; }
procd_send_signal() { log "procd_send_signal $*"; }
procd_kill() { log "procd_kill $*"; }
# --- stand-ins for /lib/functions.sh (UCI values from UCI_<section>_<option>)
config_load() { log "config_load $*"; }
config_get() {
    local _var=$1 _sec=$2 _opt=$3 _def=$4 _val
    eval "_val=\${UCI_${_sec}_${_opt}-\$_def}"
    eval "$_var=\$_val"
}
config_get_bool() {
    local _v; config_get _v "$2" "$3" "$4"
    case "$_v" in 1|on|true|yes|enabled) _v=1 ;; *) _v=0 ;; esac
    eval "$1=\$_v"
}
mkdir() { log "mkdir $*"; }
# --- what /etc/rc.common does: source the script, then call the function
( . "$INIT"; log "USE_PROCD=$USE_PROCD START=$START"; "$FN" ) || log "exit $?"
'''


def run(fn, **uci):
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log")
        open(log, "w").close()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update({f"UCI_{k}": v for k, v in uci.items()})
        res = subprocess.run(["sh", "-c", HARNESS, "harness", log, INIT, fn],
                             capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise AssertionError(f"harness failed: {res.stderr}")
        with open(log) as f:
            return f.read().splitlines(), res.stderr


class InitScriptTest(unittest.TestCase):
    def test_header(self):
        with open(INIT) as f:
            text = f.read()
        self.assertTrue(text.startswith("#!/bin/sh /etc/rc.common\n"))
        self.assertTrue(os.access(INIT, os.X_OK), "init script must be executable")
        res = subprocess.run(["sh", "-n", INIT])
        self.assertEqual(res.returncode, 0)

    def test_use_procd_and_start_order(self):
        lines, _ = run("true")
        self.assertIn("USE_PROCD=1 START=95", lines)

    def test_start_service_registers_instance(self):
        lines, _ = run("start_service")
        procd = [l for l in lines if l.startswith("procd_")]
        self.assertEqual(procd[0], "procd_open_instance ")
        self.assertEqual(procd[-1], "procd_close_instance ")
        params = procd[1:-1]
        self.assertEqual(params, [
            "procd_set_param command /usr/bin/dma-agent --config /etc/config/dma-agent --log-level info",
            "procd_set_param respawn 3600 5 5",
            "procd_set_param stdout 1",
            "procd_set_param stderr 1",
            "procd_set_param file /etc/config/dma-agent",
            "procd_set_param term_timeout 15",
        ])
        self.assertIn("config_load dma-agent", lines)
        self.assertIn("mkdir -p /etc/dma-agent", lines)

    def test_state_dir_from_uci(self):
        lines, _ = run("start_service", agent_state_dir="/overlay/dma")
        self.assertIn("mkdir -p /overlay/dma", lines)

    def test_log_level_from_uci(self):
        lines, _ = run("start_service", agent_log_level="debug")
        self.assertIn("procd_set_param command /usr/bin/dma-agent --config /etc/config/dma-agent --log-level debug", lines)

    def test_disabled_registers_nothing(self):
        lines, err = run("start_service", agent_enabled="0")
        self.assertFalse([l for l in lines if l.startswith("procd_")], lines)
        self.assertIn("disabled", err)

    def test_service_triggers(self):
        lines, _ = run("service_triggers")
        self.assertEqual([l for l in lines if l.startswith("procd_")],
                         ["procd_add_reload_trigger dma-agent"])

    def test_reload_sends_sighup(self):
        lines, _ = run("reload_service")
        # procd_send_signal NAME [INSTANCE] [SIGNAL]; SIGHUP is procd's default
        self.assertEqual([l for l in lines if l.startswith("procd_")],
                         ["procd_send_signal dma-agent"])


class DefaultConfigTest(unittest.TestCase):
    def setUp(self):
        with open(CONFIG) as f:
            self.text = f.read()

    def test_agent_section(self):
        self.assertIn("config agent 'agent'", self.text)
        for opt in ("broker_host '127.0.0.1'", "prefix 'dma'", "state_dir '/etc/dma-agent'"):
            self.assertIn("\toption " + opt, self.text)

    def test_device_examples_commented(self):
        for kind in ("iad", "s20", "goip", "vpn"):
            self.assertIn(f"# config device '{kind}'", self.text)
        active = [l for l in self.text.splitlines() if l.startswith("config ")]
        self.assertEqual(active, ["config agent 'agent'"])

    def test_no_real_private_addresses(self):
        import re
        self.assertIsNone(re.search(r"\b(192\.168|10\.\d+|172\.(1[6-9]|2\d|3[01]))\.\d+", self.text))
        self.assertIn("LAN-DEVICE-IP", self.text)


if __name__ == "__main__":
    unittest.main()
