"""Tests of openwrt/dma-agent/files/dma-agent.init with stand-in procd functions.

The script is sourced by /bin/sh in a subshell, the way /etc/rc.common does,
with procd_*, config_*, uci_validate_section (checking the types the script
uses, as /sbin/validate_data does) and mkdir replaced by functions that log
their arguments; the test then reads what start_service, service_triggers and
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
procd_add_validation() { log "procd_add_validation $*"; }
# uci_validate_section PACKAGE TYPE NAME 'option:type[:default]'...: as
# procd.sh + /sbin/validate_data do it, for the types the script uses: sets
# each option's variable (value or default), prints each bad one on stderr,
# returns non-zero if any was bad.
uci_validate_section() {
    log "uci_validate_section $*"
    local _pkg=$1 _type=$2 _name=$3 _spec _opt _rest _t _def _val _bad=0
    shift 3
    for _spec in "$@"; do
        _opt=${_spec%%:*}; _rest=${_spec#*:}; _t=${_rest%%:*}
        case "$_rest" in *:*) _def=${_rest#*:} ;; *) _def= ;; esac
        eval "_val=\${UCI_${_name}_${_opt}-\$_def}"
        if ! valid "$_t" "$_val"; then
            echo "validation failed: $_pkg.$_name.$_opt='$_val' is not $_t" >&2
            _bad=1
        fi
        eval "$_opt=\$_val"
    done
    return $_bad
}
valid() {
    local t=$1 v=$2 lo hi w
    [ -z "$v" ] && return 0
    case "$t" in
        bool) case "$v" in 0|1|on|off|true|false|yes|no|enabled|disabled) return 0 ;; esac; return 1 ;;
        string) return 0 ;;
        host) case "$v" in *[!A-Za-z0-9._:-]*) return 1 ;; esac; return 0 ;;
        port) valid 'range(1,65535)' "$v"; return $? ;;
        range\(*)
            case "$v" in *[!0-9]*) return 1 ;; esac
            lo=${t#range(}; lo=${lo%%,*}; hi=${t#*,}; hi=${hi%)}
            [ "$v" -ge "$lo" ] && [ "$v" -le "$hi" ]; return $? ;;
        or\(*)
            for w in $(echo "${t#or(}" | tr -d '")' | tr ',' ' '); do [ "$v" = "$w" ] && return 0; done
            return 1 ;;
    esac
    echo "stand-in: unknown type $t" >&2; return 2
}
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
            "procd_set_param respawn 3600 5 0",
            "procd_set_param env DMA_AGENT_LOG=syslog",
            "procd_set_param stdout 1",
            "procd_set_param stderr 1",
            "procd_set_param file /usr/bin/dma-agent",
            "procd_set_param term_timeout 30",
        ])
        self.assertTrue(any(l.startswith("uci_validate_section dma-agent agent agent ") for l in lines))
        self.assertIn("mkdir -p /etc/dma-agent", lines)

    def test_respawn_never_gives_up(self):
        lines, _ = run("start_service")
        respawn = [l.split()[2:] for l in lines if l.startswith("procd_set_param respawn")]
        self.assertEqual(respawn, [["3600", "5", "0"]], "retry limit 0: procd never stops restarting")

    def test_term_timeout_longer_than_the_agents_shutdown(self):
        # The agent's shutdown (src/agent/runtime.rs): engine drain + offline PUBACK wait + session close.
        with open(os.path.join(ROOT, "src", "agent", "runtime.rs")) as f:
            rt = f.read()
        import re
        m = re.search(r"engine\.drain\(.*?session\.shutdown\(Duration::from_secs\(\d+\)\)", rt, re.S)
        if not m:
            self.skipTest("the shutdown sequence of src/agent/runtime.rs changed shape: check term_timeout by hand")
        drain = sum(int(n) for n in re.findall(r"(?:drain|wait|shutdown)\(Duration::from_secs\((\d+)\)\)", m.group(0)))
        self.assertGreaterEqual(drain, 10)
        lines, _ = run("start_service")
        tt = [int(l.split()[2]) for l in lines if l.startswith("procd_set_param term_timeout")]
        self.assertEqual(len(tt), 1)
        self.assertGreater(tt[0], drain + 5, f"term_timeout {tt[0]} s vs shutdown {drain} s")

    def test_validation_runs_before_start(self):
        lines, _ = run("start_service")
        v = [i for i, l in enumerate(lines) if l.startswith("uci_validate_section dma-agent agent agent ")]
        first_procd = min(i for i, l in enumerate(lines) if l.startswith("procd_"))
        self.assertEqual(len(v), 1, lines)
        self.assertLess(v[0], first_procd)

    def test_broken_config_refused_with_a_message(self):
        for opt, bad in (("broker_port", "99999"), ("broker_port", "mqtt"), ("log_level", "verbose"),
                         ("keepalive", "1"), ("tls", "maybe"), ("clock_trust", "sometimes"),
                         ("broker_host", "bad host")):
            lines, err = run("start_service", **{f"agent_{opt}": bad})
            self.assertFalse([l for l in lines if l.startswith("procd_")], f"{opt}={bad} started: {lines}")
            self.assertIn(f"dma-agent.agent.{opt}", err, f"{opt}={bad}")
            self.assertIn("not started", err)
            self.assertIn("exit 1", lines, "start_service must fail")

    def test_relative_state_dir_refused(self):
        lines, err = run("start_service", agent_state_dir="var/dma")
        self.assertFalse([l for l in lines if l.startswith("procd_")])
        self.assertIn("absolute path", err)

    def test_validation_ranges_match_the_agents_parser(self):
        # A value the agent accepts must never stop the init script, and back.
        import re
        with open(INIT) as f:
            init = f.read()
        with open(os.path.join(ROOT, "src", "config", "model.rs")) as f:
            model = f.read()
        specs = re.findall(r"'(\w+):range\((\d+),(\d+)\):(\d+)'", init)
        self.assertGreaterEqual(len(specs), 8)
        checked = 0
        for opt, lo, hi, default in specs:
            self.assertTrue(int(lo) <= int(default) <= int(hi), opt)
            m = re.search(r'"%s" => self\.%s = parse_num\(value, ([\d\s*]+), ([\d\s*]+)\)' % (opt, opt), model)
            if m:  # (an option parsed some other way is not compared)
                self.assertEqual((int(lo), int(hi)), (eval(m.group(1)), eval(m.group(2))), opt)
                checked += 1
        if not checked:
            self.skipTest("src/config/model.rs parses ranges another way now: compare by hand")

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
                         ["procd_add_reload_trigger dma-agent",
                          "procd_add_validation validate_agent_section"])

    # reload_service (start again, then SIGHUP when the instance is kept) is
    # tested under the real procd: tests/openwrt/test_procd.py.


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
