#!/usr/bin/env python3
"""ESMTP extensions on port 25 and 465: SIZE (with DATA and BDAT),
CHUNKING (BDAT delivery), SMTPUTF8, PIPELINING, 8BITMIME."""
import smtplib

import mgsystem
from mgsystem import SystemTestCase, make_message, queue_id

LIMIT = 10 * 1024


def content_of(raw):
    """The message as submitted: what follows our Received field."""
    i = raw.index(b"Received: ")
    while True:
        i = raw.index(b"\r\n", i) + 2
        if raw[i:i + 1] not in (b" ", b"\t"):
            return raw[i:]


class Extensions(SystemTestCase):
    users = ["alice", "bob", "carol", "j\u00f6rg"]

    def test_bdat_delivery(self):
        # Content that DATA would have to stuff: BDAT carries it as is.
        part1 = b"Subject: chunks\r\nFrom: a@remote.test\r\n\r\n.\r\n"
        part2 = b"..two dots\r\n.\r\nend\r\n"
        with self.raw_smtp() as r:
            r.ehlo()
            r.expect("MAIL FROM:<a@remote.test> BODY=8BITMIME", 250)
            r.expect("RCPT TO:<bob@example.test>", 250)
            r.send(b"BDAT %d\r\n" % len(part1) + part1)
            code, lines = r.reply()
            self.assertEqual(code, 250)
            self.assertIn(f"{len(part1)} octets", lines[0])
            r.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
            code, lines = r.reply()
            self.assertEqual(code, 250, lines)
            qid = queue_id(lines[0])
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        raw = self.server.fetch_all("bob")[0]
        self.assertIn(f" id {qid}".encode(), raw)
        self.assertEqual(content_of(raw), part1 + part2)

    def test_bdat_zero_last_and_submission(self):
        body = b"From: alice@example.test\r\nSubject: bdat on 465\r\n\r\nHi.\r\n"
        with self.raw_smtp("submission") as r:
            r.ehlo()
            r.login("alice")
            r.expect("MAIL FROM:<alice@example.test>", 250)
            r.expect("RCPT TO:<bob@example.test>", 250)
            # Pipelined chunks, then an empty last one.
            r.send(b"BDAT %d\r\n" % len(body) + body + b"BDAT 0 LAST\r\n")
            self.assertEqual(r.reply()[0], 250)
            code, lines = r.reply()
            self.assertEqual(code, 250, lines)
            queue_id(lines[0])
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        raw = self.server.fetch_all("bob")[0]
        # Submission adds Message-ID and Date in front of the header.
        self.assertIn(b"\r\nMessage-ID: <", raw)
        self.assertTrue(raw.endswith(body))

    def test_bdat_out_of_order(self):
        with self.raw_smtp() as r:
            r.ehlo()
            # Without MAIL the chunk is read and refused (503), and the
            # session stays in step.
            r.send(b"BDAT 6\r\nRSET\r\n")
            self.assertEqual(r.reply()[0], 503)
            r.expect("NOOP", 250)
            r.expect("MAIL FROM:<a@remote.test>", 250)
            r.send(b"BDAT 4 LAST\r\nabcd")
            self.assertEqual(r.reply()[0], 554)   # no recipients
            # A DATA in the middle of BDAT chunks is out of order.
            r.expect("MAIL FROM:<a@remote.test>", 250)
            r.expect("RCPT TO:<bob@example.test>", 250)
            r.send(b"BDAT 3\r\nabc")
            self.assertEqual(r.reply()[0], 250)
            self.assertEqual(r.cmd("DATA")[0], 503)
            # A size that is not a number: nothing after it can be trusted.
            r.send(b"BDAT x LAST\r\n")
            self.assertEqual(r.reply()[0], 501)
            self.assertTrue(r.is_closed())
        self.assertEqual(self.server.queue_files(), [])

    def test_pipelining(self):
        msg = make_message(subject="pipelined", to="bob@example.test")
        with self.raw_smtp() as r:
            r.ehlo()
            # Everything up to DATA in one packet (RFC 2920).
            r.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
                   b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n")
            codes = [r.reply()[0] for _ in range(5)]
            self.assertEqual(codes, [250, 250, 550, 250, 354])
            # The message, QUIT with it.
            r.send(msg + b".\r\nQUIT\r\n")
            code, lines = r.reply()
            self.assertEqual(code, 250, lines)
            self.assertEqual(r.reply()[0], 221)
            self.assertTrue(r.is_closed())
        for user in ("bob", "carol"):
            self.assertEqual(self.server.wait_delivered(user, 1), 1)
            self.assertTrue(self.server.fetch_all(user)[0].endswith(msg))

    def test_pipelined_replies_in_one_write(self):
        # While a recipient is looked up, the replies before it wait: the
        # whole group comes back in one write, so one read has it all.
        with self.raw_smtp() as r:
            r.ehlo()
            for _ in range(2):  # bob looked up, then from the cache; nobody never is
                r.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
                       b"RCPT TO:<nobody@example.test>\r\nDATA\r\n")
                self.assertEqual(r.buf, b"")
                r._fill()
                self.assertEqual(r.buf.count(b"\r\n"), 4, r.buf)
                self.assertEqual([r.reply()[0] for _ in range(4)], [250, 250, 550, 354])
                r.send(make_message(subject="grouped") + b".\r\n")
                self.assertEqual(r.reply()[0], 250)

    def test_pipelining_two_transactions(self):
        m1 = make_message(subject="one")
        m2 = make_message(subject="two")
        with self.raw_smtp() as r:
            r.ehlo()
            r.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
            self.assertEqual([r.reply()[0] for _ in range(3)], [250, 250, 354])
            r.send(m1 + b".\r\nMAIL FROM:<b@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
            self.assertEqual([r.reply()[0] for _ in range(4)], [250, 250, 250, 354])
            r.send(m2 + b".\r\n")
            self.assertEqual(r.reply()[0], 250)
        self.assertEqual(self.server.wait_delivered("bob", 2), 2)
        got = sorted(self.server.fetch_all("bob"), key=lambda m: b"Subject: two" in m)
        self.assertTrue(got[0].endswith(m1))
        self.assertTrue(got[1].endswith(m2))

    def test_smtputf8(self):
        msg = ("From: =?utf-8?q?S=C3=A9n?= <s\u00e9n@remote.test>\r\n"
               "To: j\u00f6rg@example.test\r\nSubject: Gr\u00fc\u00dfe\r\n\r\n\u00c4\u00d6\u00dc\r\n"
               ).encode()
        with self.raw_smtp() as r:
            r.ehlo()
            # Without SMTPUTF8 a UTF-8 address is refused.
            r.expect("MAIL FROM:<a@remote.test>", 250)
            code, lines = r.cmd("RCPT TO:<j\u00f6rg@example.test>")
            self.assertEqual(code, 553, lines)
            self.assertTrue(lines[0].startswith("5.6.7"), lines)
            r.expect("RSET", 250)
            r.expect("MAIL FROM:<s\u00e9n@remote.test> SMTPUTF8 BODY=8BITMIME", 250)
            r.expect("RCPT TO:<j\u00f6rg@example.test>", 250)
            r.expect("DATA", 354)
            r.send(msg + b".\r\n")
            code, lines = r.reply()
            self.assertEqual(code, 250, lines)
        self.assertEqual(self.server.wait_delivered("j\u00f6rg", 1), 1)
        raw = self.server.fetch_all("j\u00f6rg")[0]
        self.assertTrue(raw.startswith("Return-Path: <s\u00e9n@remote.test>\r\n"
                                       "Delivered-To: j\u00f6rg@example.test\r\n".encode()), raw[:200])
        self.assertTrue(raw.endswith(msg))

    def test_smtputf8_submission_with_smtplib(self):
        msg = "From: alice@example.test\r\nSubject: \u00fc\r\n\r\n\u00fc\r\n".encode()
        with self.server.submission("alice") as c:
            c.sendmail("alice@example.test", ["j\u00f6rg@example.test"], msg,
                       mail_options=["SMTPUTF8"])
        self.assertEqual(self.server.wait_delivered("j\u00f6rg", 1), 1)

    def test_dsn_parameters_syntax(self):
        with self.raw_smtp() as r:
            r.ehlo()
            r.expect("MAIL FROM:<a@remote.test> RET=HDRS ENVID=abc+2Bdef", 250)
            r.expect("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE "
                     "ORCPT=rfc822;bob+2Bx@example.test", 250)
            self.assertEqual(r.cmd("RCPT TO:<carol@example.test> NOTIFY=NEVER,SUCCESS")[0], 501)
            self.assertEqual(r.cmd("RCPT TO:<carol@example.test> FOO=BAR")[0], 555)


class SizeLimit(SystemTestCase):
    conf = {"smtp.max_message_size": str(LIMIT)}

    def test_size_is_advertised(self):
        with self.server.mx() as c:
            self.assertEqual(int(c.esmtp_features["size"]), LIMIT)
        with self.server.submission() as c:
            self.assertEqual(int(c.esmtp_features["size"]), LIMIT)

    def test_size_parameter_too_big(self):
        with self.server.mx() as c:
            code, text = c.mail("a@remote.test", [f"SIZE={LIMIT + 1}"])
            self.assertEqual(code, 552, text)
            self.assertTrue(text.startswith(b"5.3.4"))
            self.assertEqual(c.mail("a@remote.test", [f"SIZE={LIMIT}"])[0], 250)

    def test_data_too_big(self):
        big = make_message(body="y" * 70 + "\r\n") + b"z" * 76 * 200 + b"\r\n"
        for send in (lambda: self.server.mx_send("bob", big),
                     lambda: self.server.submit("alice", "bob", big)):
            e = self.assertRefused(send, 552, "5.3.4")
            self.assertIn(b"size", e.smtp_error)
        # The session survives: a small message right after.
        with self.server.mx() as c:
            with self.assertRaises(smtplib.SMTPResponseException):
                self.server.transaction(c, "a@remote.test", ["bob@example.test"], big)
            self.server.transaction(c, "a@remote.test", ["bob@example.test"], make_message())
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertEqual(self.server.maildir_count("bob"), 1)
        self.assertTrue(self.server.wait_queue_empty())

    def test_data_just_at_the_limit(self):
        head = make_message(body="")
        msg = head + b"x" * (LIMIT - len(head) - 2) + b"\r\n"
        self.assertEqual(len(msg), LIMIT)
        self.server.mx_send("bob", msg)
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)

    def test_bdat_too_big(self):
        with self.raw_smtp() as r:
            r.ehlo()
            r.expect("MAIL FROM:<a@remote.test>", 250)
            r.expect("RCPT TO:<bob@example.test>", 250)
            # One chunk over the limit: read and refused.
            r.send(b"BDAT %d LAST\r\n" % (LIMIT + 1) + b"x" * (LIMIT + 1))
            code, lines = r.reply()
            self.assertEqual(code, 552, lines)
            self.assertTrue(lines[0].startswith("5.3.4"))
            # Chunks that add up to too much.
            r.expect("MAIL FROM:<a@remote.test>", 250)
            r.expect("RCPT TO:<bob@example.test>", 250)
            half = LIMIT // 2 + 10
            r.send(b"BDAT %d\r\n" % half + b"x" * half)
            self.assertEqual(r.reply()[0], 250)
            r.send(b"BDAT %d LAST\r\n" % half + b"x" * half)
            code, lines = r.reply()
            self.assertEqual(code, 552, lines)
            # In step: the next command is answered.
            r.expect("NOOP", 250)
        self.assertEqual(self.server.queue_files(), [])
        self.assertEqual(self.server.maildir_count("bob"), 0)


if __name__ == "__main__":
    mgsystem.main()
