"""The project's .ipk with the real opkg-lede and its .apk with the real
apk-tools v3, inside a booted namespace: install (post-install enables and
starts the agent under procd), upgrade with the operator's modified
/etc/config/dma-agent kept, remove; and the .apk from a signed feed."""

import os

from tests.openwrt.owrt import RouterTest, pkg, wait_for, PKGS

MARK = "# operator's change"


class Common:
    """Shared by the opkg and the apk tests."""

    def install(self, name):
        raise NotImplementedError

    def upgrade(self, name):
        raise NotImplementedError

    def remove(self):
        raise NotImplementedError

    def version(self):
        raise NotImplementedError

    def test_install_upgrade_keeps_config_remove(self):
        r = self.router
        out = self.install("r1")
        self.assertTrue(r.sh("/etc/init.d/dma-agent enabled", check=False).returncode == 0, "enabled by post-install")
        self.assertTrue(os.path.exists(r.path("/etc/rc.d/S95dma-agent")))
        pid1 = wait_for("agent started by post-install", r.agent_pid)
        self.assertIn("0.1.0-r1", self.version())
        self.assertTrue(r.sh("test -x /usr/libexec/dma-agent/upgrade", check=False).returncode == 0, out)
        # The operator changes the config; the upgrade must keep it.
        r.sh("uci set dma-agent.agent.sys_interval=77; uci commit dma-agent; echo \"%s\" >> /etc/config/dma-agent" % MARK)
        out = self.upgrade("r2")
        self.assertIn("0.1.0-r2", self.version(), out)
        with open(r.path("/etc/config/dma-agent")) as f:
            conf = f.read()
        self.assertIn(MARK, conf)
        self.assertIn("'77'", conf)
        self.assertTrue(os.path.exists(r.path(self.NEW_DEFAULT)), "the new default is put beside it")
        self.assertTrue(r.sh("/etc/init.d/dma-agent enabled", check=False).returncode == 0, "still enabled")
        # procd restarts it with the new binary (the instance's file changed).
        wait_for("agent restarted by the upgrade", lambda: r.agent_pid() not in (None, pid1), 40)
        self.remove()
        self.assertFalse(os.path.exists(r.path("/usr/bin/dma-agent")))
        self.assertFalse(os.path.exists(r.path("/etc/init.d/dma-agent")))
        self.assertFalse(os.path.exists(r.path("/etc/rc.d/S95dma-agent")), "disabled by pre-remove")
        wait_for("agent stopped", lambda: not r.agent_pids(), 40)



class OpkgTest(Common, RouterTest):
    NEW_DEFAULT = "/etc/config/dma-agent-opkg"

    def install(self, name):
        self.router.put(pkg("ipk-" + name), "/tmp/p.ipk")
        return self.router.sh("opkg install /tmp/p.ipk").stdout

    def upgrade(self, name):
        self.router.put(pkg("ipk-" + name), "/tmp/p.ipk")
        # The real upgrade path: no --force-reinstall (that is remove + install).
        out = self.router.sh("opkg install /tmp/p.ipk").stdout
        self.assertIn("Upgrading dma-agent", out)
        self.assertNotIn("Removing package dma-agent", out)


    def remove(self):
        self.router.sh("opkg remove dma-agent")

    def version(self):
        return self.router.sh("opkg list-installed dma-agent").stdout



class ApkTest(Common, RouterTest):
    NEW_DEFAULT = "/etc/config/dma-agent.apk-new"

    def install(self, name):
        self.router.put(pkg("apk-" + name), "/tmp/p.apk")
        return self.router.sh("apk add --no-network --allow-untrusted /tmp/p.apk").stdout

    def upgrade(self, name):
        self.router.put(pkg("apk-" + name), "/tmp/p.apk")
        out = self.router.sh("apk add --no-network --repositories-file /dev/null --allow-untrusted /tmp/p.apk").stdout
        self.assertIn("Upgrading dma-agent", out)


    def remove(self):
        self.router.sh("apk del dma-agent")

    def version(self):
        return self.router.sh("apk info -v dma-agent 2>/dev/null; apk list -I dma-agent 2>/dev/null").stdout


    def test_signed_feed(self):
        """From a signed index, without --allow-untrusted: install r1, then
        `apk upgrade` to r2; an index signed by another key is refused."""
        r = self.router
        r.sh("mkdir -p /feed")
        for f in os.listdir(os.path.join(PKGS, "feed")):
            r.put(os.path.join(PKGS, "feed", f), "/feed/" + f)
        r.put(os.path.join(PKGS, "dma-feed.pub.pem"), "/etc/apk/keys/dma-feed.pub.pem")
        r.sh("echo /feed/packages.adb > /etc/apk/repositories")
        r.sh("apk update")
        r.sh("apk add 'dma-agent=0.1.0-r1'")
        self.assertIn("0.1.0-r1", self.version())
        wait_for("agent started", r.agent_pid)
        r.sh("apk add dma-agent@ 2>/dev/null; apk upgrade 'dma-agent<99'; apk add 'dma-agent>0.1.0-r1'")
        self.assertIn("0.1.0-r2", self.version())
        # Without the key the feed is untrusted and nothing installs from it.
        r.sh("rm /etc/apk/keys/dma-feed.pub.pem")
        out = r.sh("apk update", check=False)
        self.assertIn("UNTRUSTED", (out.stdout + out.stderr).upper())
        out = r.sh("apk add 'dma-agent=0.1.0-r1'", check=False)
        self.assertNotEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("0.1.0-r2", self.version())
