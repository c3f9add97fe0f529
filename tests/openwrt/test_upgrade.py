"""The agent's own `upgrade` command end to end inside the namespace, under
the real procd, with the real opkg (.ipk) and apk (.apk), through mosquitto
on 127.0.0.1 and a package server on 127.0.0.1: a good package is committed
and answered ok with the new version; a package whose binary exits at
start, and one that never reaches the broker, are rolled back by the runner
script and answered err by the old version; a power cut in the middle and a
new boot end on one working version with one answer. Every case counts the
answers on the wire: exactly one per command."""

import functools
import hashlib
import http.server
import json
import os
import subprocess
import threading
import time

from tests.openwrt.owrt import AGENT, Broker, RouterTest, ctl, pkg, wait_for

SN = "OWRT00000001"
TRIAL = 15


class PackageServer:
    """http://127.0.0.1:PORT/NAME serves the packages run.sh made."""

    def __init__(self, files):
        self.files = files
        handler = functools.partial(self.Handler, files)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    class Handler(http.server.BaseHTTPRequestHandler):
        def __init__(self, files, *a, **kw):
            self.files = files
            super().__init__(*a, **kw)

        def do_GET(self):
            path = self.files.get(self.path.lstrip("/"))
            if not path:
                self.send_error(404)
                return
            with open(path, "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Answers:
    """Every answer on {prefix}/resp/cmd/{sn} (or the shared {prefix}/resp/cmd), as mosquitto_sub sees it."""

    def __init__(self, port):
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "dma/resp/cmd",
                                      "-t", "dma/resp/cmd/+", "-q", "1"], stdout=subprocess.PIPE, text=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def for_id(self, cid):
        out = []
        for l in self.lines:
            try:
                d = json.loads(l)
            except ValueError:
                continue
            if str(d.get("id")) == str(cid):
                out.append(d)
        return out

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class Upgrade:
    """Shared by the opkg and the apk runs; KIND is 'ipk' or 'apk'."""

    KIND = ""

    def setUp(self):
        super().setUp()
        self.broker = Broker()
        self.addCleanup(self.broker.close)
        names = {}
        for v in ("r1", "r2", "crash", "nobroker"):
            p = pkg("%s-%s" % (self.KIND, v))
            names["%s.%s" % (v, self.KIND)] = p
        self.server = PackageServer(names)
        self.addCleanup(self.server.close)
        self.answers = Answers(self.broker.port)
        self.addCleanup(self.answers.close)
        r = self.router
        r.put(pkg("%s-r1" % self.KIND), "/tmp/p." + self.KIND)
        if self.KIND == "ipk":
            r.sh("opkg install /tmp/p.ipk")
        else:
            r.sh("apk add --no-network --allow-untrusted /tmp/p.apk")
        self.configure(r, self.broker.port)
        r.sh("/etc/init.d/dma-agent restart")
        wait_for("r1 connected", lambda: "connected to broker" in r.log() and r.agent_pid(), 30)

    def installed(self):
        if self.KIND == "ipk":
            return self.router.sh("opkg list-installed dma-agent").stdout
        return self.router.sh("apk list -I dma-agent 2>/dev/null").stdout

    def send(self, name, cid, timeout=TRIAL + 90, trial=TRIAL, extra=None):
        path = pkg("%s-%s" % (self.KIND, name))
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        body = {"url": "http://127.0.0.1:%d/%s.%s" % (self.server.port, name, self.KIND), "sha256": sha, "trial": trial}
        body.update(extra or {})
        t0 = time.monotonic()
        rc, docs, err = ctl(self.broker.port, "send", SN, "upgrade", "--id", str(cid), "--body", json.dumps(body),
                            "--timeout", str(timeout), timeout=timeout + 30)
        return rc, docs, err, time.monotonic() - t0

    def result(self, docs):
        for d in docs:
            if isinstance(d, dict) and ("d" in d or "status" in d):
                return d
        return docs[-1] if docs else {}

    def assert_one_answer(self, cid):
        time.sleep(2)
        got = self.answers.for_id(cid)
        self.assertEqual(len(got), 1, "exactly one answer for %s: %s" % (cid, got))
        return got[0]

    def test_good_package_commits(self):
        rc, docs, err, secs = self.send("r2", 7001)
        a = self.assert_one_answer(7001)
        self.assertEqual(a["status"], "ok", a)
        self.assertEqual(a["d"]["result"]["package"], "0.1.0-r2", a)
        self.assertEqual(a["d"]["result"]["from_package"], "0.1.0-r1", a)
        self.assertEqual(rc, 0, (docs, err))
        self.assertIn("0.1.0-r2", self.installed())
        print("\n  %s good package: answered ok in %.1f s" % (self.KIND, secs))
        # The same command again: the stored answer, nothing runs twice.
        log_before = self.router.log().count("handed to the transaction runner")
        rc, docs, err, _ = self.send("r2", 7001, timeout=20)
        self.assertEqual(self.router.log().count("handed to the transaction runner"), log_before)
        self.assertEqual(len(self.answers.for_id(7001)), 2, "the redelivery got the stored answer once")
        wait_for("backup removed at commit", lambda: not os.path.exists(self.router.path("/etc/dma-agent/upgrade/prev.tgz")), 5)
        self.assertFalse(os.path.exists(self.router.path("/etc/dma-agent/upgrade/phase")), "transaction closed")

    def rolled_back(self, name, cid):
        rc, docs, err, secs = self.send(name, cid)
        a = self.assert_one_answer(cid)
        self.assertEqual(a["status"], "err", a)
        self.assertIn("rolled back", a["d"]["msg"], a)
        self.assertEqual(rc, 1, (docs, err))
        self.assertIn("0.1.0-r1", self.installed(), "the database names the restored version")
        r = self.router
        pid = wait_for("old version running", r.agent_pid, 20)
        exe = os.readlink(r.path("/proc/%d/exe" % pid))
        self.assertTrue(exe.endswith("/usr/bin/dma-agent"), exe)
        out = r.sh("/usr/bin/dma-agent --version").stdout
        self.assertIn("dma-agent", out)
        self.assertFalse(os.path.exists(r.path("/etc/dma-agent/upgrade/prev.tgz")), "backup removed after the rollback")
        print("\n  %s %s: answered err (rolled back) in %.1f s (trial %d s)" % (self.KIND, name, secs, TRIAL))
        return a

    def test_crashing_package_rolls_back(self):
        a = self.rolled_back("crash", 7002)
        self.assertIn("trial failed", a["d"]["msg"])

    def test_package_without_broker_rolls_back(self):
        self.rolled_back("nobroker", 7003)

    def phase(self):
        try:
            with open(self.router.path("/etc/dma-agent/upgrade/phase")) as f:
                return f.read().strip()
        except OSError:
            return None

    def test_power_cut_mid_upgrade(self):
        """The namespace's PID 1 killed as the install starts, then a new
        boot: one working version, one answer."""
        self.power_cut_at(lambda: self.phase() == "trial")

    def test_power_cut_mid_trial(self):
        """The same once the crashing version is installed and on trial: the
        boot resumes the trial (the init script starts the runner), which
        rolls back."""
        self.power_cut_at(lambda: self.phase() == "trial" and
                          os.path.exists(self.router.path("/etc/dma-agent/upgrade/install.log")))

    def power_cut_at(self, when):
        r = self.router
        box = {}
        t = threading.Thread(target=lambda: box.update(res=self.send("crash", 7004, timeout=TRIAL + 120)))
        t.start()
        wait_for("the moment of the power cut", when, 60, 0.05)
        t0 = time.monotonic()
        r.power_cut()
        r.boot()
        t.join(TRIAL + 150)
        a = self.assert_one_answer(7004)
        self.assertEqual(a["status"], "err", a)
        print("\n  %s power cut: answered err %.1f s after the cut: %s" % (self.KIND, time.monotonic() - t0, a["d"]["msg"]))
        self.assertIn("0.1.0-r1", self.installed())
        wait_for("old version running after the boot", r.agent_pid, 20)
        # And the next upgrade works.
        rc, docs, err, _ = self.send("r2", 7005)
        self.assertEqual(self.assert_one_answer(7005)["status"], "ok")


class OpkgUpgradeTest(Upgrade, RouterTest):
    KIND = "ipk"


class ApkUpgradeTest(Upgrade, RouterTest):
    KIND = "apk"
