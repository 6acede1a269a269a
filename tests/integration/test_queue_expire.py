#!/usr/bin/env python3
"""Mail that cannot be delivered within [queue] lifetime bounces (its
shortest allowed value, one minute, so this file takes about 70 s): at
the end of the lifetime, not at the next retry an hour later."""
import email
import email.policy
import os
import time

import mgsystem
from mgsystem import SystemTestCase, make_message


class Expire(SystemTestCase):
    conf = {"queue.lifetime": "1m", "queue.retry_min": "1h"}

    def test_expired_mail_bounces(self):
        path = self.server.maildir("bob")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()
        t0 = time.monotonic()
        qid = self.server.submit("alice", "bob", make_message(subject="too late"))
        self.assertIsNotNone(self.server.wait_smtpd_log(rf"{qid} to=bob@example\.test .*status=deferred"))
        self.assertEqual(self.server.wait_delivered("alice", 1, timeout=90), 1)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 59)
        self.assertLess(took, 75)
        report = email.message_from_bytes(self.server.fetch_all("alice")[0],
                                          policy=email.policy.compat32)
        rcpt = report.get_payload()[1].get_payload()[1]
        self.assertEqual(rcpt["Action"], "failed")
        self.assertEqual(rcpt["Status"], "4.4.7")
        self.assertEqual(rcpt["Diagnostic-Code"],
                         "smtp; message expired after 1 minute in the queue; last error: "
                         "451 4.3.0 Temporary failure, try again later")
        self.assertTrue(self.server.wait_queue_empty())
        self.assertRegex(self.server.smtpd_log(), rf"{qid} to=bob@example\.test .*dsn=4\.4\.7 status=bounced "
                                                  rf"reply=\"message expired after 1 minute")
        os.unlink(path)


if __name__ == "__main__":
    mgsystem.main()
