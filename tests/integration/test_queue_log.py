#!/usr/bin/env python3
"""mgsmtpd's log: one line per delivery attempt and recipient
(queue ID, to=, relay=, delay=, dsn=, status=sent|deferred|bounced,
reply=), and the queue ID of the 250 reply in every line about the
message."""
import os
import re
import time

import mgsystem
from mgsystem import SystemTestCase, make_message

DELIVERY_RE = (r"info delivery: (?P<id>[0-9A-Z]{16}) to=(?P<to>\S+) relay=(?P<relay>\S+) "
               r"delay=(?P<delay>\d+)s dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}) "
               r"status=(?P<status>sent|deferred|bounced) reply=(?P<reply>.*)$")


class Logging(SystemTestCase):
    own_auth = True
    users = ["alice", "bob", "carol"]
    conf = {"queue.retry_min": "1h"}

    def deliveries(self, qid=None):
        out = []
        for line in self.server.smtpd_log().splitlines():
            m = re.search(DELIVERY_RE, line)
            if m and (qid is None or m.group("id") == qid):
                out.append(m.groupdict())
        return out

    def wait_deliveries(self, qid, n, timeout=15):
        deadline = time.monotonic() + timeout
        while len(self.deliveries(qid)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.deliveries(qid)

    def test_sent_one_line_per_recipient(self):
        qid = self.server.submit("alice", ["bob", "carol"], make_message())
        lines = self.wait_deliveries(qid, 2)
        self.assertEqual(sorted(l["to"] for l in lines), ["bob@example.test", "carol@example.test"])
        for l in lines:
            self.assertEqual(l["status"], "sent")
            self.assertEqual(l["dsn"], "2.0.0")
            self.assertEqual(l["relay"], "lmtp:" + self.server.lmtp_socket)
            self.assertEqual(l["reply"], '"250 2.0.0 Ok: delivered"')
            self.assertLessEqual(int(l["delay"]), 2)
        time.sleep(0.5)
        self.assertEqual(len(self.deliveries(qid)), 2)

    def test_deferred_then_sent(self):
        path = self.server.maildir("bob")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()
        qid = self.server.submit("alice", "bob", make_message())
        self.wait_deliveries(qid, 1)
        self.server.mgqueue("flush")
        lines = self.wait_deliveries(qid, 2)
        for l in lines:
            self.assertEqual((l["status"], l["dsn"]), ("deferred", "4.3.0"))
            self.assertEqual(l["reply"], '"451 4.3.0 Temporary failure, try again later"')
        os.unlink(path)
        time.sleep(1.2)
        self.server.mgqueue("flush")
        lines = self.wait_deliveries(qid, 3)
        self.assertEqual([l["status"] for l in lines], ["deferred", "deferred", "sent"])
        self.assertGreaterEqual(int(lines[2]["delay"]), 1)

    def test_bounced(self):
        self.server.stop_imapd()
        qid = self.server.submit("alice", "bob", make_message())
        self.server.mgadm("user", "disable", "bob@example.test")
        self.server.start_imapd()
        lines = [l for l in self.wait_deliveries(qid, 2, timeout=20) if l["status"] != "deferred"]
        self.assertEqual(len(lines), 1, self.deliveries(qid))
        self.assertEqual((lines[0]["status"], lines[0]["dsn"]), ("bounced", "5.2.1"))
        self.assertEqual(lines[0]["reply"], '"550 5.2.1 Mailbox disabled"')

    def test_mda_down_logged_once_per_reason(self):
        self.server.stop_imapd()
        qid = self.server.submit("alice", "bob", make_message())
        time.sleep(6)   # about three retries
        lines = self.deliveries(qid)
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["status"], "deferred")
        self.assertEqual(lines[0]["dsn"], "4.4.1")
        self.assertIn("connect failed", lines[0]["reply"])
        self.server.start_imapd()
        self.assertIsNotNone(self.server.wait_smtpd_log(rf"{qid} to=bob@example\.test .*status=sent"))
        lines = self.deliveries(qid)
        # (While mgimapd starts, a retry may meet a new reason: its socket
        # there but not listening yet. That is logged too.)
        self.assertEqual([l["status"] for l in lines[:-1]], ["deferred"] * (len(lines) - 1))
        self.assertLessEqual(len(lines), 3, lines)
        self.assertEqual(lines[-1]["status"], "sent")
        self.assertGreaterEqual(int(lines[-1]["delay"]), 5)

    def test_queue_id_everywhere(self):
        # The ID of the 250 reply...
        with self.server.submission("alice") as c:
            c.mail("alice@example.test", ["RET=HDRS"])
            c.rcpt("bob@example.test", ["NOTIFY=SUCCESS"])
            code, text = c.data(make_message())
        self.assertEqual(code, 250)
        m = re.fullmatch(rb"2\.0\.0 Ok: queued as ([0-9A-Z]{16})", text)
        self.assertIsNotNone(m, text)
        qid = m.group(1).decode()
        self.assertEqual(self.server.wait_delivered("alice", 1), 1)   # the success report
        self.assertTrue(self.server.wait_queue_empty())
        self.server.mgqueue("list")
        # ...is in every line about the message: accepted, delivered,
        # the notice, and nothing about it without it.
        about = [l for l in self.server.smtpd_log().splitlines()
                 if qid in l or "status=" in l or "accepted" in l or "bounce:" in l]
        self.assertGreaterEqual(len(about), 4, about)
        notice = None
        for line in about:
            self.assertRegex(line, r"^\S+ mgsmtpd\[\d+\]: \w+ [a-z-]+: [0-9A-Z]{16} ")
            if "sender notified" in line:
                notice = re.search(r" id=([0-9A-Z]{16})", line).group(1)
        self.assertIn(f"submission: {qid} accepted session=", "\n".join(about))
        self.assertIn(f"delivery: {qid} to=bob@example.test", "\n".join(about))
        self.assertIn(f"bounce: {qid} sender notified notice=delivered id={notice} to=alice@example.test",
                      "\n".join(about))
        # The notice is a message of its own, with its own ID and lines.
        self.assertIn(f"delivery: {notice} to=alice@example.test", "\n".join(about))

    def test_no_secrets_or_content_logged(self):
        self.server.submit("alice", "bob", make_message(subject="TOPSECRET-SUBJECT",
                                                        body="TOPSECRET-BODY\r\n"))
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        log = self.server.smtpd_log()
        self.assertNotIn("TOPSECRET", log)
        self.assertNotIn(self.server.password("alice"), log)


if __name__ == "__main__":
    mgsystem.main()
