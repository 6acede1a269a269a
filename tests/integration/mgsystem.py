"""Harness for tests of the whole system: mgimapd (with the mgauthd it
starts) and mgsmtpd, in one temporary state directory.

`System` extends mgtest.Server (which runs mgimapd) with mgsmtpd: the
queue, the local submission socket and the control socket live in the
state directory, SMTP ([smtp] listen) and submission ([submission]
listen) on free loopback ports, every process as the invoking user. Each
daemon can be stopped, killed and restarted on its own; both logs are
scanned for sanitizer reports.

With own_auth=True the harness also runs a second auth service (mgauthd on
its own socket, same user directory) for mgsmtpd alone, as when the MDA
is on another host. Without it mgsmtpd asks mgimapd's mgauthd, which goes
away with mgimapd: then mail for local users is refused with 4xx while
mgimapd is down. Tests of "the MDA is down, mail waits in the queue" use
own_auth.

`SystemTestCase` gives each test its own started system in self.server.

Clients:
  server.submit(user, rcpts, msg)     port 465: SMTP_SSL, AUTH, MAIL...DATA;
                                      returns the queue ID from the 250
  server.mx_send(rcpts, msg)          port 25 (starttls=True for STARTTLS)
  server.submission(user) / server.mx()   connected smtplib clients
  server.raw_smtp(kind)               RawSMTP: exact bytes (BDAT, pipelining)
  server.mgqueue(*args)               mgqueue -c ... (CompletedProcess)
  server.mgsendmail(*args, input=b"") mgsendmail -C ...
  server.wait_delivered(user, n)      polls the Maildir until n messages
  server.fetch_all(user)              every INBOX message's BODY[] over IMAPS
"""
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mgtest  # noqa: E402
from mgtest import (BIN_DIR, DOMAIN, SANITIZER_PATTERNS, START_TIMEOUT,  # noqa: E402,F401
                    ServerError, crlf, free_port, make_message)

MGSMTPD = os.path.join(BIN_DIR, "mgsmtpd")
MGAUTHD = os.path.join(BIN_DIR, "mgauthd")
MGQUEUE = os.path.join(BIN_DIR, "mgqueue")
MGSENDMAIL = os.path.join(BIN_DIR, "mgsendmail")
HOSTNAME = "mail.example.test"

QUEUED_RE = re.compile(r"queued as ([0-9A-Z]{16})")


def listen_port():
    """A free loopback port below the kernel's ephemeral range, so that
    the test's own client connections cannot take it before the daemon
    binds it (mgtest.free_port() picks from that range)."""
    import random
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(100):
        port = random.randrange(10000, max(low, 10001))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    return free_port()


def require_binaries(*names):
    mgtest.require_binaries("mgsmtpd", "mgqueue", "mgsendmail", *names)


def queue_id(reply):
    """The queue ID in a '250 2.0.0 Ok: queued as ID' reply text."""
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    m = QUEUED_RE.search(reply)
    if not m:
        raise AssertionError(f"no queue ID in {reply!r}")
    return m.group(1)


class Daemon(mgtest.LogFile):
    """One program run by the harness, its output in a log file."""

    def __init__(self, name, argv, log_path):
        self.name = name
        self.log_name = name
        self.argv = argv
        self.log_path = log_path
        self.proc = None
        self.pgid = None
        self.log_file = None
        self.log_start = 0

    def start(self, ready):
        if self.proc is not None:
            raise ServerError(f"{self.name} already running")
        self.log_file = open(self.log_path, "ab")
        self.log_file.write(f"==== start {self.name} ====\n".encode())
        self.log_file.flush()
        self.log_start = self.log_file.tell()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file, start_new_session=True)
        self.pgid = self.proc.pid
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                self._close_log()
                raise ServerError(f"{self.name} exited with {code} at start:\n{self.log_tail()}")
            if ready(self.log_since_start()):
                return
            if time.monotonic() > deadline:
                self.kill9()
                raise ServerError(f"{self.name} not ready after {START_TIMEOUT}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check=True):
        """SIGTERM; returns the exit code (and raises on trouble when check)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.pgid, signal.SIGKILL)
            proc.wait()
            self._close_log()
            raise ServerError(f"{self.name} did not stop on SIGTERM:\n{self.log_tail()}")
        self._close_log()
        if check and code != 0:
            raise ServerError(f"{self.name} exited with {code}:\n{self.log_tail()}")
        return code

    def kill9(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
        self._close_log()

    def log_since_start(self):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


def _can_connect(family, address):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(address)
        return True
    except OSError:
        return False


class System(mgtest.Server):
    """mgimapd (mgtest.Server) plus mgsmtpd, optionally with an auth
    service of its own."""

    def __init__(self, tmp, conf=None, users=None, log_level="info", own_auth=False):
        state = os.path.join(tmp, "state")
        self.smtp_port = listen_port()
        self.submission_port = listen_port()
        self.queue_dir = os.path.join(state, "spool")
        self.submit_socket = os.path.join(state, "submit.sock")
        self.control_socket = os.path.join(state, "mgsmtpd.ctl")
        self.own_auth = own_auth
        self.mta_auth_socket = os.path.join(state, "auth-mta.sock")
        self.mta_auth_conf = os.path.join(state, "mailgenic-auth-mta.conf")
        defaults = {
            "mta.user": "", "mta.group": "",
            "mta.queue_dir": self.queue_dir,
            "mta.submit_socket": self.submit_socket,
            "mta.control_socket": self.control_socket,
            "smtp.listen": f"127.0.0.1:{self.smtp_port}",
            "submission.listen": f"127.0.0.1:{self.submission_port}",
            "submission.auth_failure_delay": "0",
            # Remote mail goes to a closed port on loopback: it stays
            # queued (deferred) instead of reaching out to the world.
            "relay.relayhost": "127.0.0.1:9",
        }
        if own_auth:
            defaults["mta.auth"] = self.mta_auth_socket
        defaults.update(conf or {})
        self.smtpd = Daemon("mgsmtpd", [MGSMTPD, "-c", os.path.join(state, "mailgenic.conf")],
                            os.path.join(state, "mgsmtpd.log"))
        self.authd = Daemon("mgauthd", [MGAUTHD, "-c", self.mta_auth_conf],
                            os.path.join(state, "mgauthd-mta.log"))
        super().__init__(tmp, conf=defaults, users=users, log_level=log_level)

    # ---- configuration ----

    def write_conf(self):
        super().write_conf()
        if self.own_auth:
            # The same file but for the socket the second service binds.
            with open(self.conf_path) as f:
                text = f.read()
            text = text.replace(f"socket = {self.auth_socket}\n", f"socket = {self.mta_auth_socket}\n")
            with open(self.mta_auth_conf, "w") as f:
                f.write(text)

    def reconfigure(self, **kv):
        """Changes keys ('smtp.max_errors': ... as section__key=value) and
        rewrites the files; restart a daemon for it to see them."""
        for key, value in kv.items():
            self.conf_extra[key if "." in key else key.replace("__", ".", 1)] = value
        self.write_conf()

    # ---- processes ----

    def start(self):
        if self.own_auth and self.authd.proc is None:
            self.start_authd()
        if self.proc is None:
            self.start_imapd()
        if self.smtpd.proc is None:
            self.start_smtpd()

    def stop(self, check=True):
        errors = []
        for stop in (self.stop_smtpd, self.stop_imapd, self.stop_authd):
            try:
                stop(check=check)
            except ServerError as e:
                errors.append(str(e))
        if errors and check:
            raise ServerError("\n".join(errors))
        if check:
            self.check_log()

    def kill9(self):
        self.kill9_smtpd()
        self.kill9_imapd()
        self.authd.kill9()

    def restart(self):
        self.stop()
        self.start()

    def start_imapd(self):
        mgtest.Server.start(self)

    def stop_imapd(self, check=True):
        mgtest.Server.stop(self, check=check)

    def kill9_imapd(self):
        mgtest.Server.kill9(self)

    def restart_imapd(self):
        self.stop_imapd()
        self.start_imapd()

    def start_authd(self):
        if os.path.exists(self.mta_auth_socket):
            os.unlink(self.mta_auth_socket)
        self.authd.start(lambda log: _can_connect(socket.AF_UNIX, self.mta_auth_socket))

    def stop_authd(self, check=True):
        self.authd.stop(check=check)
        # mgauthd's serving child follows its parent.
        deadline = time.monotonic() + 10
        while self.authd.pgid is not None and self._group_alive(self.authd.pgid):
            if time.monotonic() > deadline:
                os.killpg(self.authd.pgid, signal.SIGKILL)
                break
            time.sleep(0.05)

    @staticmethod
    def _group_alive(pgid):
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False

    def _smtpd_ready(self, log):
        # "ready" comes after every listener started. No probe connection
        # to the TCP ports: it would count against max_connections_per_ip
        # until the daemon has seen it go.
        return "mgsmtpd: ready" in log and _can_connect(socket.AF_UNIX, self.control_socket)

    def start_smtpd(self):
        for attempt in range(3):
            try:
                self.smtpd.start(self._smtpd_ready)
                return
            except ServerError as e:
                # Someone took a port between the choice and the bind.
                if "address already in use" not in str(e) or attempt == 2:
                    raise
            self.smtp_port = listen_port()
            self.submission_port = listen_port()
            self.reconfigure(**{"smtp.listen": f"127.0.0.1:{self.smtp_port}",
                                "submission.listen": f"127.0.0.1:{self.submission_port}"})

    def stop_smtpd(self, check=True):
        code = self.smtpd.stop(check=check)
        if check and code is not None:
            self.smtpd.check_log()
        return code

    def kill9_smtpd(self):
        self.smtpd.kill9()

    def restart_smtpd(self):
        self.stop_smtpd()
        self.start_smtpd()

    def check_log(self):
        mgtest.Server.check_log(self)
        self.smtpd.check_log()
        self.authd.check_log()

    def smtpd_log(self):
        return self.smtpd.log()

    def wait_smtpd_log(self, regex, timeout=10.0, since=0):
        """Waits for regex in mgsmtpd's log (from offset since)."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(regex, self.smtpd.log()[since:], re.M)
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    # ---- SMTP clients ----

    def client_context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False
        return ctx

    def submission(self, user=None, password=None, timeout=30):
        """smtplib.SMTP_SSL to port 465, EHLO done, logged in as user
        (unless None)."""
        c = smtplib.SMTP_SSL("127.0.0.1", self.submission_port, context=self.client_context(),
                             timeout=timeout, local_hostname="client.example.test")
        c.ehlo()
        if user is not None:
            c.login(self.address(user), password if password is not None else self.password(user))
        return c

    def mx(self, starttls=False, timeout=30, helo="mx.remote.test"):
        """smtplib.SMTP to port 25, EHLO done (and STARTTLS and EHLO again)."""
        c = smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=timeout, local_hostname=helo)
        c.ehlo()
        if starttls:
            c.starttls(context=self.client_context())
            c.ehlo()
        return c

    @staticmethod
    def transaction(c, sender, rcpts, msg, mail_options=(), rcpt_options=()):
        """MAIL, RCPTs, DATA on a connected client; returns the queue ID.
        A refusal raises smtplib.SMTPResponseException (code, text)."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        code, text = c.mail(sender, list(mail_options))
        if code != 250:
            c.rset()
            raise smtplib.SMTPResponseException(code, text)
        for r in rcpts:
            code, text = c.rcpt(r, list(rcpt_options))
            if code not in (250, 251):
                c.rset()
                raise smtplib.SMTPResponseException(code, text)
        code, text = c.data(msg)
        if code != 250:
            raise smtplib.SMTPResponseException(code, text)
        return queue_id(text)

    def submit(self, user, rcpts, msg, sender=None, mail_options=(), rcpt_options=()):
        """Submits msg (bytes) as user over port 465; returns the queue ID."""
        with self.submission(user) as c:
            return self.transaction(c, sender if sender is not None else self.address(user),
                                    [self.address(r) for r in _as_list(rcpts)], msg,
                                    mail_options, rcpt_options)

    def mx_send(self, rcpts, msg, sender="sender@remote.test", starttls=False, mail_options=(),
                rcpt_options=()):
        """Sends msg over port 25 (with STARTTLS if asked); returns the queue ID."""
        with self.mx(starttls=starttls) as c:
            return self.transaction(c, sender, [self.address(r) for r in _as_list(rcpts)], msg,
                                    mail_options, rcpt_options)

    def raw_smtp(self, kind="smtp", timeout=30):
        return RawSMTP(self, kind, timeout=timeout)

    # ---- programs ----

    def mgqueue(self, *args, check=False, timeout=60):
        return subprocess.run([MGQUEUE, "-c", self.conf_path] + list(args), capture_output=True,
                              text=True, timeout=timeout, check=check)

    def mgsendmail(self, *args, input=b"", timeout=60):
        if isinstance(input, str):
            input = input.encode()
        return subprocess.run([MGSENDMAIL, "-C", self.conf_path] + list(args), input=input,
                              capture_output=True, timeout=timeout)

    def queue_files(self):
        """IDs of the messages in the spool (msg/)."""
        try:
            return sorted(n for n in os.listdir(os.path.join(self.queue_dir, "msg"))
                          if not n.startswith("."))
        except FileNotFoundError:
            return []

    def wait_queue_empty(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while self.queue_files():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # ---- mailboxes ----

    def maildir_count(self, user, folder=""):
        """Messages in a Maildir folder (new/ and cur/), without IMAP."""
        root = self.maildir(user, folder)
        n = 0
        for sub in ("new", "cur"):
            try:
                n += sum(1 for name in os.listdir(os.path.join(root, sub)) if not name.startswith("."))
            except FileNotFoundError:
                pass
        return n

    def wait_delivered(self, user, count, timeout=15.0, folder=""):
        """Waits until user's folder holds at least count messages; returns
        the count (which is less than asked on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.maildir_count(user, folder)
            if n >= count or time.monotonic() > deadline:
                return n
            time.sleep(0.05)

    def fetch_all(self, user, what="BODY.PEEK[]"):
        """Every INBOX message of user over IMAPS: a list of bytes, in UID order."""
        c = self.raw(user)
        try:
            c.ok("SELECT INBOX")
            untagged, _ = c.ok(f"UID FETCH 1:* ({what})")
        finally:
            c.close()
        out = []
        for line in untagged:
            if re.match(rb"^\* \d+ FETCH", line):
                _, items = mgtest.fetch_items(line)
                key = what.replace(".PEEK", "").upper().encode()
                out.append(items.get(key, b""))
        return out


def _as_list(x):
    return [x] if isinstance(x, str) else list(x)


class RawSMTP(mgtest.RawSocket):
    """SMTP over a plain socket (or TLS for submission): exact bytes in and
    out, replies as (code, [lines])."""

    def __init__(self, system, kind="smtp", timeout=30):
        self.system = system
        port = system.smtp_port if kind == "smtp" else system.submission_port
        if kind == "local":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(system.submit_socket)
        else:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if kind == "submission":
            sock = system.client_context().wrap_socket(sock, server_hostname="localhost")
        super().__init__(sock)
        self.greeting = self.reply()

    def reply(self):
        """One reply: (code, [text lines])."""
        lines = []
        while True:
            line = self.readline()
            if len(line) < 3 or not line[:3].isdigit():
                raise AssertionError(f"bad reply line {line!r}")
            lines.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def cmd(self, text):
        """Sends one command line and reads one reply."""
        self.send(text.encode() + b"\r\n" if isinstance(text, str) else text + b"\r\n")
        return self.reply()

    def expect(self, text, code):
        got = self.cmd(text)
        if got[0] != code:
            raise AssertionError(f"{text!r}: expected {code}, got {got!r}")
        return got

    def ehlo(self, name="raw.client.test"):
        return self.expect(f"EHLO {name}", 250)

    def login(self, user):
        import base64
        address = self.system.address(user)
        token = base64.b64encode(f"\0{address}\0{self.system.password(user)}".encode()).decode()
        return self.expect(f"AUTH PLAIN {token}", 235)


class SystemTestCase(mgtest.MgTestCase):
    """Each test gets a started System in self.server (both daemons)."""
    own_auth = False

    tmp_prefix = "mgsystem."

    def make_server(self):
        return System(self.tmp, conf=self.conf, users=self.users, log_level=self.log_level,
                      own_auth=self.own_auth)

    def stop_server(self):
        # Both daemons, whichever still run, and every log checked.
        self.server.stop()

    def raw_smtp(self, kind="smtp", timeout=30):
        c = self.server.raw_smtp(kind, timeout=timeout)
        self.clients.append(c)
        return c

    def assertRefused(self, fn, code, enhanced=None):
        """fn() must raise an SMTP error with this code (and enhanced code)."""
        with self.assertRaises(smtplib.SMTPResponseException) as cm:
            fn()
        e = cm.exception
        self.assertEqual(e.smtp_code, code, e.smtp_error)
        if enhanced is not None:
            text = e.smtp_error.decode() if isinstance(e.smtp_error, bytes) else e.smtp_error
            self.assertTrue(text.startswith(enhanced), f"{text!r} does not start with {enhanced}")
        return e


def main():
    require_binaries()
    import unittest
    unittest.main(verbosity=2)
