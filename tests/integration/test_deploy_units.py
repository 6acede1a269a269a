"""Static checks of everything in deploy/: the units pass
`systemd-analyze verify`, carry every hardening option the operations
guide promises, agree with the defaults of common/settings.c and score
well in `systemd-analyze security`; the firewall rules parse; the shell
scripts parse (and pass shellcheck where it is installed); the Vagrantfile
parses (`ruby -c`; `vagrant validate` where vagrant is installed); every
program has a manual page and is packaged; docs/operations.md covers what
the issue asks. Fast: part of `make test`.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgdeploy  # noqa: E402
from mgdeploy import DEPLOY_DIR, SOURCE_DIR, Unit  # noqa: E402

UNITS = ("mgimapd", "mgsmtpd")
PROGRAMS = ("mgimapd", "mgsmtpd", "mgauthd", "mgadm", "mgqueue", "mgsendmail")
EXPOSURE_MAX = 3.0

# What every unit must say (docs/operations.md, "The services").
COMMON = {
    "Type": "notify",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service",
    "UMask": "0077",
    "KillMode": "mixed",
    "Restart": "on-failure",
}
EXPECT = {
    "mgimapd": {
        "User": "mgimap", "Group": "mgimap",
        "caps": {"CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"},
        "groups": {"mgsmtp", "mailgenic-tls"},
        "rw": ["/var/lib/mailgenic"],
        "runtime": "mailgenic/mda",
        "sockets": ("auth.socket", "lmtp.socket"),
    },
    "mgsmtpd": {
        "User": "mgsmtp", "Group": "mgsmtp",
        "caps": {"CAP_NET_BIND_SERVICE"},
        "groups": {"mailgenic-tls"},
        "rw": ["/var/spool/mailgenic"],
        "runtime": "mailgenic/mta",
        "sockets": ("mta.submit_socket", "mta.control_socket"),
    },
}


def have(tool):
    return shutil.which(tool) is not None


class Units(unittest.TestCase):
    def setUp(self):
        self.units = {name: Unit(os.path.join(DEPLOY_DIR, f"{name}.service")) for name in UNITS}

    def test_hardening(self):
        for name, unit in self.units.items():
            exp = EXPECT[name]
            with self.subTest(unit=name):
                for key, value in COMMON.items():
                    self.assertEqual(unit.get(key), value, f"{name}: {key}")
                self.assertEqual(unit.get("User"), exp["User"])
                self.assertEqual(unit.get("Group"), exp["Group"])
                self.assertEqual(set(unit.words("AmbientCapabilities")), exp["caps"])
                self.assertEqual(set(unit.words("CapabilityBoundingSet")), exp["caps"])
                self.assertEqual(set(unit.words("SupplementaryGroups")), exp["groups"])
                self.assertEqual(unit.words("ReadWritePaths"), exp["rw"])
                self.assertEqual(set(unit.words("RestrictAddressFamilies")),
                                 {"AF_UNIX", "AF_INET", "AF_INET6"})
                self.assertEqual(unit.words("RuntimeDirectory"), [exp["runtime"]])
                self.assertEqual(unit.get("ExecStart"),
                                 f"/usr/sbin/{name} -c /etc/mailgenic/mailgenic.conf")
                self.assertEqual(unit.get("ExecReload"), "/bin/kill -HUP $MAINPID")
                self.assertEqual(unit.get("WantedBy", section="Install"), "multi-user.target")
                # Nothing in the sandbox may widen it again.
                for key in ("PermissionsStartOnly", "RootDirectoryStartOnly", "ReadOnlyPaths",
                            "InaccessiblePaths", "PrivateUsers"):
                    self.assertIsNone(unit.get(key), f"{name}: {key}")
                for key, values in unit.sections["Service"].items():
                    for v in values:
                        self.assertFalse(v.startswith("+") or v.startswith("!"),
                                         f"{name}: {key}={v} runs with privileges")

    def test_mgsmtpd_does_not_need_mgimapd(self):
        unit = self.units["mgsmtpd"]
        for key in ("Requires", "BindsTo", "Requisite", "PartOf"):
            self.assertNotIn("mgimapd.service", unit.words(key, section="Unit"), key)

    def test_runtime_directories_hold_the_default_sockets(self):
        """The socket defaults of common/settings.c live in the units'
        runtime directories."""
        mgadm = os.path.join(mgdeploy.BIN_DIR, "mgadm")
        if not os.access(mgadm, os.X_OK):
            self.skipTest("mgadm is not built")
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as empty:
            dump = subprocess.run([mgadm, "-c", empty.name, "config", "dump"], capture_output=True,
                                  text=True, check=True).stdout
        values, section = {}, ""
        for line in dump.splitlines():
            if line.startswith("["):
                section = line.strip("[]")
            elif "=" in line:
                k, _, v = line.partition("=")
                values[f"{section}.{k.strip()}"] = v.strip().strip('"')
        for name, exp in EXPECT.items():
            for key in exp["sockets"]:
                self.assertEqual(os.path.dirname(values[key]), "/run/" + exp["runtime"], key)
        self.assertEqual(values["auth.socket_group"], "mgsmtp")
        self.assertEqual(values["lmtp.socket_group"], "mgsmtp")
        self.assertEqual(values["mda.user"], "mgimap")
        self.assertEqual(values["auth.user"], "mgauth")
        self.assertEqual(values["mta.user"], "mgsmtp")
        self.assertEqual(values["mda.mail_dir"], "/var/lib/mailgenic/mail")
        self.assertEqual(values["mta.queue_dir"], "/var/spool/mailgenic")

    def test_systemd_analyze_verify(self):
        if not have("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed")
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for name in UNITS:
                # verify wants ExecStart= to exist: a stand-in program.
                prog = os.path.join(tmp, name)
                with open(prog, "w") as f:
                    f.write("#!/bin/sh\n")
                os.chmod(prog, 0o755)
                with open(os.path.join(DEPLOY_DIR, f"{name}.service")) as f:
                    text = f.read().replace(f"/usr/sbin/{name}", prog)
                path = os.path.join(tmp, f"{name}.service")
                with open(path, "w") as f:
                    f.write(text)
                paths.append(path)
            r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + paths,
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stderr.strip(), "", r.stderr)
            for path in paths:
                r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", path],
                                   capture_output=True, text=True)
                line = [x for x in r.stdout.splitlines() if "Overall exposure level" in x]
                self.assertTrue(line, r.stdout + r.stderr)
                score = float(line[0].split(":")[1].split()[0])
                self.assertLessEqual(score, EXPOSURE_MAX, r.stdout)

    def test_firewall_rules(self):
        path = os.path.join(DEPLOY_DIR, "nftables.conf")
        with open(path) as f:
            text = f.read()
        self.assertIn("policy drop;", text)
        self.assertIn("tcp dport { 22, 25, 465, 993 } accept", text)
        self.assertEqual(re.findall(r"dport\s+(\S+)", text), ["546", "{"])
        if not have("nft") or not have("unshare"):
            self.skipTest("nft is not installed")
        # A check (-c) loads nothing; in a network namespace of its own
        # it cannot touch this host's firewall even so.
        r = subprocess.run(["unshare", "--net", "nft", "-c", "-f", path], capture_output=True, text=True)
        if r.returncode != 0 and ("Operation not permitted" in r.stderr or "unshare failed" in r.stderr):
            self.skipTest(f"no network namespace here: {r.stderr.strip()}")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_shell_scripts(self):
        scripts = [os.path.join(DEPLOY_DIR, p) for p in
                   ("provision.sh", "certbot-deploy-hook", "debian/postinst", "debian/prerm",
                    "debian/postrm")]
        for s in scripts:
            self.assertTrue(os.access(s, os.X_OK), f"{s} is not executable")
            r = subprocess.run(["sh", "-n", s], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"{s}: {r.stderr}")
        if have("shellcheck"):
            r = subprocess.run(["shellcheck", "-s", "sh"] + scripts, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout)

    def test_vagrantfile(self):
        path = os.path.join(SOURCE_DIR, "Vagrantfile")
        with open(path) as f:
            text = f.read()
        self.assertIn('config.vm.box = "debian/bookworm64"', text)
        self.assertIn("deploy/provision.sh", text)
        for port in (25, 465, 993):
            self.assertIn(str(port), text)
        if not have("ruby"):
            self.skipTest("ruby is not installed")
        r = subprocess.run(["ruby", "-c", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        if have("vagrant"):
            r = subprocess.run(["vagrant", "validate"], cwd=SOURCE_DIR, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        else:
            print("vagrant is not installed (not a Debian 12 package): ruby -c only", file=sys.stderr)

    def test_vagrant_cluster_ca(self):
        """The two-host layout's CA, made by the Vagrantfile's Ruby on the
        host, is one `mgadm ca issue` accepts and whose certificates
        verify (what provision.sh --ca does in each VM)."""
        if not have("ruby"):
            self.skipTest("ruby is not installed")
        mgadm = os.path.join(os.environ.get("MG_TEST_BIN_DIR", ""), "mgadm")
        if not os.access(mgadm, os.X_OK):
            self.skipTest("mgadm is not built")
        with open(os.path.join(SOURCE_DIR, "Vagrantfile")) as f:
            text = f.read()
        self.assertIn("MAILGENIC_LAYOUT", text)
        for needle in ('"--ca"', '"--address"', '"--peer"', '"mda"', '"mta"', "private_network"):
            self.assertIn(needle, text)
        start, stop = text.index("def mailgenic_cluster_ca"), text.index("# One VM:")
        with tempfile.TemporaryDirectory() as tmp:
            ca = os.path.join(tmp, "ca")
            script = ('require "fileutils"; require "openssl"\n' + text[start:stop] +
                      f"\nmailgenic_cluster_ca({ca!r})\n")
            r = subprocess.run(["ruby", "-e", script], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(os.stat(os.path.join(ca, "ca.key")).st_mode & 0o777, 0o600)
            env = dict(os.environ, MG_CA_DIR=ca)
            r = subprocess.run([mgadm, "ca", "issue", "imap.mailgenic.test", "192.168.56.11"],
                               env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-verify_ip",
                                "192.168.56.11", "-CAfile", os.path.join(ca, "ca.crt"),
                                os.path.join(ca, "imap.mailgenic.test.crt")],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_manual_pages_and_packaging(self):
        with open(os.path.join(SOURCE_DIR, "cmake", "package.cmake")) as f:
            cmake = f.read()
        for prog in PROGRAMS:
            page = os.path.join(DEPLOY_DIR, "man", f"{prog}.8")
            self.assertTrue(os.path.exists(page), page)
            self.assertIn(f"{prog}.8", cmake)
            self.assertRegex(cmake, rf"install\(TARGETS [^)]*\b{prog}\b")
        self.assertTrue(os.path.exists(os.path.join(DEPLOY_DIR, "man", "mailgenic.conf.5")))
        if have("groff"):
            for page in os.listdir(os.path.join(DEPLOY_DIR, "man")):
                r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z",
                                    os.path.join(DEPLOY_DIR, "man", page)], capture_output=True, text=True)
                self.assertEqual(r.stderr, "", page)

    def test_operations_guide(self):
        with open(os.path.join(SOURCE_DIR, "docs", "operations.md")) as f:
            text = f.read()
        for needle in ("make deb", "deploy/provision.sh", " MX ", "PTR", "CNAME", "v=spf1", "v=DMARC1",
                       "_imaps._tcp", "_submissions._tcp", "993", "465", "nftables", "certbot",
                       "renewal-hooks/deploy", "db_hotbackup", "journalctl -u", "mgqueue",
                       "systemctl reload", "Vagrant"):
            self.assertIn(needle, text)
        with open(os.path.join(SOURCE_DIR, "README.md")) as f:
            readme = f.read()
        self.assertIn("docs/operations.md", readme)


if __name__ == "__main__":
    unittest.main(verbosity=2)
