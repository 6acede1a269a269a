#!/usr/bin/python3
"""mgauthd on its own: the protocol of docs/auth-protocol.md over its UNIX
socket, password checks (right, wrong, unknown, disabled), the cache and
its invalidation by a password change, recipient resolution, malformed
input, and the supervisor restarting a killed serving process."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.environ.get("MG_TEST_BIN_DIR", "build-test/bin")


def enc(v):
    out = []
    for ch in v.encode():
        if ch < 0x20 or ch == 0x7F or ch == ord("%"):
            out.append("%%%02X" % ch)
        else:
            out.append(chr(ch))
    return "".join(out)


class AuthService(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for prog in ("mgauthd", "mgadm"):
            if not os.path.exists(os.path.join(BIN, prog)):
                print(f"{prog} not built", file=sys.stderr)
                sys.exit(77)
        cls.tmp = tempfile.mkdtemp(prefix="mgauthd-test.")
        cls.sock = os.path.join(cls.tmp, "auth.sock")
        cls.conf = os.path.join(cls.tmp, "mailgenic.conf")
        with open(cls.conf, "w") as f:
            f.write(f"hostname = mx.auth.test\n[userdb]\npath = {cls.tmp}/userdb\n"
                    f"[auth]\nsocket = {cls.sock}\nsocket_group =\nuser =\ngroup =\ncache_ttl = 1m\n")
        cls.mgadm("domain", "add", "auth.test")
        cls.mgadm("user", "add", "alice@auth.test", "--password-stdin", input="alice-pw\n")
        cls.mgadm("user", "add", "bob@auth.test", "--password-stdin", input="bob-pw\n")
        cls.mgadm("alias", "add", "team@auth.test", "alice@auth.test", "bob@auth.test", "ext@remote.test")
        cls.log = open(os.path.join(cls.tmp, "mgauthd.log"), "w+")
        cls.proc = subprocess.Popen([os.path.join(BIN, "mgauthd"), "-c", cls.conf],
                                    stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not os.path.exists(cls.sock):
            if time.time() > deadline:
                raise RuntimeError("mgauthd did not start")
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        try:
            rc = cls.proc.wait(10)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            rc = -1
        cls.log.seek(0)
        text = cls.log.read()
        cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert rc == 0, f"mgauthd exit {rc}\n{text}"
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert bad not in text, text
        assert "alice-pw" not in text and "bob-pw" not in text, "a password reached the log"

    @classmethod
    def mgadm(cls, *args, input=None):
        r = subprocess.run([os.path.join(BIN, "mgadm"), "-c", cls.conf, *args], input=input,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.sock)
        f = s.makefile("rwb")
        return s, f

    def ask(self, f, *fields):
        f.write(("\t".join(enc(x) for x in fields) + "\n").encode())
        f.flush()
        return f.readline().decode().rstrip("\n").split("\t")

    def session(self):
        s, f = self.connect()
        self.assertEqual(self.ask(f, "HELLO", "1", "test"), ["HELLO", "1", "mgauthd"])
        return s, f

    def test_verify(self):
        s, f = self.session()
        self.assertEqual(self.ask(f, "VERIFY", "1", "imap", "127.0.0.1", "", "alice@auth.test", "alice-pw"),
                         ["OK", "1", "alice@auth.test", "0"])
        # Case-insensitive user names answer with the canonical form.
        self.assertEqual(self.ask(f, "VERIFY", "2", "imap", "127.0.0.1", "", "Alice@Auth.TEST", "alice-pw")[:3],
                         ["OK", "2", "alice@auth.test"])
        self.assertEqual(self.ask(f, "VERIFY", "3", "imap", "127.0.0.1", "", "alice@auth.test", "wrong"),
                         ["FAIL", "3", "password"])
        self.assertEqual(self.ask(f, "VERIFY", "4", "imap", "127.0.0.1", "", "nobody@auth.test", "x"),
                         ["FAIL", "4", "unknown"])
        # Proxy logins are refused.
        self.assertEqual(self.ask(f, "VERIFY", "5", "imap", "127.0.0.1", "bob@auth.test", "alice@auth.test",
                                  "alice-pw"), ["FAIL", "5", "authzid"])
        # Passwords with TABs, % and control bytes travel escaped.
        self.mgadm("user", "add", "odd@auth.test", "--password-stdin", input="a\tb%c\x01d\n")
        self.assertEqual(self.ask(f, "VERIFY", "6", "smtp", "::1", "", "odd@auth.test", "a\tb%c\x01d")[0], "OK")
        s.close()

    def test_cache_and_invalidation(self):
        s, f = self.session()
        t0 = time.monotonic()
        self.assertEqual(self.ask(f, "VERIFY", "1", "imap", "", "", "bob@auth.test", "bob-pw")[0], "OK")
        first = time.monotonic() - t0
        t0 = time.monotonic()
        for i in range(20):
            self.assertEqual(self.ask(f, "VERIFY", str(10 + i), "imap", "", "", "bob@auth.test", "bob-pw")[0], "OK")
        cached = (time.monotonic() - t0) / 20
        # A cached check costs no yescrypt (about 25 ms here).
        self.assertLess(cached, first / 3, f"first {first:.4f}s, cached {cached:.4f}s")
        # A new password takes effect at once: the old one fails although
        # it is in the cache.
        self.mgadm("user", "passwd", "bob@auth.test", "--password-stdin", input="bob-new\n")
        self.assertEqual(self.ask(f, "VERIFY", "40", "imap", "", "", "bob@auth.test", "bob-pw"),
                         ["FAIL", "40", "password"])
        self.assertEqual(self.ask(f, "VERIFY", "41", "imap", "", "", "bob@auth.test", "bob-new")[0], "OK")
        # Disabling takes effect at once too.
        self.mgadm("user", "disable", "bob@auth.test")
        self.assertEqual(self.ask(f, "VERIFY", "42", "imap", "", "", "bob@auth.test", "bob-new"),
                         ["FAIL", "42", "disabled"])
        self.mgadm("user", "enable", "bob@auth.test")
        self.mgadm("user", "passwd", "bob@auth.test", "--password-stdin", input="bob-pw\n")
        s.close()

    def test_resolve_and_domain(self):
        s, f = self.session()
        self.assertEqual(self.ask(f, "RESOLVE", "1", "Alice+Lists@AUTH.test"), ["OK", "1", "L", "alice@auth.test", "1", "0"])
        r = self.ask(f, "RESOLVE", "2", "team@auth.test")
        self.assertEqual(r[:2], ["OK", "2"])
        groups = [tuple(r[i:i + 4]) for i in range(2, len(r), 4)]
        self.assertEqual(sorted(groups), sorted([("L", "alice@auth.test", "1", "0"), ("L", "bob@auth.test", "1", "0"),
                                                 ("R", "ext@remote.test", "0", "0")]))
        self.assertEqual(self.ask(f, "RESOLVE", "3", "nobody@auth.test"), ["FAIL", "3", "notfound"])
        self.assertEqual(self.ask(f, "RESOLVE", "4", "x@elsewhere.test"), ["FAIL", "4", "notlocal"])
        self.assertEqual(self.ask(f, "DOMAIN", "5", "AUTH.test"), ["OK", "5", "local"])
        self.assertEqual(self.ask(f, "DOMAIN", "6", "elsewhere.test"), ["OK", "6", "remote"])
        s.close()

    def test_pipelined_answers(self):
        s, f = self.session()
        lines = "".join(f"VERIFY\t{i}\timap\t\t\talice@auth.test\talice-pw\n" for i in range(50))
        lines += "".join(f"RESOLVE\t{100 + i}\talice@auth.test\n" for i in range(50))
        f.write(lines.encode())
        f.flush()
        seen = set()
        for _ in range(100):
            r = f.readline().decode().rstrip("\n").split("\t")
            self.assertEqual(r[0], "OK")
            seen.add(int(r[1]))
        self.assertEqual(seen, set(range(50)) | set(range(100, 150)))
        s.close()

    def test_malformed_input(self):
        for line in (b"VERIFY\t1\n", b"NOHELLO\n", b"HELLO\t2\tx\n", b"HELLO\t1\tx\nBOGUS\t1\n",
                     b"HELLO\t1\tx\nRESOLVE\t1\t%zz\n", b"HELLO\t1\tx\n" + b"A" * 20000 + b"\n"):
            s, f = self.connect()
            s.sendall(line)
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                self.fail(f"connection not closed after {line[:30]!r}")
            self.assertIn(b"ERROR\t", data, line[:30])
            s.close()
        # The service still serves.
        s, f = self.session()
        self.assertEqual(self.ask(f, "DOMAIN", "1", "auth.test"), ["OK", "1", "local"])
        s.close()

    def test_supervisor_restarts_the_server(self):
        # The serving child is the supervisor's only child.
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        self.assertEqual(len(children), 1, children)
        os.kill(int(children[0]), signal.SIGKILL)
        deadline = time.time() + 10
        while True:
            try:
                s, f = self.session()
                self.assertEqual(self.ask(f, "DOMAIN", "1", "auth.test"), ["OK", "1", "local"])
                s.close()
                break
            except (OSError, AssertionError, IndexError):
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        after = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        self.assertEqual(len(after), 1)
        self.assertNotEqual(after, children)


if __name__ == "__main__":
    unittest.main(verbosity=2)
