#!/usr/bin/env python3
"""The MDA (mgimapd) is down: mail is accepted, waits in the queue with
the reason in `mgqueue list`, and goes out within seconds once mgimapd is
back (the local agent offers "not attempted" deliveries again every ~2 s).

With the auth service shared with mgimapd (one host, the default), the
auth service goes with mgimapd: then mgsmtpd answers 4xx (try later)
instead of accepting mail it cannot check."""
import re
import time

import mgsystem
from mgsystem import SystemTestCase, make_message

# Retry of a delivery that was not attempted (2 s) plus the agent's pause
# after a failed connection (1 s), with room for a slow machine.
BACK_WITHIN = 6.0


class MdaDown(SystemTestCase):
    own_auth = True

    def test_mail_waits_then_arrives(self):
        self.server.stop_imapd()
        ids = [self.server.submit("alice", "bob", make_message(subject=f"waiting {i}"))
               for i in range(3)]
        ids.append(self.server.mx_send("bob", make_message(subject="from afar")))
        # Each is in the queue with the reason it waits.
        deadline = time.monotonic() + 10
        while True:
            listing = self.server.mgqueue("list").stdout
            if listing.count("connect failed") >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for qid in ids:
            self.assertRegex(listing, rf"(?m)^{qid}\s+\d+ .* (alice@example\.test|sender@remote\.test)\n"
                                      rf"\s+\(connect failed: [^)]*\)\n\s+bob@example\.test$")
        self.assertIn("-- 2 Kbytes in 4 Requests.", listing)
        self.assertEqual(self.server.maildir_count("bob"), 0)
        self.assertEqual(sorted(self.server.queue_files()), sorted(ids))

        self.server.start_imapd()
        t0 = time.monotonic()
        n = self.server.wait_delivered("bob", 4, timeout=20)
        took = time.monotonic() - t0
        self.assertEqual(n, 4)
        self.assertLess(took, BACK_WITHIN, f"queued mail took {took:.1f}s after the MDA came back")
        self.assertTrue(self.server.wait_queue_empty())
        self.assertIn("Mail queue is empty", self.server.mgqueue("list").stdout)
        subjects = sorted(re.search(rb"Subject: ([^\r]+)", m).group(1).decode()
                          for m in self.server.fetch_all("bob"))
        self.assertEqual(subjects, ["from afar", "waiting 0", "waiting 1", "waiting 2"])
        log = self.server.smtpd_log()
        for qid in ids:
            self.assertEqual(len(re.findall(rf"{qid} to=bob@example\.test .*status=sent", log)), 1)

    def test_queue_survives_mgsmtpd_restart(self):
        self.server.stop_imapd()
        qid = self.server.submit("alice", ["bob", "alice"], make_message(subject="kept"))
        self.server.restart_smtpd()
        self.assertRegex(self.server.smtpd.log_since_start(), r"mgsmtpd: ready .*queued=1")
        self.assertIn(qid, self.server.mgqueue("list").stdout)
        self.server.start_imapd()
        t0 = time.monotonic()
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertEqual(self.server.wait_delivered("alice", 1), 1)
        self.assertLess(time.monotonic() - t0, BACK_WITHIN)
        self.assertTrue(self.server.wait_queue_empty())

    def test_mda_killed_during_delivery(self):
        # mgimapd dies hard with deliveries in flight: they are retried,
        # nothing is lost (a copy may arrive twice: the MDA may have
        # stored one before its answer was lost).
        ids = [self.server.submit("alice", "bob", make_message(subject=f"k{i}")) for i in range(5)]
        self.server.kill9_imapd()
        self.server.start_imapd()
        self.assertGreaterEqual(self.server.wait_delivered("bob", 5, timeout=20), 5)
        self.assertTrue(self.server.wait_queue_empty(timeout=20))
        got = [re.search(rb"Subject: (k\d)", m).group(1) for m in self.server.fetch_all("bob")]
        self.assertEqual(sorted(set(got)), [f"k{i}".encode() for i in range(5)])
        self.assertEqual(len(ids), 5)


class AuthGoesWithMda(SystemTestCase):

    def test_temporary_refusals(self):
        self.server.stop_imapd()
        # Submission: the password cannot be checked.
        with self.server.submission() as c:
            code, text = c.docmd("AUTH", "PLAIN " + __import__("base64").b64encode(
                f"\0alice@example.test\0{self.server.password('alice')}".encode()).decode())
            self.assertEqual(code, 454, text)
            self.assertTrue(text.startswith(b"4.7.0"), text)
        # Port 25: the recipient cannot be checked.
        with self.server.mx() as c:
            c.mail("sender@remote.test")
            code, text = c.rcpt("bob@example.test")
            self.assertEqual(code, 451, text)
            self.assertTrue(text.startswith(b"4.3.0"), text)
        # mgsendmail: try again later.
        r = self.server.mgsendmail("bob@example.test", input=b"Subject: x\n\nx\n")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertEqual(self.server.queue_files(), [])
        # Back: the auth client reconnects by itself.
        self.server.start_imapd()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.server.submit("alice", "bob", make_message())
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)


if __name__ == "__main__":
    mgsystem.main()
