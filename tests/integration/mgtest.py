"""Shared harness for the integration tests of mgimapd (IMAP, LMTP, store).

A `Server` is one mgimapd (and the mgauthd it starts) in a temporary
state directory: free loopback ports picked at run time, a configuration
written the way deploy/dev.sh writes one (every process as the invoking
user), a self-signed certificate, a domain and users made with mgadm.
The daemons' stderr goes to a log file, which is scanned for sanitizer
reports when the server stops: any report fails the test.

`MgTestCase` gives each test its own server (`self.server`, started in
setUp with the class's `conf`/`users`), always killed in tearDown, also
when the test failed.

Clients:
  server.imap(user)         imaplib.IMAP4_SSL, logged in (or not); also
                            server.imap_connect(user)
  server.raw(user)          RawIMAP: exact bytes, untagged responses in
                            the order they came, literals of both kinds
  server.lmtp_deliver(...)  smtplib.LMTP over the UNIX socket

Everything is Python's standard library; run with /usr/bin/python3.
"""
import errno
import imaplib
import os
import re
import secrets
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

BIN_DIR = os.environ.get("MG_TEST_BIN_DIR", os.path.join(os.getcwd(), "bin"))
SOURCE_DIR = os.environ.get("MG_TEST_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
MGIMAPD = os.path.join(BIN_DIR, "mgimapd")
MGADM = os.path.join(BIN_DIR, "mgadm")

DOMAIN = "example.test"
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                      "ERROR: ThreadSanitizer", "panic at ")
START_TIMEOUT = 60.0

# Sanitizer settings when run outside ctest (ctest sets the same).
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")


def require_binaries(*names):
    """Exit 77 (skipped) when a program is missing: the tests need a build."""
    for name in ("mgimapd", "mgauthd", "mgadm") + names:
        path = os.path.join(BIN_DIR, name)
        if not os.access(path, os.X_OK):
            print(f"{path} is missing: build first", file=sys.stderr)
            raise SystemExit(77)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def crlf(text):
    """LF (or mixed) line ends to CRLF; str or bytes in, bytes out."""
    if isinstance(text, str):
        text = text.encode()
    return re.sub(rb"\r?\n", b"\r\n", text)


def make_message(subject="test", body="Hello.\r\n", frm="sender@remote.test",
                 to="alice@example.test", message_id=None, extra_headers=()):
    """A small RFC 5322 message with CRLF line ends, as bytes."""
    if message_id is None:
        message_id = f"<{secrets.token_hex(8)}@remote.test>"
    lines = [f"From: {frm}", f"To: {to}", f"Subject: {subject}",
             "Date: Mon, 7 Feb 1994 21:52:25 -0800", f"Message-ID: {message_id}"]
    lines += list(extra_headers)
    head = "\r\n".join(lines) + "\r\n\r\n"
    if isinstance(body, str):
        body = body.encode()
    return head.encode() + crlf(body)


class ServerError(Exception):
    pass


class LogFile:
    """The output of a program the harness runs: the file at log_path,
    open in log_file while the program runs; log_name says whose it is in
    messages."""
    log_name = "daemon"

    def _close_log(self):
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def check_log(self):
        """Raises ServerError when a sanitizer reported in the log."""
        text = self.log()
        for pattern in SANITIZER_PATTERNS:
            if pattern in text:
                i = text.index(pattern)
                raise ServerError(f"'{pattern}' in the {self.log_name} log:\n"
                                  f"{text[max(0, i - 2000):i + 6000]}")


class Server(LogFile):
    """One mgimapd (with its mgauthd) in a temporary directory."""

    def __init__(self, tmp, conf=None, users=None, log_level="info"):
        self.tmp = tmp
        self.conf_extra = conf or {}
        self.log_level = log_level
        self.state = os.path.join(tmp, "state")
        os.makedirs(self.state, exist_ok=True)
        self.conf_path = os.path.join(self.state, "mailgenic.conf")
        self.cert = os.path.join(self.state, "tls", "cert.pem")
        self.key = os.path.join(self.state, "tls", "key.pem")
        self.mail_dir = os.path.join(self.state, "mail")
        self.index_dir = os.path.join(self.state, "index")
        self.userdb = os.path.join(self.state, "userdb")
        self.lmtp_socket = os.path.join(self.state, "lmtp.sock")
        self.auth_socket = os.path.join(self.state, "auth.sock")
        self.log_path = os.path.join(self.state, "mgimapd.log")
        self.port = free_port()
        self.proc = None
        self.log_file = None
        self.passwords = {}
        self.write_conf()
        self.make_cert()
        self.mgadm("domain", "add", DOMAIN)
        for spec in (users if users is not None else ["alice", "bob"]):
            if isinstance(spec, str):
                spec = (spec, ())
            name, opts = spec
            self.add_user(name, *opts)

    # ---- setup ----

    def write_conf(self):
        sections = {
            "tls": {"cert_file": self.cert, "key_file": self.key},
            "userdb": {"path": self.userdb},
            "auth": {"socket": self.auth_socket, "socket_group": "", "user": "", "group": "",
                     "cache_ttl": "0"},
            "mda": {"user": "", "group": "", "mail_dir": self.mail_dir,
                    "index_dir": self.index_dir},
            "imap": {"listen": f"127.0.0.1:{self.port}", "auth_failure_delay": "0"},
            "lmtp": {"socket": self.lmtp_socket, "socket_group": ""},
        }
        for key, value in self.conf_extra.items():
            section, name = key.split(".", 1)
            sections.setdefault(section, {})[name] = value
        lines = ["# written by tests/integration/mgtest.py",
                 "hostname = mail.example.test", f"log_level = {self.log_level}"]
        for section, kv in sections.items():
            lines.append(f"[{section}]")
            for k, v in kv.items():
                lines.append(f"{k} = {v}")
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def make_cert(self):
        os.makedirs(os.path.dirname(self.cert), exist_ok=True)
        if os.path.exists(self.cert):
            return
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", self.key, "-out", self.cert],
                       check=True, capture_output=True, timeout=60)

    def mgadm(self, *args, input=None, check=True):
        r = subprocess.run([MGADM, "-c", self.conf_path] + list(args), input=input,
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise ServerError(f"mgadm {' '.join(args)}: {r.stderr.strip()}")
        return r

    def add_user(self, name, *opts, password=None):
        address = name if "@" in name else f"{name}@{DOMAIN}"
        if password is None:
            password = "pw-" + secrets.token_hex(12)
        self.mgadm("user", "add", address, "--password-stdin", *opts, input=password + "\n")
        self.passwords[address] = password
        return address

    def address(self, user):
        return user if "@" in user else f"{user}@{DOMAIN}"

    def password(self, user):
        return self.passwords[self.address(user)]

    def maildir(self, user, folder=""):
        """The Maildir folder directory of a user ("" is INBOX; "Sent" is .Sent)."""
        local, domain = self.address(user).split("@")
        root = os.path.join(self.mail_dir, domain, local)
        return os.path.join(root, "." + folder) if folder else root

    # ---- process ----

    def start(self):
        # The port was free when picked, but another program may have taken
        # it since: pick another one then.
        for attempt in range(5):
            try:
                return self._start()
            except ServerError as e:
                if attempt == 4 or "already in use" not in str(e).lower():
                    raise
                self.port = free_port()
                self.write_conf()

    def _start(self):
        if self.proc is not None:
            raise ServerError("already running")
        for path in (self.lmtp_socket,):
            if os.path.exists(path):
                os.unlink(path)
        self.log_file = open(self.log_path, "ab")
        self.log_file.write(b"==== start ====\n")
        self.log_file.flush()
        log_start = self.log_file.tell()
        # A new session: kill9() reaches mgauthd (and its child) through
        # the process group.
        self.proc = subprocess.Popen([MGIMAPD, "-c", self.conf_path], stdin=subprocess.DEVNULL,
                                     stdout=self.log_file, stderr=self.log_file,
                                     start_new_session=True)
        self.pgid = self.proc.pid
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                try:   # mgauthd may have been started already
                    os.killpg(self.pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._close_log()
                raise ServerError(f"mgimapd exited with {code} at start:\n{self.log_tail()}")
            if self._ready(log_start):
                return
            if time.monotonic() > deadline:
                self.kill9()
                raise ServerError(f"mgimapd not ready after {START_TIMEOUT}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def _ready(self, log_start):
        # Listening sockets accept before the daemon runs its loop: wait for
        # its "ready" line (signal handlers are in place by then).
        with open(self.log_path, "rb") as f:
            f.seek(log_start)
            if b"mgimapd: ready" not in f.read():
                return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(self.lmtp_socket)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(self.auth_socket)
            return True
        except OSError:
            return False

    def group_pids(self):
        """Processes still in the server's process group."""
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.pgid and fields[0] != "Z":
                    pids.append(int(name))
            except (OSError, IndexError, ValueError):
                continue
        return pids

    def stop(self, check=True):
        """SIGTERM and wait: exit status 0, no process of the group left,
        no sanitizer report."""
        if self.proc is None:
            return
        proc = self.proc
        self.proc = None
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.pgid, signal.SIGKILL)
            proc.wait()
            raise ServerError(f"mgimapd did not stop on SIGTERM:\n{self.log_tail()}")
        # mgauthd stops after its parent; give it a moment.
        deadline = time.monotonic() + 10
        while self.group_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.group_pids()
        if left:
            os.killpg(self.pgid, signal.SIGKILL)
        self._close_log()
        if check:
            if code != 0:
                raise ServerError(f"mgimapd exited with {code}:\n{self.log_tail()}")
            if left:
                raise ServerError(f"processes left after stop: {left}")
            self.check_log()

    def kill9(self):
        """SIGKILL to mgimapd, mgauthd and its child at once."""
        if self.proc is None:
            return
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
        deadline = time.monotonic() + 10
        while self.group_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._close_log()

    def restart(self):
        self.stop()
        self.start()

    def wait_log(self, regex, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(regex, self.log(), re.M)
            if m:
                return m
            time.sleep(0.05)
        return None

    # ---- clients ----

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False
        return ctx

    def imap(self, user="alice", login=True, timeout=30):
        """imaplib client; logged in as user unless login is False."""
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=self.ssl_context(),
                              timeout=timeout)
        if login:
            c.login(self.address(user), self.password(user))
        return c

    imap_connect = imap

    def raw(self, user="alice", login=True, timeout=30):
        c = RawIMAP(self, timeout=timeout)
        if login:
            c.login(self.address(user), self.password(user))
        return c

    def lmtp(self):
        c = smtplib.LMTP(self.lmtp_socket, timeout=60)
        code, _ = c.ehlo("test.client")
        if code != 250:
            raise ServerError(f"LHLO: {code}")
        return c

    def lmtp_deliver(self, rcpts, msg, sender="sender@remote.test"):
        """Delivers msg (bytes) to rcpts in one LMTP transaction; returns
        {recipient: (code, text)} of those refused at RCPT or after DATA
        (empty when all took it). smtplib reads one reply after DATA; LMTP
        sends one per accepted recipient (RFC 2033 4.2), read here."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        rcpts = [self.address(r) for r in rcpts]
        refused = {}
        with self.lmtp() as c:
            code, text = c.mail(sender)
            if code != 250:
                raise ServerError(f"MAIL FROM: {code} {text!r}")
            accepted = []
            for r in rcpts:
                code, text = c.rcpt(r)
                if code in (250, 251):
                    accepted.append(r)
                else:
                    refused[r] = (code, text)
            if not accepted:
                c.rset()
                return refused
            replies = [c.data(msg)]
            replies += [c.getreply() for _ in accepted[1:]]
            for r, (code, text) in zip(accepted, replies):
                if code != 250:
                    refused[r] = (code, text)
        return refused


class RawSocket:
    """A connected client socket read as CRLF lines of bytes, what came
    after the last line kept in self.buf: the base of the raw protocol
    clients (RawIMAP here, RawSMTP in mgsystem)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def readline(self):
        """The next line, without its CRLF."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def is_closed(self, timeout=5):
        """Whether the server closed the connection (reads what is left)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)


class RawIMAP(RawSocket):
    """A plain IMAP client over TLS that shows the protocol as it is:
    responses are bytes lines with their literals inlined, in the order
    they came."""

    def __init__(self, server, timeout=30, tls_ctx=None):
        self.server = server
        ctx = tls_ctx or server.ssl_context()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        super().__init__(ctx.wrap_socket(sock, server_hostname="localhost"))
        self.tag_n = 0
        self.greeting = self.read_response()

    def read_response(self):
        """One response line with its literals: b'* 1 FETCH (BODY[] {3}\\r\\nabc)'."""
        line = self.readline()
        out = line
        while True:
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return out
            out += b"\r\n" + self.read_exact(int(m.group(1)))
            line = self.readline()
            out += line

    def next_tag(self):
        self.tag_n += 1
        return f"T{self.tag_n}"

    def command(self, text, tag=None):
        """Sends 'tag text' and reads until the tagged answer; returns
        (untagged lines, tagged line). Continuation requests ('+ ...')
        are kept among the untagged lines."""
        tag = tag or self.next_tag()
        if isinstance(text, str):
            text = text.encode()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.read_until_tagged(tag)

    def read_until_tagged(self, tag):
        untagged = []
        t = tag.encode() + b" "
        while True:
            r = self.read_response()
            if r.startswith(t):
                return untagged, r
            untagged.append(r)

    def ok(self, text):
        untagged, tagged = self.command(text)
        if not re.match(rb"^\S+ OK", tagged):
            raise AssertionError(f"{short(text)}: {tagged!r} (untagged {short(untagged)})")
        return untagged, tagged

    def login(self, user, password):
        return self.ok(f"LOGIN {quote(user)} {quote(password)}")

    def append(self, mailbox, message, flags=None, date=None, nonsync=False):
        """APPEND with a literal; returns the tagged line."""
        tag = self.next_tag()
        args = quote(mailbox)
        if flags is not None:
            args += f" ({flags})"
        if date is not None:
            args += f' "{date}"'
        plus = "+" if nonsync else ""
        self.send(f"{tag} APPEND {args} {{{len(message)}{plus}}}\r\n")
        untagged = []
        if not nonsync:
            r = self.read_response()
            if not r.startswith(b"+"):
                untagged.append(r)
                return untagged, r
        self.send(message + b"\r\n")
        u, tagged = self.read_until_tagged(tag)
        return untagged + u, tagged


def short(x, n=300):
    """A long value cut for a failure message."""
    r = repr(x)
    return r if len(r) <= n else r[:n] + f"... ({len(r)} chars)"


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- parsing IMAP data (for tests that look inside responses) ----

def parse_sexp(data):
    """Parses an IMAP data list (bytes) into Python: lists, bytes for
    strings and atoms, None for NIL."""
    pos = 0
    n = len(data)

    def skip():
        nonlocal pos
        while pos < n and data[pos:pos + 1] == b" ":
            pos += 1

    def value():
        nonlocal pos
        skip()
        c = data[pos:pos + 1]
        if c == b"(":
            pos += 1
            items = []
            while True:
                skip()
                if data[pos:pos + 1] == b")":
                    pos += 1
                    return items
                items.append(value())
        if c == b'"':
            pos += 1
            out = bytearray()
            while data[pos:pos + 1] != b'"':
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                out += data[pos:pos + 1]
                pos += 1
            pos += 1
            return bytes(out)
        if c == b"{":
            end = data.index(b"}", pos)
            length = int(data[pos + 1:end].rstrip(b"+"))
            pos = end + 3
            s = data[pos:pos + length]
            pos += length
            return s
        start = pos
        depth = 0
        while pos < n:
            ch = data[pos:pos + 1]
            if ch == b"[":
                depth += 1
            elif ch == b"]":
                depth -= 1
            elif depth == 0 and ch in (b" ", b")", b"("):
                break
            pos += 1
        atom = data[start:pos]
        return None if atom.upper() == b"NIL" else atom

    items = []
    while True:
        skip()
        if pos >= n:
            return items
        items.append(value())


def fetch_items(line):
    """b'* 3 FETCH (UID 7 FLAGS (\\Seen))' -> (3, {b'UID': b'7', b'FLAGS': [...]})."""
    m = re.match(rb"^\* (\d+) FETCH \(", line)
    if not m:
        raise ValueError(f"not a FETCH response: {line[:200]!r}")
    body = line[m.end() - 1:]
    (lst,) = parse_sexp(body)[:1]
    d = {}
    for i in range(0, len(lst) - 1, 2):
        d[lst[i].upper() if isinstance(lst[i], bytes) else lst[i]] = lst[i + 1]
    return int(m.group(1)), d


class MgTestCase(unittest.TestCase):
    """Each test gets a started server in self.server."""
    conf = None
    users = None
    log_level = "info"
    start_server = True

    tmp_prefix = "mgtest."

    def make_server(self):
        """The server under test, in self.tmp (not started)."""
        return Server(self.tmp, conf=self.conf, users=self.users, log_level=self.log_level)

    def stop_server(self):
        """The orderly stop of tearDown; raises ServerError on trouble."""
        if self.server.proc is not None:
            self.server.stop()
        else:
            self.server.check_log()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=self.tmp_prefix)
        # Cleanups run even when setUp fails half-way (tearDown does not):
        # no daemon outlives its test.
        self.addCleanup(self._remove_tmp)
        self.clients = []
        self.server = self.make_server()
        self.addCleanup(self.server.kill9)
        if self.start_server:
            self.server.start()

    def _remove_tmp(self):
        if os.environ.get("MG_TEST_KEEP"):
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def tearDown(self):
        """An orderly stop: exit status 0, no sanitizer report in the log."""
        for c in self.clients:
            try:
                if isinstance(c, imaplib.IMAP4):
                    c.shutdown()
                else:
                    c.close()
            except Exception:
                pass
        try:
            self.stop_server()
        except ServerError as e:
            self.fail(str(e))

    # ---- helpers ----

    def imap(self, user="alice", login=True):
        c = self.server.imap(user, login=login)
        self.clients.append(c)
        return c

    def raw(self, user="alice", login=True, timeout=30):
        c = self.server.raw(user, login=login, timeout=timeout)
        self.clients.append(c)
        return c

    def deliver(self, rcpts, msg, sender="sender@remote.test"):
        refused = self.server.lmtp_deliver(rcpts, msg, sender)
        self.assertEqual(refused, {}, "delivery refused")

    def assertOK(self, result, what=""):
        typ, data = result
        self.assertEqual(typ, "OK", f"{what}: {data!r}")
        return data


def main():
    require_binaries()
    unittest.main(verbosity=2)
