"""The init script under the real procd (PID 1 of the namespace), with the
real ubus, uci, validate_data and reload_config: started by the package's
post-install, respawned after kill -9, reloaded (SIGHUP, same pid) by
`uci commit` + `reload_config`, a refused start that keeps the running
agent, log_level and enabled applied by a reload, log lines in syslog with
their priority, stop, and a new boot that starts it from /etc/rc.d."""

import re
import time

from tests.openwrt.owrt import Broker, RouterTest, pkg, wait_for


class ProcdTest(RouterTest):
    def setUp(self):
        super().setUp()
        self.broker = Broker()
        self.addCleanup(self.broker.close)

    def test_lifecycle_under_procd(self):
        r = self.router
        r.put(pkg("ipk-r1"), "/tmp/p.ipk")
        r.sh("opkg install /tmp/p.ipk")
        self.assertEqual(r.sh("/etc/init.d/dma-agent enabled", check=False).returncode, 0)
        wait_for("started by post-install", r.agent_pid)
        self.configure(r, self.broker.port)
        r.sh("/etc/init.d/dma-agent restart")
        # reload_config compares with the checksums of its previous run
        # (/var/run/config.md5): the baseline a router has from its boot.
        r.sh("reload_config")
        try:
            pid = wait_for("agent connected", lambda: "connected" in r.log() and r.agent_pid(), 30)
        except AssertionError:
            print("ROUTER LOG:\n" + r.log()[-4000:])
            print(r.sh("ps w; cat /etc/config/dma-agent; ls -la /usr/bin/dma-agent", check=False).stdout)
            raise

        # Log lines reach syslog with their own priority, not all daemon.err.
        wait_for("an info line in syslog", lambda: re.search(r"daemon\.info dma-agent\[\d+\]: ", r.log()), 20)
        self.assertNotRegex(r.log(), r"daemon\.err dma-agent\[\d+\]: (info|warn): ")

        # kill -9, six times: procd respawns it each time (5 s apart).
        t0 = time.monotonic()
        for i in range(6):
            r.sh("kill -9 %d" % pid)
            new = wait_for("respawn %d" % (i + 1), lambda: (r.agent_pid() or pid) != pid and r.agent_pid(), 20)
            pid = new
        self.respawn_secs = time.monotonic() - t0

        # A UCI change + reload_config: the reload trigger sends SIGHUP, same pid.
        before = r.log().count("configuration reloaded")
        r.sh("uci set dma-agent.agent.sys_interval=45; uci commit dma-agent; reload_config")
        wait_for("SIGHUP reload", lambda: r.log().count("configuration reloaded") > before, 20)
        self.assertEqual(r.agent_pid(), pid, "reloaded in place")

        # An invalid option: start and reload refuse with non-zero, the agent stays.
        r.sh("uci set dma-agent.agent.broker_port=99999; uci commit dma-agent")
        for action in ("start", "reload", "restart"):
            out = r.sh("/etc/init.d/dma-agent %s" % action, check=False)
            self.assertNotEqual(out.returncode, 0, "%s: %s" % (action, out.stdout + out.stderr))
            self.assertIn("not started", out.stderr)
            time.sleep(1)
            self.assertEqual(r.agent_pid(), pid, "%s kept the running agent" % action)
        r.sh("reload_config", check=False)
        time.sleep(2)
        self.assertEqual(r.agent_pid(), pid, "reload_config kept the running agent")
        r.sh("uci set dma-agent.agent.broker_port=%d; uci commit dma-agent" % self.broker.port)

        # log_level: a reload restarts it with the new level (the command line).
        r.sh("uci set dma-agent.agent.log_level=debug; uci commit dma-agent; reload_config")
        pid = wait_for("restart with log_level debug", lambda: (r.agent_pid() or pid) != pid and r.agent_pid(), 40)
        with open(r.path("/proc/%d/cmdline" % pid), "rb") as f:
            cmd = f.read().split(b"\0")
        self.assertIn(b"debug", cmd)

        # enabled=0: a reload stops it; enabled=1: a reload starts it again.
        r.sh("uci set dma-agent.agent.enabled=0; uci commit dma-agent; reload_config")
        wait_for("stopped by enabled=0", lambda: not r.agent_pids(), 40)
        r.sh("uci set dma-agent.agent.enabled=1; uci commit dma-agent; reload_config")
        wait_for("started by enabled=1", r.agent_pid, 20)

        # stop
        r.sh("/etc/init.d/dma-agent stop")
        wait_for("stopped", lambda: not r.agent_pids(), 40)

        # A new boot starts it from /etc/rc.d/S95dma-agent.
        r.power_cut()
        r.boot()
        wait_for("started at boot", r.agent_pid, 30)
        wait_for("connected after boot", lambda: r.log().count("connected") >= 1, 30)
