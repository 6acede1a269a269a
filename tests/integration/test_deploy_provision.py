"""deploy/provision.sh in a clean Debian 12 root (debootstrap, cached):
the first run installs the package and nftables, the rules file and the
enabled units; a second run changes nothing (a checksum listing of /etc,
the state directories, the programs and the units, and the package
status, compared); a rules file changed by hand is kept; the roles of
the two-host layout (mta, mda: the daemon, the link certificate issued
from a cluster CA, the drop-in configuration, the firewall) and back.

Needs root, debootstrap and the package (`make test-deploy` builds it):
exits 77 (skipped) without them.
"""
import hashlib
import os
import shutil
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgdeploy  # noqa: E402
from mgdeploy import log  # noqa: E402

SCRIPT_DIR = "/opt/mailgenic-deploy"
WATCHED = ("/etc", "/var/lib/mailgenic", "/var/spool/mailgenic", "/usr/sbin", "/usr/lib/mailgenic",
           "/usr/lib/systemd/system", "/var/lib/mailgenic-provision")


class Provision(unittest.TestCase):
    root = None

    @classmethod
    def setUpClass(cls):
        mgdeploy.require_root_and_tools("ip")
        cls.deb = mgdeploy.require_deb()
        mgdeploy.enter_private_mounts()
        cls.root = mgdeploy.Root("provision")
        os.makedirs(cls.root.file(SCRIPT_DIR))
        for name in ("provision.sh", "nftables.conf"):
            shutil.copy(os.path.join(mgdeploy.DEPLOY_DIR, name), cls.root.file(f"{SCRIPT_DIR}/{name}"))
        cls.deb_in = cls.root.copy_in(cls.deb, "/tmp/" + os.path.basename(cls.deb))

    @classmethod
    def tearDownClass(cls):
        if cls.root is not None:
            cls.root.close()

    def provision(self, *args, check=True):
        # provision.sh runs apt-get itself: hold the download cache's lock.
        with mgdeploy._Lock(os.path.join(mgdeploy.CACHE_DIR, "archives.lock")):
            started = time.monotonic()
            r = self.root.chroot("/bin/sh", f"{SCRIPT_DIR}/provision.sh", *args, check=check)
            log(f"provision.sh {' '.join(args)}: exit {r.returncode} in {time.monotonic() - started:.1f} s")
            return r

    def snapshot(self):
        """Every file under WATCHED: type, mode, owner, content or target;
        and the package status."""
        lines = []
        for top in WATCHED:
            host_top = self.root.file(top)
            for dirpath, dirnames, filenames in os.walk(host_top):
                dirnames.sort()
                for name in [""] + sorted(filenames) + dirnames:
                    p = os.path.join(dirpath, name)
                    st = os.lstat(p)
                    rel = "/" + os.path.relpath(p, self.root.path)
                    what = f"{rel} {stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
                    if stat.S_ISLNK(st.st_mode):
                        what += " -> " + os.readlink(p)
                    elif stat.S_ISREG(st.st_mode):
                        with open(p, "rb") as f:
                            what += " " + hashlib.sha256(f.read()).hexdigest()
                    lines.append(what)
        status = self.root.chroot("dpkg-query", "-W", "-f=${Package} ${Version} ${Status}\n").stdout
        return sorted(set(lines)) + status.splitlines()

    def test_1_twice_is_once(self):
        first = self.provision("--deb", self.deb_in)
        self.assertIn("installing", first.stdout)
        # What the first run did.
        rules = self.root.file("/etc/nftables.conf")
        with open(rules) as f, open(os.path.join(mgdeploy.DEPLOY_DIR, "nftables.conf")) as g:
            self.assertEqual(f.read(), g.read())
        self.assertEqual(stat.S_IMODE(os.stat(rules).st_mode), 0o755)
        for unit in ("mgimapd.service", "mgsmtpd.service"):
            self.assertTrue(os.path.islink(self.root.file(f"/etc/systemd/system/multi-user.target.wants/{unit}")),
                            unit)
        self.assertTrue(os.path.islink(self.root.file("/etc/systemd/system/sysinit.target.wants/nftables.service")))
        self.assertIn("systemd is not running here", first.stdout)
        before = self.snapshot()
        second = self.provision("--deb", self.deb_in)
        self.assertIn("is installed", second.stdout)
        self.assertIn("/etc/nftables.conf is up to date", second.stdout)
        after = self.snapshot()
        if before != after:
            gone = [x for x in before if x not in after]
            new = [x for x in after if x not in before]
            self.fail("the second run changed things:\n- " + "\n- ".join(gone) + "\n+ " + "\n+ ".join(new))
        # The rules parse (a check only: nothing is loaded) in a network
        # namespace of our own.
        mgdeploy.enter_private_network()
        self.root.chroot("nft", "-c", "-f", "/etc/nftables.conf")

    def test_2_rules_updated_unless_changed_by_hand(self):
        rules = self.root.file("/etc/nftables.conf")
        record = self.root.file("/var/lib/mailgenic-provision/nftables.conf.sha256")
        with open(os.path.join(mgdeploy.DEPLOY_DIR, "nftables.conf")) as f:
            ours = f.read()
        # An older version that provision.sh wrote: replaced by the new one.
        old = ours.replace("tcp dport { 22, 25, 465, 993 }", "tcp dport { 22, 25, 993 }")
        with open(rules, "w") as f:
            f.write(old)
        with open(record, "w") as f:
            f.write(hashlib.sha256(old.encode()).hexdigest() + "  -\n")
        r = self.provision("--deb", self.deb_in)
        self.assertIn("installed /etc/nftables.conf", r.stdout)
        with open(rules) as f:
            self.assertEqual(f.read(), ours)
        # The administrator opens port 80 for certbot: kept.
        mine = ours.replace("tcp dport { 22, 25, 465, 993 }", "tcp dport { 22, 25, 80, 465, 993 }")
        self.assertNotEqual(mine, ours)
        with open(rules, "w") as f:
            f.write(mine)
        r = self.provision("--deb", self.deb_in)
        self.assertIn("was changed by hand: kept it", r.stdout)
        with open(rules) as f:
            self.assertEqual(f.read(), mine)

    def test_3_roles(self):
        # bad command lines change nothing
        for args, expect in ((["both"], "unknown role"),
                             (["mda"], "needs --ca DIR, --address ADDR and --peer ADDR"),
                             (["--ca", "/nonexistent", "--address", "10.0.0.2", "--peer",
                               "10.0.0.1", "mta"], "no /nonexistent/ca.crt")):
            r = self.provision(*args, check=False)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(expect, r.stderr)
        # the rules are ours again (test_2 left a hand-made version)
        rules = self.root.file("/etc/nftables.conf")
        record = self.root.file("/var/lib/mailgenic-provision/nftables.conf.sha256")
        with open(os.path.join(mgdeploy.DEPLOY_DIR, "nftables.conf")) as f:
            ours = f.read()
        with open(rules, "w") as f:
            f.write(ours)
        with open(record, "w") as f:
            f.write(hashlib.sha256(ours.encode()).hexdigest() + "  -\n")
        self.root.chroot("/bin/sh", "-c", "mgadm ca init 'Test cluster CA'",
                         env={"MG_CA_DIR": "/root/ca"})
        wants = "/etc/systemd/system/multi-user.target.wants"
        dropin = "/etc/mailgenic/mailgenic.conf.d/50-provision-role.conf"
        link = ["--deb", self.deb_in, "--ca", "/root/ca"]

        r = self.provision(*link, "--address", "10.0.0.2", "--peer", "10.0.0.1", "mda")
        self.assertIn("issued /etc/mailgenic/cluster/host.crt", r.stdout)
        text = self.root.read(dropin)
        self.assertIn("[lmtp]\nlisten = 10.0.0.2:24\n[auth]\nlisten = 10.0.0.2:8024\n", text)
        self.assertIn("cert_file = /etc/mailgenic/cluster/host.crt", text)
        key = os.stat(self.root.file("/etc/mailgenic/cluster/host.key"))
        self.assertEqual(stat.S_IMODE(key.st_mode), 0o640)
        self.assertEqual(key.st_gid, self.root.gid("mailgenic-tls"))
        nft = self.root.read("/etc/nftables.conf")
        self.assertIn("tcp dport { 22, 993 } accept", nft)
        self.assertIn("ip saddr 10.0.0.1 tcp dport { 24, 8024 } accept", nft)
        self.assertTrue(os.path.islink(self.root.file(f"{wants}/mgimapd.service")))
        self.assertFalse(os.path.lexists(self.root.file(f"{wants}/mgsmtpd.service")))
        # the daemons accept the result, and the certificate is the CA's
        self.root.chroot("mgimapd", "--check-config")
        self.root.chroot("openssl", "verify", "-CAfile", "/etc/mailgenic/cluster/ca.crt",
                         "-verify_ip", "10.0.0.2", "/etc/mailgenic/cluster/host.crt")
        again = self.provision(*link, "--address", "10.0.0.2", "--peer", "10.0.0.1", "mda")
        self.assertIn("host.crt is up to date", again.stdout)
        self.assertIn(f"{dropin} is up to date", again.stdout)
        self.assertIn("/etc/nftables.conf is up to date", again.stdout)

        r = self.provision(*link, "--address", "fd00::1", "--peer", "fd00::2", "mta")
        self.assertIn("issued /etc/mailgenic/cluster/host.crt", r.stdout)  # new address
        text = self.root.read(dropin)
        self.assertIn("[mta]\nlmtp = [fd00::2]:24\nauth = [fd00::2]:8024\n", text)
        nft = self.root.read("/etc/nftables.conf")
        self.assertIn("tcp dport { 22, 25, 465 } accept", nft)
        self.assertNotIn("8024", nft)
        self.assertTrue(os.path.islink(self.root.file(f"{wants}/mgsmtpd.service")))
        self.assertFalse(os.path.lexists(self.root.file(f"{wants}/mgimapd.service")))
        self.root.chroot("mgsmtpd", "--check-config")

        r = self.provision("--deb", self.deb_in)
        self.assertIn(f"removed {dropin}", r.stdout)
        self.assertEqual(self.root.read("/etc/nftables.conf"), ours)
        for unit in ("mgimapd.service", "mgsmtpd.service"):
            self.assertTrue(os.path.islink(self.root.file(f"{wants}/{unit}")), unit)


if __name__ == "__main__":
    unittest.main(verbosity=2)
