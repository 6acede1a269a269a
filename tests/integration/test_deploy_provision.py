"""deploy/provision.sh in a clean Debian 12 root (debootstrap, cached):
the first run installs the package and nftables, the rules file and the
enabled units; a second run changes nothing (a checksum listing of /etc,
the state directories, the programs and the units, and the package
status, compared); a rules file changed by hand is kept; roles other than
'all' are refused.

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
        for role, expect in (("mta", "two-host layout"), ("mda", "two-host layout"), ("both", "unknown role")):
            r = self.provision(role, check=False)
            self.assertEqual(r.returncode, 2, role)
            self.assertIn(expect, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
