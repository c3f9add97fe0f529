"""Helpers for the real-OpenWrt tests: a router (procd as PID 1 of a PID +
mount namespace over a copy of the rootfs that mkrootfs.sh made, see
../shared/openwrt-userland), the packages under test and a mosquitto on
127.0.0.1. Everything comes from the environment that tests/openwrt/run.sh
sets up (OWRT_USERLAND, OWRT_ROOTFS, OWRT_PKGS, OWRT_AGENT)."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

USERLAND = os.environ.get("OWRT_USERLAND", "")
ROOTFS = os.environ.get("OWRT_ROOTFS", "")
PKGS = os.environ.get("OWRT_PKGS", "")
AGENT = os.environ.get("OWRT_AGENT", "")
CTL = os.environ.get("OWRT_CTL", "")  # the operator CLI (host build of dma-ctl)
NS = os.path.join(USERLAND, "ns.sh")


def ready():
    """Skip reason, or None when run.sh prepared everything."""
    if not (USERLAND and ROOTFS and PKGS and AGENT and CTL):
        return "run through tests/openwrt/run.sh (it builds the tools and the packages)"
    return None


def pkg(name):
    """Path of a package run.sh made, e.g. pkg('ipk-r1')."""
    with open(os.path.join(PKGS, "index.json")) as f:
        return json.load(f)[name]


def wait_for(what, fn, timeout=30.0, every=0.2):
    """fn() until it returns something true; its value, or AssertionError."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))


class Router:
    """One booted namespace. `root` is a private copy of the rootfs, so a
    test can end the namespace (power cut) and boot the same disk again."""

    def __init__(self, root=None):
        if root is None:
            self.tmp = tempfile.mkdtemp(prefix="owrt-", dir=os.path.dirname(ROOTFS))
            root = os.path.join(self.tmp, "root")
            subprocess.run(["cp", "-a", ROOTFS, root], check=True)
        self.root = root
        self.pid = None
        self.boot()

    def boot(self):
        out = subprocess.run(["bash", "-c", '. "$1"; ns_boot "$2"', "ns", NS, self.root],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0 or not out.stdout.strip().isdigit():
            raise AssertionError("ns_boot failed: %s %s" % (out.stdout, out.stderr))
        self.pid = int(out.stdout.strip())

    def power_cut(self):
        """SIGKILL to PID 1: everything in the namespace dies at once; /tmp
        (tmpfs) is lost, the rest of the disk stays."""
        subprocess.run(["bash", "-c", '. "$1"; ns_kill "$2"', "ns", NS, str(self.pid)], timeout=30)
        self.pid = None

    def close(self):
        if self.pid:
            self.power_cut()
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def sh(self, cmd, check=True, timeout=120):
        """Run a shell command inside; CompletedProcess (text)."""
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-p", "-m", "-r", "-w", "/usr/bin/env", "-i",
                            "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "/bin/sh", "-c", cmd],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%r exited %d\nstdout: %s\nstderr: %s" % (cmd, r.returncode, r.stdout, r.stderr))
        return r

    def put(self, src, dst):
        """Copy a host file into the router (dst: absolute path inside)."""
        shutil.copy(src, "/proc/%d/root%s" % (self.pid, dst))

    def path(self, p):
        """Host path of a file inside the running router (/tmp is its tmpfs)."""
        return "/proc/%d/root%s" % (self.pid, p)

    def log(self):
        try:
            with open(self.path("/tmp/messages"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ubus_service(self, name="dma-agent"):
        r = self.sh("ubus call service list '{\"name\":\"%s\"}'" % name, check=False)
        try:
            return json.loads(r.stdout or "{}").get(name, {})
        except ValueError:
            return {}

    def agent_pid(self):
        """pid (inside the namespace) of the running agent instance, or None."""
        inst = self.ubus_service().get("instances", {}).get("instance1", {})
        return inst.get("pid") if inst.get("running") else None

    def agent_pids(self):
        return self.sh("pidof dma-agent", check=False).stdout.split()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Broker:
    """mosquitto on 127.0.0.1 (the namespace shares the host's network)."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="owrt-mqtt-")
        conf = os.path.join(self.dir, "m.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % self.port)
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("mosquitto", self._up, 10)

    def _up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.5).close()
            return True
        except OSError:
            return False

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def ctl(port, *args, timeout=60):
    """`dma-ctl --port PORT --json ARGS` on the host; (exit code, documents)."""
    r = subprocess.run([CTL, "--port", str(port), "--json"] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    docs = []
    for line in r.stdout.splitlines():
        try:
            docs.append(json.loads(line))
        except ValueError:
            pass
    return r.returncode, docs, r.stderr


class RouterTest(unittest.TestCase):
    """Base: skips without run.sh's preparation; a router per test."""

    def setUp(self):
        why = ready()
        if why:
            self.skipTest(why)
        self.router = Router()
        self.addCleanup(self.router.close)

    def configure(self, r, port, **opts):
        """UCI options for a test agent: the broker on 127.0.0.1:port, no
        start-up delay, a fixed serial."""
        base = {"broker_host": "127.0.0.1", "broker_port": str(port), "startup_delay": "0", "sn": "OWRT00000001"}
        base.update({k: str(v) for k, v in opts.items()})
        r.sh("; ".join("uci set dma-agent.agent.%s='%s'" % kv for kv in base.items()) + "; uci commit dma-agent")
