#!/usr/bin/env python3
"""mgqueue: list (mailq style, with the last error), hold ('!'),
release, delete (no bounce), flush (deferred mail goes at once), with
mgsmtpd running, and list/delete/hold on the spool while it is stopped."""
import os
import re
import time

import mgsystem
from mgsystem import SystemTestCase, make_message

HEADER = "-Queue ID-------- --Size-- ----Arrival Time---- -Sender/Recipient-------"


def entries(listing):
    """{id: (held, size, sender, [error lines], [recipients])} from a listing."""
    out = {}
    if listing.startswith(HEADER + "\n"):
        listing = listing[len(HEADER) + 1:]
    for block in listing.split("\n\n"):
        lines = [l for l in block.split("\n") if l]
        if not lines or not re.match(r"^[0-9A-Z]{16}", lines[0]):
            continue
        m = re.match(r"^([0-9A-Z]{16})([ !]) +(\d+) (\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d)  (\S+)$",
                     lines[0])
        assert m, lines[0]
        errors = [l.strip()[1:-1] for l in lines[1:] if l.strip().startswith("(")]
        rcpts = [l.strip() for l in lines[1:] if not l.strip().startswith("(")]
        out[m.group(1)] = (m.group(2) == "!", int(m.group(3)), m.group(5), errors, rcpts)
    return out


class QueueAdmin(SystemTestCase):
    own_auth = True
    conf = {"queue.retry_min": "1h"}

    def mgqueue_ok(self, *args):
        r = self.server.mgqueue(*args)
        self.assertEqual(r.returncode, 0, f"mgqueue {args}: {r.stdout} {r.stderr}")
        return r.stdout

    def queued_while_mda_down(self, n=1, rcpts=("bob",)):
        self.server.stop_imapd()
        return [self.server.submit("alice", list(rcpts), make_message(subject=f"q{i}"))
                for i in range(n)]

    def test_list_format(self):
        self.assertEqual(self.mgqueue_ok("list"), "Mail queue is empty\n")
        (qid,) = self.queued_while_mda_down(rcpts=("bob", "carol"))
        other = self.server.mx_send("bob", make_message(), sender="")
        e = self.wait_errors([qid, other])
        listing = self.mgqueue_ok("list")
        self.assertTrue(listing.startswith(HEADER + "\n"), listing)
        self.assertRegex(listing, r"\n-- \d+ Kbytes in 2 Requests\.\n$")
        # Oldest first.
        self.assertLess(listing.index(qid), listing.index(other))
        held, size, sender, errors, rcpts = e[qid]
        self.assertFalse(held)
        self.assertEqual(sender, "alice@example.test")
        self.assertEqual(rcpts, ["bob@example.test", "carol@example.test"])
        self.assertEqual(len(errors), 2)
        self.assertTrue(all(err.startswith("connect failed") for err in errors), errors)
        with open(os.path.join(self.server.queue_dir, "msg", qid), "rb") as f:
            # The size is the content's: the file also holds the envelope.
            self.assertGreater(len(f.read()), size)
        self.assertEqual(e[other][2], "MAILER-DAEMON")   # the null sender

    def test_hold_and_release(self):
        (qid,) = self.queued_while_mda_down()
        self.mgqueue_ok("hold", qid)
        self.assertTrue(entries(self.mgqueue_ok("list"))[qid][0])
        self.assertRegex(self.mgqueue_ok("list"), rf"(?m)^{qid}! ")
        self.server.start_imapd()
        # Several retry rounds (every ~2 s) pass: it stays.
        time.sleep(5)
        self.assertEqual(self.server.maildir_count("bob"), 0)
        self.assertIn(qid, self.server.queue_files())
        # Held survives a restart of mgsmtpd (it is in the message's log).
        self.server.restart_smtpd()
        time.sleep(3)
        self.assertEqual(self.server.maildir_count("bob"), 0)
        self.assertTrue(entries(self.mgqueue_ok("list"))[qid][0])
        self.mgqueue_ok("release", qid)
        t0 = time.monotonic()
        self.assertEqual(self.server.wait_delivered("bob", 1, timeout=10), 1)
        self.assertLess(time.monotonic() - t0, 4)
        self.assertTrue(self.server.wait_queue_empty())
        log = self.server.smtpd_log()
        self.assertIn(f"{qid} held by the administrator", log)
        self.assertIn(f"{qid} released by the administrator", log)

    def test_delete(self):
        (qid, keep) = self.queued_while_mda_down(n=2)
        self.mgqueue_ok("delete", qid)
        self.assertNotIn(qid, self.mgqueue_ok("list"))
        deadline = time.monotonic() + 5
        while qid in self.server.queue_files() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertNotIn(qid, self.server.queue_files())
        self.assertFalse(os.path.exists(os.path.join(self.server.queue_dir, "log", qid)))
        self.server.start_imapd()
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        time.sleep(3)
        subjects = [re.search(rb"Subject: (q\d)", m).group(1) for m in self.server.fetch_all("bob")]
        self.assertEqual(subjects, [b"q1"])
        # No bounce for a deleted message.
        self.assertEqual(self.server.maildir_count("alice"), 0)
        self.assertIn(f"{qid} deleted by the administrator", self.server.smtpd_log())
        self.assertTrue(self.server.wait_queue_empty())

    def test_bad_arguments(self):
        r = self.server.mgqueue("delete", "0123456789ABCDEF")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no such message", r.stderr)
        for args in (("delete",), ("delete", "not-an-id"), ("hold", "x", "y"), ("frobnicate",), ()):
            r = self.server.mgqueue(*args)
            self.assertEqual(r.returncode, 2, args)

    def break_mailbox(self, user):
        """The user's Maildir is a plain file: the MDA answers 451."""
        path = self.server.maildir(user)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w"):
            pass
        return path

    def test_flush(self):
        path = self.break_mailbox("bob")
        qid = self.server.submit("alice", "bob", make_message(subject="deferred"))
        m = self.server.wait_smtpd_log(rf"{qid} to=bob@example\.test .*status=deferred", timeout=10)
        self.assertIsNotNone(m, self.server.smtpd_log())
        # The MDA's own answer is the reason shown.
        e = entries(self.mgqueue_ok("list"))
        self.assertEqual(e[qid][3], ["451 4.3.0 Temporary failure, try again later"])
        os.unlink(path)
        # retry_min is an hour: nothing happens by itself...
        time.sleep(3)
        self.assertEqual(self.server.maildir_count("bob"), 0)
        # ...until the flush.
        self.assertEqual(self.mgqueue_ok("flush"), "")
        t0 = time.monotonic()
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertTrue(self.server.wait_queue_empty())
        self.assertIn("flush requested", self.server.smtpd_log())

    def wait_errors(self, ids, timeout=10):
        """Waits until mgqueue shows a reason for each of ids."""
        deadline = time.monotonic() + timeout
        while True:
            e = entries(self.mgqueue_ok("list"))
            if all(i in e and e[i][3] for i in ids) or time.monotonic() > deadline:
                return e
            time.sleep(0.2)

    def test_offline(self):
        ids = self.queued_while_mda_down(n=3)
        self.wait_errors(ids)
        self.server.stop_smtpd()
        listing = self.mgqueue_ok("list")
        self.assertEqual(sorted(entries(listing)), sorted(ids))
        # The last error was logged by mgsmtpd in the message's log.
        self.assertTrue(all(entries(listing)[i][3] for i in ids), listing)
        self.mgqueue_ok("delete", ids[0])
        self.mgqueue_ok("hold", ids[1])
        listing = self.mgqueue_ok("list")
        self.assertEqual(sorted(entries(listing)), sorted(ids[1:]))
        self.assertTrue(entries(listing)[ids[1]][0])
        r = self.server.mgqueue("flush")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not running", r.stderr)
        self.assertEqual(sorted(self.server.queue_files()), sorted(ids[1:]))
        self.server.start_smtpd()
        self.server.start_imapd()
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        time.sleep(3)
        self.assertEqual(self.server.maildir_count("bob"), 1)
        self.assertEqual(self.server.queue_files(), [ids[1]])
        self.mgqueue_ok("release", ids[1])
        self.assertEqual(self.server.wait_delivered("bob", 2), 2)
        self.assertTrue(self.server.wait_queue_empty())


    def test_one_process_per_spool(self):
        # mgqueue does not work on the spool behind a running mgsmtpd's
        # back, even when it cannot reach the control socket.
        (qid,) = self.queued_while_mda_down()
        moved = self.server.control_socket + ".away"
        os.rename(self.server.control_socket, moved)
        try:
            r = self.server.mgqueue("delete", qid)
            self.assertEqual(r.returncode, 1)
            self.assertIn("in use by another process", r.stderr)
        finally:
            os.rename(moved, self.server.control_socket)
        self.assertIn(qid, self.server.queue_files())
        # Nor does a second mgsmtpd (other ports and sockets, same spool).
        conf = self.server.conf_path + ".second"
        with open(self.server.conf_path) as f:
            text = f.read()
        for old, new in ((f":{self.server.smtp_port}", f":{mgsystem.listen_port()}"),
                         (f":{self.server.submission_port}", f":{mgsystem.listen_port()}"),
                         (self.server.submit_socket, self.server.submit_socket + "2"),
                         (self.server.control_socket, self.server.control_socket + "2")):
            text = text.replace(old, new)
        with open(conf, "w") as f:
            f.write(text)
        import subprocess
        r = subprocess.run([mgsystem.MGSMTPD, "-c", conf], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("in use by another process", r.stderr)
        self.assertIn(qid, self.server.queue_files())

    def test_finished_messages_go_at_start(self):
        # A message whose every recipient has its result in the status log
        # (a crash between the last result and the removal, or a delete)
        # is removed when the spool is loaded, not kept for its lifetime.
        ids = self.queued_while_mda_down(n=2)
        self.wait_errors(ids)
        self.server.stop_smtpd()
        with open(os.path.join(self.server.queue_dir, "log", ids[0]), "a") as f:
            f.write("0 delivered 1700000000 2.0.0 250 2.0.0 Ok: delivered\n")
        with open(os.path.join(self.server.queue_dir, "log", ids[1]), "a") as f:
            f.write("deleted 1700000000\n")
        self.server.start_smtpd()
        self.assertRegex(self.server.smtpd.log_since_start(), r"queue loaded messages=0 damaged=0 finished=2")
        self.assertEqual(self.server.queue_files(), [])
        self.assertEqual(os.listdir(os.path.join(self.server.queue_dir, "log")), [])
        self.server.start_imapd()
        time.sleep(3)
        self.assertEqual(self.server.maildir_count("bob"), 0)


QueueAdmin.users = ["alice", "bob", "carol"]

if __name__ == "__main__":
    mgsystem.main()
