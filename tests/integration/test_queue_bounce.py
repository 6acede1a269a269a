#!/usr/bin/env python3
"""Delivery status notifications (RFC 3464) for mail that fails after it
was accepted: a local recipient disabled between RCPT and delivery
(the MDA answers 550 5.2.1). The DSN goes to the sender's INBOX; never
to the null sender; NOTIFY, RET, ENVID and ORCPT are honoured; a
NOTIFY=SUCCESS recipient gets a delivery report; a delay warning comes
once mail waited [queue] delay_warning."""
import email
import email.policy
import os
import re
import time

import mgsystem
from mgsystem import HOSTNAME, SystemTestCase, make_message


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


class Bounces(SystemTestCase):
    own_auth = True
    users = ["alice", "bob", "carol"]

    def fail_after_acceptance(self, send):
        """Runs send() while mgimapd is down, disables bob, starts
        mgimapd: bob's delivery fails with 550 5.2.1. Returns send()'s
        result."""
        self.server.stop_imapd()
        result = send()
        self.server.mgadm("user", "disable", "bob@example.test")
        self.server.start_imapd()
        return result

    def wait_bounced(self, qid, rcpt="bob@example.test"):
        m = self.server.wait_smtpd_log(rf"{qid} to={re.escape(rcpt)} .*dsn=5\.2\.1 status=bounced",
                                       timeout=15)
        self.assertIsNotNone(m, self.server.smtpd_log())
        self.assertTrue(self.server.wait_queue_empty())

    def dsn(self, user="alice"):
        self.assertEqual(self.server.wait_delivered(user, 1), 1)
        msgs = self.server.fetch_all(user)
        self.assertEqual(len(msgs), 1)
        return msgs[0], parse(msgs[0])

    def status_blocks(self, report):
        """The message/delivery-status part: (per-message fields, [per-recipient fields])."""
        parts = report.get_payload()
        ds = parts[1]
        self.assertEqual(ds.get_content_type(), "message/delivery-status")
        blocks = ds.get_payload()
        return blocks[0], blocks[1:]

    def test_failure_report(self):
        original = make_message(subject="will bounce", frm="alice@example.test",
                                body="line one\r\nline two\r\n")
        qid = self.fail_after_acceptance(
            lambda: self.server.submit("alice", ["bob", "carol"], original))
        self.wait_bounced(qid)
        # carol got hers; alice gets the report about bob only.
        self.assertEqual(self.server.wait_delivered("carol", 1), 1)
        raw, report = self.dsn("alice")
        self.assertTrue(raw.startswith(b"Return-Path: <>\r\nDelivered-To: alice@example.test\r\n"),
                        raw[:200])
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        self.assertEqual(report["Auto-Submitted"], "auto-replied")
        self.assertEqual(report["To"], "alice@example.test")
        self.assertIn(f"MAILER-DAEMON@{HOSTNAME}", report["From"])
        parts = report.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "message/rfc822"])
        self.assertIn("<bob@example.test>: 550 5.2.1", parts[0].get_payload(decode=True).decode())
        per_msg, per_rcpt = self.status_blocks(report)
        self.assertEqual(per_msg["Reporting-MTA"], f"dns; {HOSTNAME}")
        self.assertIsNone(per_msg["Original-Envelope-Id"])
        self.assertIsNotNone(per_msg["Arrival-Date"])
        self.assertEqual(len(per_rcpt), 1)
        r = per_rcpt[0]
        self.assertEqual(r["Final-Recipient"], "rfc822; bob@example.test")
        self.assertEqual(r["Action"], "failed")
        self.assertEqual(r["Status"], "5.2.1")
        self.assertEqual(r["Diagnostic-Code"], "smtp; 550 5.2.1 Mailbox disabled")
        self.assertIsNone(r["Original-Recipient"])
        self.assertIsNone(r["Remote-MTA"])          # local delivery: no host
        # The original, whole, with our trace fields in front.
        attached = parts[2].get_payload()[0].as_bytes()
        self.assertTrue(raw.rstrip().endswith(b"--"), raw[-100:])
        body = raw[raw.index(b"Content-Type: message/rfc822\r\n\r\n") + 32:]
        self.assertIn(original, body)
        self.assertIn(b"Subject: will bounce", attached)
        self.assertIn(f" id {qid}".encode(), body[:body.index(original)])
        # Two distinct notices would not share a Message-ID.
        self.assertRegex(report["Message-ID"], rf"^<[0-9A-Z]{{16}}\.{qid}\.failed@")
        log = self.server.smtpd_log()
        self.assertRegex(log, rf"bounce: {qid} sender notified notice=failed id=[0-9A-Z]{{16}} "
                              rf"to=alice@example\.test")

    def test_no_bounce_to_null_sender(self):
        qid = self.fail_after_acceptance(
            lambda: self.server.mx_send("bob", make_message(subject="from <>"), sender=""))
        self.wait_bounced(qid)
        time.sleep(1)
        for user in ("alice", "bob", "carol"):
            self.assertEqual(self.server.maildir_count(user), 0, user)
        self.assertNotIn("sender notified", self.server.smtpd_log())
        self.assertEqual(self.server.queue_files(), [])

    def test_notify_never(self):
        qid = self.fail_after_acceptance(
            lambda: self.server.submit("alice", "bob", make_message(), rcpt_options=["NOTIFY=NEVER"]))
        self.wait_bounced(qid)
        time.sleep(1)
        self.assertEqual(self.server.maildir_count("alice"), 0)
        self.assertNotIn("sender notified", self.server.smtpd_log())

    def test_notify_failure_only_and_delay(self):
        # NOTIFY=DELAY alone: no failure report either.
        qid = self.fail_after_acceptance(
            lambda: self.server.submit("alice", "bob", make_message(), rcpt_options=["NOTIFY=DELAY"]))
        self.wait_bounced(qid)
        time.sleep(1)
        self.assertEqual(self.server.maildir_count("alice"), 0)

    def test_ret_hdrs_envid_orcpt(self):
        original = make_message(subject="headers only", body="SECRET BODY\r\n")
        qid = self.fail_after_acceptance(
            lambda: self.server.submit("alice", "bob", original,
                                       mail_options=["RET=HDRS", "ENVID=QQ+2B314"],
                                       rcpt_options=["NOTIFY=FAILURE",
                                                     "ORCPT=rfc822;Bob+2Bold@example.test"]))
        self.wait_bounced(qid)
        raw, report = self.dsn("alice")
        parts = report.get_payload()
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        self.assertNotIn(b"SECRET BODY", raw)
        self.assertIn(b"Subject: headers only", raw)
        per_msg, per_rcpt = self.status_blocks(report)
        self.assertEqual(per_msg["Original-Envelope-Id"], "QQ+314")
        self.assertEqual(per_rcpt[0]["Original-Recipient"], "rfc822;Bob+old@example.test")

    def test_alias_recipient_orcpt(self):
        # Mail to an alias: the report names both the mailbox and the
        # address the sender used.
        self.server.mgadm("alias", "add", "builder@example.test", "bob@example.test")
        qid = self.fail_after_acceptance(
            lambda: self.server.submit("alice", "builder@example.test", make_message()))
        self.wait_bounced(qid)
        _, report = self.dsn("alice")
        _, per_rcpt = self.status_blocks(report)
        self.assertEqual(per_rcpt[0]["Final-Recipient"], "rfc822; bob@example.test")
        self.assertEqual(per_rcpt[0]["Original-Recipient"], "rfc822;builder@example.test")

    def test_notify_success(self):
        qid = self.server.submit("alice", ["bob", "carol"], make_message(subject="report please"),
                                 rcpt_options=["NOTIFY=SUCCESS"], mail_options=["ENVID=track-1"])
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertEqual(self.server.wait_delivered("carol", 1), 1)
        raw, report = self.dsn("alice")
        self.assertEqual(report["Subject"], "Successful Mail Delivery Report")
        per_msg, per_rcpt = self.status_blocks(report)
        self.assertEqual(per_msg["Original-Envelope-Id"], "track-1")
        got = sorted((r["Final-Recipient"], r["Action"], r["Status"]) for r in per_rcpt)
        self.assertEqual(got, [("rfc822; bob@example.test", "delivered", "2.0.0"),
                               ("rfc822; carol@example.test", "delivered", "2.0.0")])
        # A success report returns the header only.
        self.assertEqual(report.get_payload()[2].get_content_type(), "text/rfc822-headers")
        self.assertTrue(self.server.wait_queue_empty())
        self.assertRegex(self.server.smtpd_log(), rf"{qid} sender notified notice=delivered")

    def test_default_notify_no_success_report(self):
        self.server.submit("alice", "bob", make_message())
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertTrue(self.server.wait_queue_empty())
        time.sleep(1)
        self.assertEqual(self.server.maildir_count("alice"), 0)


class DelayWarning(SystemTestCase):
    conf = {"queue.delay_warning": "3s", "queue.retry_min": "1h"}

    def test_delay_warning(self):
        # bob's Maildir is a plain file: the MDA answers 451, retried in
        # an hour. The warning must come after 3 s, not at the retry.
        path = self.server.maildir("bob")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()
        qid = self.server.submit("alice", "bob", make_message(subject="slow"))
        self.assertEqual(self.server.wait_delivered("alice", 1, timeout=15), 1)
        raw = self.server.fetch_all("alice")[0]
        report = parse(raw)
        self.assertEqual(report["Subject"], "Delayed Mail (still being retried)")
        ds = report.get_payload()[1].get_payload()
        self.assertEqual(ds[1]["Action"], "delayed")
        self.assertEqual(ds[1]["Status"], "4.3.0")
        self.assertIsNotNone(ds[1]["Will-Retry-Until"])
        # Once only, and the message is still queued.
        time.sleep(4)
        self.assertEqual(self.server.maildir_count("alice"), 1)
        self.assertIn(qid, self.server.queue_files())
        os.unlink(path)
        self.server.mgqueue("flush")
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)


class DoubleBounce(SystemTestCase):
    """A notice that cannot be delivered goes to the postmaster (the
    postmaster of the host name's mail domain, as for RCPT
    TO:<postmaster>); one about that is dropped: no loop."""
    own_auth = True
    users = ["alice", "bob", "carol"]

    def both_fail(self):
        self.server.stop_imapd()
        qid = self.server.submit("alice", "bob", make_message(subject="double"))
        self.server.mgadm("user", "disable", "bob@example.test")
        self.server.mgadm("user", "disable", "alice@example.test")
        self.server.start_imapd()
        return qid

    def test_to_the_default_postmaster(self):
        # No alias: postmaster@example.test is the oldest enabled user,
        # carol once alice and bob are disabled.
        self.both_fail()
        self.assertEqual(self.server.wait_delivered("carol", 1, timeout=20), 1)
        report = parse(self.server.fetch_all("carol")[0])
        self.assertEqual(report["To"], f"postmaster@{HOSTNAME}")
        self.assertTrue(self.server.wait_queue_empty())

    def test_to_the_postmaster(self):
        self.server.mgadm("alias", "add", "postmaster@example.test", "carol@example.test")
        self.both_fail()
        self.assertEqual(self.server.wait_delivered("carol", 1, timeout=20), 1)
        report = parse(self.server.fetch_all("carol")[0])
        self.assertEqual(report["To"], f"postmaster@{HOSTNAME}")
        rcpt = report.get_payload()[1].get_payload()[1]
        self.assertEqual(rcpt["Final-Recipient"], "rfc822; alice@example.test")
        self.assertEqual(rcpt["Status"], "5.2.1")
        # What failed is the first notice: it is attached.
        self.assertIn(b"Undelivered Mail Returned to Sender", self.server.fetch_all("carol")[0])
        self.assertTrue(self.server.wait_queue_empty())

    def test_no_loop(self):
        # The postmaster's mailbox fails too: the notice about the notice
        # is dropped.
        self.server.mgadm("alias", "add", "postmaster@example.test", "bob@example.test")
        self.both_fail()
        self.assertIsNotNone(self.server.wait_smtpd_log(r"double bounce dropped", timeout=20))
        self.assertTrue(self.server.wait_queue_empty())
        time.sleep(2)
        self.assertEqual(len(re.findall(r"sender notified", self.server.smtpd_log())), 2)
        self.assertEqual(self.server.queue_files(), [])

    def test_no_postmaster_at_all(self):
        # postmaster@example.test reaches nobody (no alias, and no enabled
        # user to default to once carol is disabled too): the double bounce
        # fails locally and is dropped, it is never sent elsewhere.
        self.server.mgadm("user", "disable", "carol@example.test")
        self.both_fail()
        self.assertIsNotNone(self.server.wait_smtpd_log(r"double bounce dropped", timeout=20))
        self.assertTrue(self.server.wait_queue_empty())
        self.assertRegex(self.server.smtpd_log(), r"to=postmaster@example\.test .*dsn=5\.1\.1 status=bounced")
        self.assertNotIn("relay: connection failed", self.server.smtpd_log())


class MdaRefusesSize(SystemTestCase):
    """The MDA's size limit below the MTA's: the LMTP client refuses the
    message itself (before anything is sent) and it bounces at once. Once
    a heap-use-after-free when no notice was due (null sender,
    NOTIFY=NEVER): the message was freed while the scheduler still used it."""
    conf = {"lmtp.max_message_size": "10K"}
    own_auth = True

    def test_too_big_for_the_mda(self):
        big = make_message(body=("x" * 70 + "\r\n") * 250)
        self.assertGreater(len(big), 10 * 1024)
        ids = [self.server.mx_send("bob", big, sender=""),
               self.server.mx_send("bob", big, rcpt_options=["NOTIFY=NEVER"]),
               self.server.submit("alice", "bob", big)]
        for qid in ids:
            m = self.server.wait_smtpd_log(rf"{qid} to=bob@example\.test .*dsn=5\.3\.4 status=bounced")
            self.assertIsNotNone(m, self.server.smtpd_log())
        # Only alice's message earns a report.
        self.assertEqual(self.server.wait_delivered("alice", 1), 1)
        self.assertTrue(self.server.wait_queue_empty())
        # Still alive, still delivering.
        self.server.submit("alice", "bob", make_message())
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)


if __name__ == "__main__":
    mgsystem.main()
