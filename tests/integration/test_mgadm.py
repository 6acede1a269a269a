#!/usr/bin/python3
"""mgadm against a temporary user directory and configuration.

Runs the built program ($MG_TEST_BIN_DIR/mgadm) the way an operator would:
domains, users, aliases, passwords on standard input, auth test, resolve,
errors that must change nothing, --help at every level, the configuration
file, privilege switching (as root), concurrent runs, and that no password
ever reaches a file of the directory.
"""
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

BIN_DIR = os.environ.get("MG_TEST_BIN_DIR", os.path.join(os.getcwd(), "bin"))
MGADM = os.path.join(BIN_DIR, "mgadm")

COMMANDS = [
    ("domain", "add"), ("domain", "del"), ("domain", "list"),
    ("user", "add"), ("user", "del"), ("user", "list"), ("user", "passwd"),
    ("user", "enable"), ("user", "disable"), ("user", "quota"),
    ("alias", "add"), ("alias", "del"), ("alias", "list"),
    ("auth", "test"), ("resolve", None),
]


class MgadmTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mgadm-test.")
        self.state = os.path.join(self.tmp, "state")
        os.mkdir(self.state)
        self.userdb = os.path.join(self.state, "userdb")
        self.conf = os.path.join(self.tmp, "mailgenic.conf")
        self.write_conf()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_conf(self, extra=""):
        with open(self.conf, "w") as f:
            f.write("# test configuration\n"
                    "hostname = mx.example.test  # the daemons' keys are checked too\n"
                    "[imap]\n"
                    "listen = \"127.0.0.1:993\"  # quoted\n"
                    "[userdb]\n"
                    f"path = {self.userdb}\n" + extra)

    def mgadm(self, *args, input=None, env=None, conf=True, **kwargs):
        cmd = [MGADM] + (["-c", self.conf] if conf else []) + list(args)
        full_env = dict(os.environ)
        full_env.pop("MG_USERDB_PATH", None)
        if env:
            full_env.update(env)
        # No controlling terminal: a password prompt must fail, not hang.
        return subprocess.run(cmd, input=input, capture_output=True, text=True, env=full_env,
                              timeout=60, start_new_session=True, **kwargs)

    def ok(self, *args, input=None, env=None):
        r = self.mgadm(*args, input=input, env=env)
        self.assertEqual(r.returncode, 0, f"mgadm {' '.join(args)}: {r.stderr}")
        self.assertEqual(r.stderr, "", f"mgadm {' '.join(args)}")
        return r.stdout

    def fails(self, code, *args, input=None, contains=None):
        """The command exits with code and one line "mgadm: ..." on stderr."""
        r = self.mgadm(*args, input=input)
        self.assertEqual(r.returncode, code,
                         f"mgadm {' '.join(args)}: rc {r.returncode}, stderr {r.stderr!r}")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"mgadm {' '.join(args)}: stderr {r.stderr!r}")
        self.assertTrue(lines[0].startswith("mgadm: "), lines[0])
        self.assertEqual(r.stdout, "", f"mgadm {' '.join(args)}")
        if contains is not None:
            self.assertIn(contains, lines[0])
        return lines[0]

    def add_user(self, address, password, *extra):
        self.ok("user", "add", address, "--password-stdin", *extra, input=password + "\n")

    def auth(self, address, password):
        r = self.mgadm("auth", "test", address, input=password + "\n")
        self.assertIn(r.returncode, (0, 1), r.stderr)
        expected = "auth: ok\n" if r.returncode == 0 else "auth: failed\n"
        self.assertEqual(r.stdout, expected)
        self.assertEqual(r.stderr, "")
        return r.returncode == 0

    def snapshot(self):
        return (self.ok("domain", "list"), self.ok("user", "list"), self.ok("alias", "list"))

    def resolve(self, address):
        return self.ok("resolve", address).splitlines()


class TestHelpAndUsage(MgadmTestCase):
    def test_help_at_every_level(self):
        for args in (["--help"], ["-h"]):
            r = self.mgadm(*args)
            self.assertEqual(r.returncode, 0)
            self.assertTrue(r.stdout.startswith("usage: mgadm"), r.stdout)
            self.assertEqual(r.stderr, "")
            for obj, verb in COMMANDS:
                self.assertIn(f"{obj} {verb}" if verb else obj, r.stdout)
        for obj in ("domain", "user", "alias", "auth", "resolve"):
            r = self.mgadm(obj, "--help")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith(f"usage: mgadm [-c FILE] {obj}"), r.stdout)
            self.assertEqual(r.stderr, "")
        for obj, verb in COMMANDS:
            args = [obj, verb, "--help"] if verb else [obj, "--help"]
            r = self.mgadm(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith("usage: mgadm"), r.stdout)
            self.assertEqual(r.stderr, "")
        # Help anywhere after the verb, even with other arguments.
        r = self.mgadm("user", "add", "x@y.test", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--password-stdin", r.stdout)
        self.assertIn("first line of standard input", r.stdout)
        # Help never touches the directory.
        self.assertFalse(os.path.exists(self.userdb))

    def test_version(self):
        r = self.mgadm("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^mgadm \(Mailgenic\) \d+\.\d+")

    def test_usage_errors(self):
        cases = [
            [],
            ["frobnicate"],
            ["user"],
            ["user", "frob"],
            ["user", "add"],
            ["user", "add", "a@b.test", "extra"],
            ["user", "add", "a@b.test", "--quota"],
            ["user", "add", "a@b.test", "--quota", "12Q"],
            ["user", "add", "a@b.test", "--quota", "-1"],
            ["user", "add", "a@b.test", "--bogus"],
            ["user", "del", "a@b.test", "--password-stdin"],
            ["user", "quota", "a@b.test"],
            ["user", "quota", "a@b.test", "lots"],
            ["user", "quota", "a@b.test", "99999999999999999999"],
            ["domain", "add"],
            ["domain", "list", "extra"],
            ["alias", "add", "a@b.test"],
            ["auth", "test"],
            ["resolve"],
            ["resolve", "a@b.test", "c@d.test"],
            ["-x", "domain", "list"],
        ]
        for args in cases:
            with self.subTest(args=args):
                self.fails(2, *args)
        r = self.mgadm("-c")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.splitlines()), 1)
        self.assertFalse(os.path.exists(self.userdb))


class TestDirectory(MgadmTestCase):
    def test_lifecycle(self):
        # No directory yet: reading fails, the first domain add creates it.
        self.fails(1, "domain", "list", contains=self.userdb)
        self.fails(1, "user", "add", "a@example.test", "--password-stdin", input="pw\n")
        self.assertFalse(os.path.exists(self.userdb))
        self.ok("domain", "add", "Example.TEST")
        st = os.stat(self.userdb)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        for name in os.listdir(self.userdb):
            mode = stat.S_IMODE(os.stat(os.path.join(self.userdb, name)).st_mode)
            self.assertEqual(mode, 0o600, name)
        self.assertEqual(self.ok("domain", "list"), "example.test\n")
        self.ok("domain", "add", "other.test")
        self.assertEqual(self.ok("domain", "list"), "example.test\nother.test\n")

        self.add_user("Alice@Example.test", "alice pw", "--quota", "2G")
        self.add_user("bob@example.test", "bob pw")
        self.ok("user", "add", "carol@other.test", "--quota=512M", "--password-stdin",
                input="carol pw\r\n")
        out = self.ok("user", "list")
        lines = out.splitlines()
        self.assertEqual([l.split("\t")[0] for l in lines],
                         ["Alice@example.test", "bob@example.test", "carol@other.test"])
        iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
        self.assertRegex(lines[0], rf"^Alice@example.test\t2G\tenabled\t{iso}$")
        self.assertRegex(lines[1], rf"^bob@example.test\tunlimited\tenabled\t{iso}$")
        self.assertRegex(lines[2], rf"^carol@other.test\t512M\tenabled\t{iso}$")
        self.assertEqual(self.ok("user", "list", "OTHER.test").split("\t")[0], "carol@other.test")
        self.fails(1, "user", "list", "nowhere.test", contains="unknown domain")

        # Passwords: right, wrong, case of the address, CR LF stripped.
        self.assertTrue(self.auth("alice@example.test", "alice pw"))
        self.assertTrue(self.auth("ALICE@EXAMPLE.TEST", "alice pw"))
        self.assertFalse(self.auth("alice@example.test", "alice pW"))
        self.assertFalse(self.auth("alice@example.test", "bob pw"))
        self.assertFalse(self.auth("nobody@example.test", "alice pw"))
        self.assertFalse(self.auth("alice@nowhere.test", "alice pw"))
        self.assertTrue(self.auth("carol@other.test", "carol pw"))
        r = self.mgadm("auth", "test", "carol@other.test", input="carol pw\r\nignored\n")
        self.assertEqual((r.returncode, r.stdout), (0, "auth: ok\n"))

        # Disable, enable, new password, quota.
        self.ok("user", "disable", "alice@example.test")
        self.assertFalse(self.auth("alice@example.test", "alice pw"))
        self.assertIn("\tdisabled\t", self.ok("user", "list", "example.test").splitlines()[0])
        self.ok("user", "enable", "alice@example.test")
        self.assertTrue(self.auth("alice@example.test", "alice pw"))
        self.ok("user", "passwd", "alice@example.test", "--password-stdin", input="new pw\n")
        self.assertFalse(self.auth("alice@example.test", "alice pw"))
        self.assertTrue(self.auth("alice@example.test", "new pw"))
        self.ok("user", "quota", "bob@example.test", "1536K")
        self.assertIn("\t1536K\t", self.ok("user", "list", "example.test").splitlines()[1])
        self.ok("user", "quota", "bob@example.test", "0")
        self.assertIn("\tunlimited\t", self.ok("user", "list", "example.test").splitlines()[1])

        # Without --password-stdin and without a terminal: refused.
        self.fails(1, "user", "add", "dave@example.test", contains="--password-stdin")
        self.fails(1, "user", "passwd", "bob@example.test", contains="terminal")

        # Deleting.
        self.fails(1, "domain", "del", "other.test", contains="still has users")
        self.ok("user", "del", "CAROL@other.test")
        self.ok("domain", "del", "other.test")
        self.assertEqual(self.ok("domain", "list"), "example.test\n")
        self.assertFalse(self.auth("carol@other.test", "carol pw"))

        # Everything survives (each run is its own process anyway).
        self.assertEqual(len(self.ok("user", "list").splitlines()), 2)

    def test_errors_change_nothing(self):
        self.ok("domain", "add", "example.test")
        self.add_user("alice@example.test", "pw")
        self.ok("alias", "add", "sales@example.test", "alice@example.test")
        before = self.snapshot()
        cases = [
            (["user", "add", "not-an-address", "--password-stdin"], "pw\n", "malformed address"),
            (["user", "add", "a b@example.test", "--password-stdin"], "pw\n", "malformed address"),
            (["user", "add", "x@unknown.test", "--password-stdin"], "pw\n", "unknown domain"),
            (["user", "add", "ALICE@example.test", "--password-stdin"], "pw\n", "user exists"),
            (["user", "add", "new@example.test", "--password-stdin"], "\n", "empty password"),
            (["user", "add", "new@example.test", "--password-stdin"], "", "empty password"),
            (["user", "add", "new@example.test", "--password-stdin"], "x" * 2000 + "\n",
             "too long"),
            (["user", "del", "nobody@example.test"], None, "unknown user"),
            (["user", "del", "nobody"], None, "malformed address"),
            (["user", "passwd", "nobody@example.test", "--password-stdin"], "pw\n", "unknown user"),
            (["user", "disable", "nobody@example.test"], None, "unknown user"),
            (["user", "quota", "nobody@example.test", "1G"], None, "unknown user"),
            (["domain", "add", "EXAMPLE.test"], None, "domain exists"),
            (["domain", "add", "bad..domain"], None, "malformed domain"),
            (["domain", "del", "unknown.test"], None, "unknown domain"),
            (["domain", "del", "example.test"], None, "still has users"),
            (["alias", "add", "sales@example.test", "x@y.test"], None, "alias exists"),
            (["alias", "add", "a@unknown.test", "x@y.test"], None, "unknown domain"),
            (["alias", "add", "b@example.test", "x@y.test", "broken"], None, "malformed target"),
            (["alias", "add", "@", "x@y.test"], None, "malformed"),
            (["alias", "del", "nobody@example.test"], None, "unknown alias"),
            (["resolve", "nobody@example.test"], None, "unknown address"),
            (["resolve", "someone@elsewhere.test"], None, "not a local domain"),
            (["resolve", "garbage"], None, "malformed address"),
            (["auth", "test", "not-an-address"], "pw\n", "malformed address"),
        ]
        for args, stdin, reason in cases:
            with self.subTest(args=args):
                self.fails(1, *args, input=stdin, contains=reason)
                self.assertEqual(self.snapshot(), before)
        self.assertTrue(self.auth("alice@example.test", "pw"))

    def test_resolve(self):
        self.write_conf("recipient_delimiter = +-\n")
        self.ok("domain", "add", "ex.test")
        self.ok("domain", "add", "other.test")
        for user in ("alice@ex.test", "bob@ex.test", "carol@ex.test", "info@other.test"):
            self.add_user(user, "pw")
        self.ok("user", "disable", "carol@ex.test")
        self.ok("alias", "add", "sales@ex.test", "alice@ex.test", "boss@remote.example")
        self.ok("alias", "add", "team@ex.test", "sales@ex.test", "carol@ex.test", "alice@ex.test")
        self.ok("alias", "add", "alice+vip@ex.test", "bob@ex.test")
        self.ok("alias", "add", "loop1@ex.test", "loop2@ex.test")
        self.ok("alias", "add", "loop2@ex.test", "loop1@ex.test", "bob@ex.test")
        self.ok("alias", "add", "@other.test", "alice@ex.test")

        self.assertEqual(self.resolve("alice@ex.test"), ["alice@ex.test"])
        self.assertEqual(self.resolve("ALICE@EX.TEST"), ["alice@ex.test"])
        self.assertEqual(self.resolve("alice+news@ex.test"), ["alice@ex.test"])
        self.assertEqual(self.resolve("alice-news@ex.test"), ["alice@ex.test"])
        self.assertEqual(self.resolve("alice+vip@ex.test"), ["bob@ex.test"])
        self.assertEqual(self.resolve("sales@ex.test"),
                         ["alice@ex.test", "boss@remote.example (remote)"])
        self.assertEqual(sorted(self.resolve("team@ex.test")),
                         ["alice@ex.test", "boss@remote.example (remote)",
                          "carol@ex.test (disabled)"])
        self.assertEqual(self.resolve("loop1@ex.test"), ["bob@ex.test"])
        self.assertEqual(self.resolve("anyone@other.test"), ["alice@ex.test"])
        self.assertEqual(self.resolve("info@other.test"), ["info@other.test"])
        self.assertEqual(self.resolve("info+x@other.test"), ["info@other.test"])
        self.assertEqual(self.ok("alias", "list", "other.test"), "@other.test\talice@ex.test\n")
        self.assertIn("team@ex.test\tsales@ex.test carol@ex.test alice@ex.test\n",
                      self.ok("alias", "list"))
        self.fails(1, "resolve", "nobody@ex.test", contains="unknown address: nobody@ex.test")
        self.fails(1, "resolve", "x@remote.example", contains="not a local domain")
        # The catch-all goes, the tagged address of a missing user fails.
        self.ok("alias", "del", "@other.test")
        self.fails(1, "resolve", "anyone@other.test", contains="unknown address")
        self.fails(1, "resolve", "nobody+tag@ex.test", contains="unknown address")
        # Sub-addressing off.
        self.write_conf("recipient_delimiter =\n")
        self.fails(1, "resolve", "alice+news@ex.test", contains="unknown address")

    def test_configuration(self):
        self.fails(1, "-c", os.path.join(self.tmp, "missing.conf"), "domain", "list",
                   contains="missing.conf")
        # MG_USERDB_PATH overrides the configuration.
        other = os.path.join(self.state, "other-userdb")
        r = self.mgadm("domain", "add", "env.test", env={"MG_USERDB_PATH": other})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isdir(other))
        self.assertFalse(os.path.exists(self.userdb))
        r = self.mgadm("domain", "list", env={"MG_USERDB_PATH": other})
        self.assertEqual(r.stdout, "env.test\n")
        # A quoted path with a comment after it.
        with open(self.conf, "w") as f:
            f.write(f'[userdb]\npath = "{other}"   # quoted\n')
        self.assertEqual(self.ok("domain", "list"), "env.test\n")
        # Malformed configuration: file and line in the one-line message.
        with open(self.conf, "w") as f:
            f.write("[userdb]\nthis line is wrong\n")
        line = self.fails(1, "domain", "list")
        self.assertIn(f"{self.conf}:2:", line)
        # The whole file is checked as the daemons check it.
        with open(self.conf, "w") as f:
            f.write(f"[userdb]\npath = {other}\n[imap]\nno_such_key = 1\n")
        line = self.fails(1, "domain", "list")
        self.assertIn(f"{self.conf}:4: unknown key 'no_such_key' in [imap]", line)
        r = self.mgadm("config", "check")
        self.assertEqual(r.returncode, 1)
        with open(self.conf, "w") as f:
            f.write(f"[userdb]\npath = {other}\n")
        r = self.mgadm("config", "check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("valid", r.stdout)
        r = self.mgadm("config", "dump")
        self.assertIn(f"path = {other}", r.stdout)

    def test_concurrent_runs(self):
        """mgadm is safe while other processes use the directory."""
        self.ok("domain", "add", "ex.test")
        procs = []
        for i in range(8):
            cmd = [MGADM, "-c", self.conf, "user", "add", f"user{i}@ex.test", "--password-stdin"]
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            procs.append(p)
        for i, p in enumerate(procs):
            out, err = p.communicate(f"password {i}\n", timeout=120)
            self.assertEqual(p.returncode, 0, err)
        self.assertEqual(len(self.ok("user", "list").splitlines()), 8)
        for i in range(8):
            self.assertTrue(self.auth(f"user{i}@ex.test", f"password {i}"))

    def test_not_in_the_directory_while_waiting_for_a_password(self):
        """A person at the prompt (or a Ctrl-C there) must not hold the
        directory open: a process dying inside it makes the next one run
        recovery."""
        self.ok("domain", "add", "ex.test")
        p = subprocess.Popen([MGADM, "-c", self.conf, "user", "add", "a@ex.test",
                              "--password-stdin"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            waiting = False
            for _ in range(200):  # until it blocks in read(0, ...)
                try:
                    with open(f"/proc/{p.pid}/syscall") as f:
                        fields = f.read().split()
                except OSError:
                    self.skipTest("no /proc/PID/syscall")
                if fields[:2] == ["0", "0x0"]:
                    waiting = True
                    break
                time.sleep(0.05)
            self.assertTrue(waiting, "mgadm never waited for the password")
            fd_dir = f"/proc/{p.pid}/fd"
            targets = [os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)]
            self.assertFalse([t for t in targets if t.startswith(self.userdb)], targets)
            with open(os.path.join(self.userdb, "__db.register")) as f:
                self.assertNotIn(str(p.pid), f.read())
            out, err = p.communicate("pw\n", timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        self.assertTrue(self.auth("a@ex.test", "pw"))

    def test_password_never_stored(self):
        first = "pw-" + secrets.token_hex(16)
        second = "pw-" + secrets.token_hex(16)
        self.ok("domain", "add", "ex.test")
        self.add_user("alice@ex.test", first)
        self.assertTrue(self.auth("alice@ex.test", first))
        self.ok("user", "passwd", "alice@ex.test", "--password-stdin", input=second + "\n")
        self.assertTrue(self.auth("alice@ex.test", second))
        self.assertFalse(self.auth("alice@ex.test", first))
        names = []
        for root, _, files in os.walk(self.state):
            for name in files:
                path = os.path.join(root, name)
                names.append(name)
                with open(path, "rb") as f:
                    data = f.read()
                for pw in (first, second):
                    self.assertNotIn(pw.encode(), data, f"password found in {path}")
        # The walk did cover the databases and the transaction log.
        self.assertIn("users.db", names)
        self.assertTrue(any(n.startswith("log.") for n in names), names)

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_switches_to_the_owner(self):
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        self.ok("domain", "add", "ex.test")
        # Hand the directory to another user, as the package does for the
        # auth service; root's mgadm must not leave root-owned files behind.
        os.chmod(self.tmp, 0o711)
        os.chmod(self.state, 0o711)
        for root, dirs, files in os.walk(self.userdb):
            for name in dirs + files:
                os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
        os.chown(self.userdb, nobody.pw_uid, nobody.pw_gid)
        # Without its region files (as after a reboot with them on tmpfs,
        # or a db_recover) the next open creates them anew: as nobody.
        for name in os.listdir(self.userdb):
            if name.startswith("__db."):
                os.unlink(os.path.join(self.userdb, name))
        self.add_user("alice@ex.test", "pw")
        for i in range(30):  # enough writes for new files to appear, if any
            self.ok("user", "quota", "alice@ex.test", f"{i + 1}M")
        self.assertTrue(self.auth("alice@ex.test", "pw"))
        for name in os.listdir(self.userdb):
            st = os.stat(os.path.join(self.userdb, name))
            self.assertEqual((st.st_uid, st.st_gid), (nobody.pw_uid, nobody.pw_gid), name)
        # A directory the owner cannot reach: the switch happens, then the
        # open fails as it would for that user, with one line.
        os.chmod(self.state, 0o700)
        self.fails(1, "domain", "list")


if __name__ == "__main__":
    if not os.access(MGADM, os.X_OK):
        print(f"test_mgadm: {MGADM} is missing: build it first")
        raise SystemExit(1)
    unittest.main(verbosity=2)
