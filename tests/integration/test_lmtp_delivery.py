#!/usr/bin/python3
"""LMTP delivery (RFC 2033) into the store: recipient checks (unknown,
disabled, over quota), aliases, catch-all and sub-addresses ending in the
right INBOX with Delivered-To naming the final mailbox, one reply per
recipient after DATA, pipelining, dot-stuffing, large messages, BDAT."""
import os
import re
import socket
import time

import mgtest
from mgtest import crlf, fetch_items


class RawLMTP:
    """LMTP over the UNIX socket, replies read as (code, [lines])."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(path)
        self.buf = b""
        self.greeting = self.reply()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError(f"closed after {lines!r}")
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()


def stuff(msg):
    """Dot-stuffing and the final dot of DATA."""
    return re.sub(rb"(?m)^\.", b"..", msg) + (b"" if msg.endswith(b"\r\n") else b"\r\n") + b".\r\n"


class LmtpCase(mgtest.MgTestCase):
    users = ["alice", "bob", ("carol", ("--quota", "2K")), "dave"]

    def setUp(self):
        super().setUp()
        adm = self.server.mgadm
        adm("user", "disable", self.server.address("dave"))
        adm("alias", "add", "sales@example.test", "alice@example.test", "bob@example.test")
        adm("alias", "add", "boss@example.test", "alice@example.test")
        adm("alias", "add", "away@example.test", "friend@remote.example")
        adm("domain", "add", "other.test")
        adm("alias", "add", "@other.test", "bob@example.test")

    def raw_lmtp(self):
        c = RawLMTP(self.server.lmtp_socket)
        self.clients.append(c)
        return c

    def inbox(self, user):
        """[(uid, bytes)] of a user's INBOX."""
        c = self.raw(user)
        untagged, _ = c.ok("EXAMINE INBOX")
        n = int(re.search(rb"\* (\d+) EXISTS", b"\n".join(untagged)).group(1))
        out = []
        if n:
            untagged, _ = c.ok("FETCH 1:* (UID BODY.PEEK[])")
            for line in untagged:
                items = fetch_items(line)[1]
                out.append((int(items[b"UID"]), items[b"BODY[]"]))
        c.close()
        return out


class TestRecipients(LmtpCase):
    def test_lhlo_and_capabilities(self):
        c = self.raw_lmtp()
        self.assertEqual(c.greeting[0], 220)
        self.assertIn(b"LMTP", c.greeting[1][0])
        code, lines = c.cmd("LHLO client.test")
        self.assertEqual(code, 250)
        caps = {l[4:].split(b" ")[0] for l in lines[1:]}
        for cap in (b"PIPELINING", b"ENHANCEDSTATUSCODES", b"8BITMIME", b"SIZE", b"CHUNKING"):
            self.assertIn(cap, caps)
        # EHLO and HELO are SMTP's: LMTP refuses them.
        code, _ = c.cmd("EHLO client.test")
        self.assertEqual(code // 100, 5)
        code, _ = c.cmd("QUIT")
        self.assertEqual(code, 221)

    def test_recipient_checks(self):
        c = self.raw_lmtp()
        c.cmd("LHLO client.test")
        self.assertEqual(c.cmd("MAIL FROM:<sender@remote.test>")[0], 250)
        code, lines = c.cmd("RCPT TO:<nobody@example.test>")
        self.assertEqual(code, 550)
        self.assertIn(b"5.1.1", lines[0])
        code, lines = c.cmd("RCPT TO:<someone@not-local.test>")
        self.assertEqual(code, 550)
        code, lines = c.cmd("RCPT TO:<dave@example.test>")
        self.assertEqual((code, lines[0][4:9]), (550, b"5.2.1"))
        code, lines = c.cmd("RCPT TO:<away@example.test>")   # alias to a remote address only
        self.assertEqual(code, 550)
        code, lines = c.cmd("RCPT TO:<alice@example.test>")
        self.assertEqual((code, lines[0][4:9]), (250, b"2.1.5"))
        code, _ = c.cmd("RCPT TO:<garbage>")
        self.assertEqual(code // 100, 5)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(stuff(mgtest.make_message(subject="checks")))
        code, lines = c.reply()
        self.assertEqual((code, lines[0][4:9]), (250, b"2.0.0"))
        # Exactly one reply: the one accepted recipient.
        self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(len(self.inbox("alice")), 1)
        # smtplib sees the same refusals.
        refused = self.server.lmtp_deliver(["nobody", "dave"], mgtest.make_message())
        self.assertEqual(refused["nobody@example.test"][0], 550)
        self.assertEqual(refused["dave@example.test"][0], 550)

    def test_over_quota(self):
        c = self.raw_lmtp()
        c.cmd("LHLO client.test")
        small = mgtest.make_message(subject="fits", body="x" * 500 + "\r\n")
        big = mgtest.make_message(subject="too big", body="y" * 3000 + "\r\n")
        for msg, expect in ((small, (250, b"2.0.0")), (big, (552, b"5.2.2"))):
            c.cmd("MAIL FROM:<s@remote.test>")
            self.assertEqual(c.cmd("RCPT TO:<carol@example.test>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<bob@example.test>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(stuff(msg))
            code1, lines1 = c.reply()
            code2, lines2 = c.reply()
            # One reply per recipient, in RCPT order: carol, then bob.
            self.assertEqual((code1, lines1[0][4:9]), expect)
            self.assertEqual((code2, lines2[0][4:9]), (250, b"2.0.0"))
        self.assertEqual(len(self.inbox("carol")), 1)
        self.assertEqual(len(self.inbox("bob")), 2)


class TestRouting(LmtpCase):
    def test_alias_catchall_subaddress(self):
        msgs = {}
        for rcpt in ("boss@example.test", "alice+lists@example.test", "anyone@other.test",
                     "sales@example.test", "ALICE@Example.Test"):
            msg = mgtest.make_message(subject=f"to {rcpt}", to=rcpt)
            msgs[rcpt] = msg
            self.assertEqual(self.server.lmtp_deliver([rcpt], msg), {})
        alice = [m for _, m in self.inbox("alice")]
        bob = [m for _, m in self.inbox("bob")]
        head_alice = b"Return-Path: <sender@remote.test>\r\nDelivered-To: alice@example.test\r\n"
        head_bob = b"Return-Path: <sender@remote.test>\r\nDelivered-To: bob@example.test\r\n"
        self.assertEqual(alice, [head_alice + msgs[r] for r in
                                 ("boss@example.test", "alice+lists@example.test",
                                  "sales@example.test", "ALICE@Example.Test")])
        self.assertEqual(bob, [head_bob + msgs["anyone@other.test"],
                               head_bob + msgs["sales@example.test"]])

    def test_many_recipients_one_transaction(self):
        c = self.raw_lmtp()
        c.cmd("LHLO client.test")
        c.cmd("MAIL FROM:<>")
        rcpts = ["alice@example.test", "bob@example.test", "boss@example.test",
                 "nobody@example.test", "carol@example.test", "sales@example.test"]
        codes = [c.cmd(f"RCPT TO:<{r}>")[0] for r in rcpts]
        self.assertEqual(codes, [250, 250, 250, 550, 250, 250])
        self.assertEqual(c.cmd("DATA")[0], 354)
        msg = mgtest.make_message(subject="many")
        c.send(stuff(msg))
        replies = [c.reply() for _ in range(5)]
        self.assertEqual([r[0] for r in replies], [250] * 5)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        # Alice is named three times (directly, boss, sales) and bob twice:
        # one copy each.
        self.assertEqual(len(self.inbox("alice")), 1)
        self.assertEqual(len(self.inbox("bob")), 1)
        self.assertEqual(len(self.inbox("carol")), 1)
        self.assertTrue(self.inbox("carol")[0][1].startswith(b"Return-Path: <>\r\n"))

    def test_pipelining(self):
        c = self.raw_lmtp()
        msg1 = mgtest.make_message(subject="pipe 1")
        msg2 = mgtest.make_message(subject="pipe 2")
        c.send(b"LHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        codes = [c.reply()[0] for _ in range(6)]
        self.assertEqual(codes, [250, 250, 250, 550, 250, 354])
        c.send(stuff(msg1) + b"MAIL FROM:<b@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        codes = [c.reply()[0] for _ in range(5)]
        self.assertEqual(codes, [250, 250, 250, 250, 354])
        c.send(stuff(msg2) + b"RSET\r\nQUIT\r\n")
        codes = [c.reply()[0] for _ in range(3)]
        self.assertEqual(codes, [250, 250, 221])
        self.assertEqual(len(self.inbox("alice")), 1)
        self.assertEqual(len(self.inbox("bob")), 2)

    def test_dot_stuffing_and_exact_bytes(self):
        body = b".leading dot\r\n..two dots\r\n.\r\nnot the end\r\n\r\n \r\nend\r\n"
        msg = mgtest.make_message(subject="dots", body=body)
        self.assertEqual(self.server.lmtp_deliver(["alice"], msg), {})
        (uid, got), = self.inbox("alice")
        self.assertTrue(got.endswith(msg), got[-200:])
        self.assertEqual(len(got), len(msg) + len(b"Return-Path: <sender@remote.test>\r\n"
                                                  b"Delivered-To: alice@example.test\r\n"))

    def test_large_message_and_bdat(self):
        big = mgtest.make_message(subject="large",
                                  body=b"".join(b"line %07d of a large message\r\n" % i
                                                for i in range(60000)))
        self.assertGreater(len(big), 1024 * 1024)
        self.assertEqual(self.server.lmtp_deliver(["alice", "bob"], big), {})
        for user in ("alice", "bob"):
            (uid, got), = self.inbox(user)
            self.assertTrue(got.endswith(big))
        # The spool is clean afterwards.
        spool = os.path.join(self.server.mail_dir, ".lmtp")
        self.assertEqual(os.listdir(spool) if os.path.isdir(spool) else [], [])
        # BDAT (RFC 3030).
        c = self.raw_lmtp()
        c.cmd("LHLO client.test")
        c.cmd("MAIL FROM:<bdat@remote.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        c.cmd("RCPT TO:<carol@example.test>")
        msg = mgtest.make_message(subject="bdat", body=".no stuffing in BDAT\r\n")
        half = len(msg) // 2
        c.send(b"BDAT %d\r\n" % half + msg[:half])
        self.assertEqual(c.reply()[0], 250)
        c.send(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
        self.assertEqual([c.reply()[0], c.reply()[0]], [250, 250])
        got = self.inbox("alice")[-1][1]
        self.assertTrue(got.endswith(msg))

    def test_size_limit(self):
        self.server.stop()
        self.server.conf_extra["lmtp.max_message_size"] = "10K"
        self.server.write_conf()
        self.server.start()
        c = self.raw_lmtp()
        c.cmd("LHLO client.test")
        code, lines = c.cmd("MAIL FROM:<a@remote.test> SIZE=20000")
        self.assertEqual(code, 552)
        c.cmd("MAIL FROM:<a@remote.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(stuff(mgtest.make_message(body="z" * 20000)))
        code, lines = c.reply()
        self.assertEqual(code, 552, lines)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(self.inbox("alice"), [])

    def test_delivery_wakes_and_flags(self):
        """A delivered message is \\Recent, not \\Seen, and in new/."""
        self.deliver(["alice"], mgtest.make_message())
        c = self.raw()
        untagged, _ = c.ok("SELECT INBOX")
        self.assertIn(b"* 1 RECENT", untagged)
        untagged, _ = c.ok("FETCH 1 FLAGS")
        self.assertEqual(untagged[0], b"* 1 FETCH (FLAGS (\\Recent))")
        new = os.listdir(os.path.join(self.server.maildir("alice"), "new"))
        self.assertEqual(len(new), 1)
        self.assertRegex(new[0], r",S=\d+,U=1$")


class TestFailures(LmtpCase):
    def test_client_vanishes_during_delivery(self):
        """A client that sends its message and goes before the replies:
        the deliveries finish, nothing leaks (sanitizers at the stop)."""
        for i in range(12):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(self.server.lmtp_socket)
            msg = mgtest.make_message(subject=f"vanish {i}",
                                      body=b"v" * (i * 150000) + b"\r\n")
            sock.sendall(b"LHLO x\r\nMAIL FROM:<a@remote.test>\r\n"
                         b"RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
            sock.recv(4096)
            sock.sendall(stuff(msg))
            if i % 2:
                sock.sendall(b"MAIL FROM:<x@y.test>\r\n")   # half a next transaction
            sock.close()
        # Whatever was stored is whole, and the server goes on.
        self.assertEqual(self.server.lmtp_deliver(["alice"], mgtest.make_message(subject="after")), {})
        inbox = self.inbox("alice")
        self.assertTrue(any(b"Subject: after" in m for _, m in inbox))
        for _, m in inbox:
            subject = re.search(rb"Subject: (vanish (\d+)|after)", m)
            self.assertIsNotNone(subject)
            if subject.group(2):
                n = int(subject.group(2))
                self.assertIn(b"v" * (n * 150000) + b"\r\n", m)

    def test_client_vanishes_during_lookups(self):
        """Recipients still being looked up when the client goes: their
        answers come to a closed session and nothing leaks (sanitizers at
        the stop)."""
        for i in range(8):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(self.server.lmtp_socket)
            rcpts = b"".join(b"RCPT TO:<%s%d@example.test>\r\n" % (name, n)
                             for n in range(20) for name in (b"nobody", b"alice+t"))
            sock.sendall(b"LHLO x\r\nMAIL FROM:<a@remote.test>\r\n" + rcpts)
            if i % 2:
                sock.recv(64)
            sock.close()
        self.assertEqual(self.server.lmtp_deliver(["alice"], mgtest.make_message(subject="still")), {})

    def auth_child(self):
        """The pid of mgauthd's serving process (the supervisor's child)."""
        pids = self.server.group_pids()
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            ppid = int(fields[1])
            if comm == "mgauthd" and ppid in pids:
                with open(f"/proc/{ppid}/comm") as f:
                    if f.read().strip() == "mgauthd":
                        return pid
        return None

    def test_auth_service_restarts(self):
        child = self.auth_child()
        self.assertIsNotNone(child, self.server.group_pids())
        os.kill(child, 9)
        # Answers during the gap are temporary (4xx, NO [UNAVAILABLE]), never
        # "unknown user"; within a few seconds everything works again.
        deadline = time.monotonic() + 15
        lmtp_ok = imap_ok = False
        while time.monotonic() < deadline and not (lmtp_ok and imap_ok):
            refused = self.server.lmtp_deliver(["alice"], mgtest.make_message())
            if refused:
                self.assertEqual(refused["alice@example.test"][0] // 100, 4, refused)
            else:
                lmtp_ok = True
            try:
                c = self.raw()
                c.close()
                imap_ok = True
            except AssertionError as e:
                self.assertIn("UNAVAILABLE", str(e))
            time.sleep(0.1)
        self.assertTrue(lmtp_ok and imap_ok)
        self.assertNotEqual(self.auth_child(), child)


if __name__ == "__main__":
    mgtest.main()
