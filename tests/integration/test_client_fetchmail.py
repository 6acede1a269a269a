#!/usr/bin/python3
"""fetchmail retrieving from mgimapd over IMAPS (the test certificate
trusted with sslcertck + sslcertfile) into an MDA that writes each message
to a file: every message arrives byte for byte (fetchmail's own Received
field added, CR LF made LF as fetchmail does for an MDA); `keep` leaves
them on the server marked \\Seen, the default deletes and expunges them,
`--flush` also removes the ones seen before; a second poll with nothing
new fetches nothing. And forwarding: fetchmail hands what it fetched to
mgsmtpd on port 25 (its SMTP client: ESMTP, SIZE, dot-stuffing), which
delivers it to another user."""
import os
import re
import shutil
import subprocess
import time
import unittest

import mgsystem
import mgtest
from mgtest import fetch_items

FETCHMAIL = shutil.which("fetchmail")
PS_SUCCESS, PS_NOMAIL = 0, 1

MDA_SCRIPT = """#!/bin/sh
# One file per message, numbered in arrival order.
dir="$(dirname "$0")/out"
n=$(ls "$dir" | wc -l)
exec cat > "$dir/$(printf %04d "$n").eml"
"""

RECEIVED_RE = re.compile(rb"^Received: from localhost \[127\.0\.0\.1\]\n"
                         rb"\tby \S+ with IMAP \(fetchmail-[\d.]+\)\n"
                         rb"\tfor <[^>]+> \(single-drop\); [^\n]+\n")


def read(path):
    with open(path) as f:
        return f.read()


@unittest.skipIf(FETCHMAIL is None, "fetchmail is not installed")
class TestFetchmail(mgtest.MgTestCase):

    def setUp(self):
        super().setUp()
        self.home = os.path.join(self.tmp, "home")
        self.out = os.path.join(self.home, "out")
        os.makedirs(self.out)
        self.mda = os.path.join(self.home, "mda.sh")
        with open(self.mda, "w") as f:
            f.write(MDA_SCRIPT)
        os.chmod(self.mda, 0o755)

    def fetchmail(self, *options, poll_extra="", expect=PS_SUCCESS, folder=None):
        rc = os.path.join(self.home, "fetchmailrc")
        folder_opt = f' folder "{folder}"' if folder else ""
        with open(rc, "w") as f:
            f.write(f'poll localhost protocol IMAP port {self.server.port}\n'
                    f'  user "{self.server.address("alice")}" password '
                    f'"{self.server.password("alice")}"{folder_opt}\n'
                    f'  ssl sslcertck sslcertfile "{self.server.cert}"\n'
                    f'  mda "{self.mda}" {poll_extra}\n')
        os.chmod(rc, 0o600)
        r = subprocess.run([FETCHMAIL, "-f", rc, "--nodetach", "--nosyslog", "-v"] + list(options),
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, HOME=self.home, FETCHMAILHOME=self.home))
        self.assertEqual(r.returncode, expect, f"fetchmail: {r.stdout}\n{r.stderr}\n"
                                               f"{self.server.log_tail()}")
        # Nothing odd about the server (fetchmail's complaints go to stderr
        # as "fetchmail: ..." lines mentioning the problem).
        self.assertNotRegex(r.stderr, r"(?i)unexpected|malformed|protocol error|"
                                      r"certificate|mismatch|not understood")
        return r

    def received(self):
        """The MDA's files in order, each without fetchmail's Received field."""
        out = []
        for name in sorted(os.listdir(self.out)):
            with open(os.path.join(self.out, name), "rb") as f:
                data = f.read()
            m = RECEIVED_RE.match(data)
            self.assertIsNotNone(m, data[:400])
            out.append(data[m.end():])
        return out

    def server_messages(self, mailbox="INBOX"):
        c = self.raw()
        untagged, _ = c.ok(f"EXAMINE {mailbox}")
        msgs = []
        if not any(l == b"* 0 EXISTS" for l in untagged):
            untagged, _ = c.ok("FETCH 1:* (UID FLAGS BODY.PEEK[])")
            for line in untagged:
                items = fetch_items(line)[1]
                msgs.append((int(items[b"UID"]), sorted(f for f in items[b"FLAGS"]
                                                         if f != b"\\Recent"), items[b"BODY[]"]))
        c.close()
        return msgs

    def messages(self):
        big_body = "".join(f"line {i:06d} " + "y" * 60 + "\r\n" for i in range(15000))
        return [
            mgtest.make_message(subject="first", body="Hello.\r\n.leading dot\r\n..two\r\n"),
            mgtest.make_message(subject="Gr\u00fc\u00dfe", body="K\u00f6ln\r\n\r\n\r\nend\r\n",
                                extra_headers=["Content-Type: text/plain; charset=utf-8",
                                               "Content-Transfer-Encoding: 8bit"]),
            mgtest.make_message(subject="big", body=big_body),   # about 1 MB
        ]

    def stored_as_lf(self, msgs):
        return [m[2].replace(b"\r\n", b"\n") for m in msgs]

    def test_keep_then_nothing_new(self):
        for msg in self.messages():
            self.deliver(["alice"], msg)
        before = self.server_messages()
        self.assertEqual(len(before), 3)
        self.fetchmail(poll_extra="keep")
        self.assertEqual(self.received(), self.stored_as_lf(before))
        # Kept, now \Seen, nothing else changed.
        after = self.server_messages()
        self.assertEqual([(u, b) for u, _, b in after], [(u, b) for u, _, b in before])
        self.assertTrue(all(f == [b"\\Seen"] for _, f, _ in after), after)
        # Nothing unseen: nothing fetched.
        r = self.fetchmail(poll_extra="keep", expect=PS_NOMAIL)
        self.assertEqual(len(os.listdir(self.out)), 3, r.stderr)
        # A new delivery: only that one.
        self.deliver(["alice"], mgtest.make_message(subject="later"))
        self.fetchmail(poll_extra="keep")
        got = self.received()
        self.assertEqual(len(got), 4)
        self.assertEqual(got[3], self.server_messages()[3][2].replace(b"\r\n", b"\n"))
        # --all fetches every message again.
        self.fetchmail("--all", poll_extra="keep")
        self.assertEqual(self.received()[4:], self.stored_as_lf(self.server_messages()))

    def test_default_deletes_and_expunges(self):
        for msg in self.messages():
            self.deliver(["alice"], msg)
        before = self.server_messages()
        r = self.fetchmail()
        self.assertEqual(self.received(), self.stored_as_lf(before))
        self.assertEqual(self.server_messages(), [])
        self.assertRegex(r.stdout, r"IMAP> A\d+ EXPUNGE")
        # The message files are gone from the Maildir too.
        for sub in ("cur", "new"):
            self.assertEqual(os.listdir(os.path.join(self.server.maildir("alice"), sub)), [])

    def test_flush_removes_the_seen_ones(self):
        msgs = self.messages()[:2]
        for msg in msgs:
            self.deliver(["alice"], msg)
        self.fetchmail(poll_extra="keep")
        self.assertEqual(len(self.server_messages()), 2)
        self.deliver(["alice"], mgtest.make_message(subject="third"))
        third = self.server_messages()[2][2]
        # flush: the two seen messages are deleted, the new one fetched
        # (and, without keep, deleted too).
        self.fetchmail("--flush")
        got = self.received()
        self.assertEqual(len(got), 3)
        self.assertEqual(got[2], third.replace(b"\r\n", b"\n"))
        self.assertEqual(self.server_messages(), [])

    def test_other_folder(self):
        c = self.raw()
        c.ok("CREATE Lists/Debian")
        msg = mgtest.make_message(subject="from a folder")
        c.append("Lists/Debian", msg)
        c.close()
        self.fetchmail(poll_extra="keep", folder="Lists/Debian")
        self.assertEqual(self.received(), [msg.replace(b"\r\n", b"\n")])
        self.assertEqual(self.server_messages("Lists/Debian")[0][1], [b"\\Seen"])

    def test_idle(self):
        """fetchmail in daemon mode with idle: a delivery is noticed at once
        (IDLE's EXISTS), fetched while fetchmail keeps its session."""
        self.deliver(["alice"], mgtest.make_message(subject="before"))
        rc = os.path.join(self.home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(f'poll localhost protocol IMAP port {self.server.port}\n'
                    f'  user "{self.server.address("alice")}" password '
                    f'"{self.server.password("alice")}"\n'
                    f'  ssl sslcertck sslcertfile "{self.server.cert}" keep idle\n'
                    f'  mda "{self.mda}"\n')
        os.chmod(rc, 0o600)
        log_path = os.path.join(self.home, "fetchmail.log")
        with open(log_path, "w") as log:
            # -d 300: the daemon's poll interval, far beyond this test; new
            # mail can only be seen through IDLE.
            proc = subprocess.Popen([FETCHMAIL, "-f", rc, "--nodetach", "--nosyslog", "-v",
                                     "-d", "300"], stdout=log, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, HOME=self.home, FETCHMAILHOME=self.home))
        try:
            self.wait_files(1, log_path)
            self.wait_for(lambda: re.search(r"IMAP> A\d+ IDLE", read(log_path)), log_path)
            self.deliver(["alice"], mgtest.make_message(subject="while idling"))
            self.wait_files(2, log_path)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        got = self.received()
        self.assertIn(b"Subject: while idling\n", got[1])
        log = read(log_path)
        self.assertRegex(log, r"IMAP< \* 2 EXISTS")
        self.assertRegex(log, r"IMAP> DONE")
        self.assertEqual([f for _, f, _ in self.server_messages()], [[b"\\Seen"], [b"\\Seen"]])

    def wait_for(self, cond, log_path, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.1)
        self.fail(f"timed out; fetchmail said:\n{read(log_path)}")

    def wait_files(self, n, log_path):
        self.wait_for(lambda: len(os.listdir(self.out)) >= n and
                      all(os.path.getsize(os.path.join(self.out, x)) > 0
                          for x in os.listdir(self.out)), log_path)

    def test_wrong_password(self):
        self.server.passwords[self.server.address("alice")] = "wrong"
        r = self.fetchmail(expect=3)   # PS_AUTHFAIL
        self.assertEqual(os.listdir(self.out), [])
        self.assertIn("authentication failed", r.stderr.lower() + r.stdout.lower())


@unittest.skipIf(FETCHMAIL is None, "fetchmail is not installed")
class TestFetchmailForward(mgsystem.SystemTestCase):

    def test_forward_over_smtp(self):
        home = os.path.join(self.tmp, "home")
        os.makedirs(home)
        msgs = [mgtest.make_message(subject="fwd 1", body=".dot\r\n..two dots\r\n.\r\nend\r\n"),
                mgtest.make_message(subject="fwd 2", body="K\u00f6ln\r\n" + "z" * 990 + "\r\n",
                                    extra_headers=["Content-Type: text/plain; charset=utf-8"])]
        for msg in msgs:
            self.deliver(["alice"], msg)
        stored = self.server.fetch_all("alice")
        rc = os.path.join(home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(f'poll localhost protocol IMAP port {self.server.port}\n'
                    f'  user "{self.server.address("alice")}" password '
                    f'"{self.server.password("alice")}" is "bob@example.test" here\n'
                    f'  ssl sslcertck sslcertfile "{self.server.cert}" keep\n'
                    f'  smtphost "127.0.0.1/{self.server.smtp_port}" smtpname "bob@example.test"\n')
        os.chmod(rc, 0o600)
        r = subprocess.run([FETCHMAIL, "-f", rc, "--nodetach", "--nosyslog", "-v"],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, HOME=home, FETCHMAILHOME=home))
        self.assertEqual(r.returncode, PS_SUCCESS, r.stdout + r.stderr)
        self.assertEqual(len(re.findall(r"SMTP< 250 2\.0\.0 Ok: queued as", r.stdout)), 2, r.stdout)
        self.assertEqual(self.server.wait_delivered("bob", 2), 2)
        got = self.server.fetch_all("bob")
        trace = re.compile(
            rb"^Return-Path: <sender@remote\.test>\r\nDelivered-To: bob@example\.test\r\n"
            rb"Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby " + re.escape(mgsystem.HOSTNAME.encode())
            + rb" \(Mailgenic\) with ESMTP id [0-9A-Z]{16}\r\n\tfor <bob@example\.test>; [^\r]+\r\n"
            rb"Received: from localhost \[127\.0\.0\.1\]\r\n\tby \S+ with IMAP \(fetchmail-[\d.]+\)\r\n"
            rb"\tfor <bob@example\.test> \(single-drop\); [^\r]+\r\n")
        for raw, orig in zip(got, stored):
            m = trace.match(raw)
            self.assertIsNotNone(m, raw[:600])
            # fetchmail takes Return-Path as the envelope sender and drops it;
            # everything else arrives as it was stored.
            first, rest = orig.split(b"\r\n", 1)
            self.assertTrue(first.startswith(b"Return-Path: "), orig[:100])
            self.assertEqual(raw[m.end():], rest)


if __name__ == "__main__":
    mgtest.main()
