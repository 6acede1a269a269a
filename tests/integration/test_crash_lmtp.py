#!/usr/bin/python3
"""kill -9 of mgimapd (and mgauthd with it) while deliveries stream in over
many LMTP connections and an IMAP client appends: after a restart, every
message whose delivery got 250 (or whose APPEND got OK) is there exactly
once, nothing is there twice, and the index agrees with the Maildir (files
in cur/ and new/ = EXISTS, UIDs in file names = UIDs in the index). Three
rounds, killed at different moments.

Files a crash can leave behind: at most one file in tmp/ per delivery or
APPEND in flight at the kill (written, not yet renamed into new/ or cur/;
never acknowledged); the LMTP spool of large messages is emptied at start."""
import os
import random
import re
import smtplib
import ssl
import threading
import time

import mgtest
from mgtest import fetch_items

THREADS = 4
ROUND_KILL_AFTER = (0.4, 1.0, 1.8)


class Deliverer(threading.Thread):
    """Delivers numbered messages over new LMTP connections until stopped;
    remembers the Message-IDs that got 250."""

    def __init__(self, server, name, stop):
        super().__init__(daemon=True)
        self.server, self.tname, self.stop_event = server, name, stop
        self.acked, self.attempted, self.n = [], [], 0

    def run(self):
        while not self.stop_event.is_set():
            self.n += 1
            mid = f"<crash-{self.tname}-{self.n}@test>"
            body = "x" * (1300 * 1024 if self.n % 15 == 0 else 200) + "\r\n"
            msg = mgtest.make_message(subject=mid, message_id=mid, body=body)
            self.attempted.append(mid)
            try:
                c = smtplib.LMTP(self.server.lmtp_socket, timeout=20)
                c.ehlo("crash.test")
                c.mail("s@remote.test")
                code, _ = c.rcpt("alice@example.test")
                if code == 250:
                    code, _ = c.data(msg)
                    if code == 250:
                        self.acked.append(mid)
                try:
                    c.quit()
                except (smtplib.SMTPException, OSError):
                    pass
            except (smtplib.SMTPException, OSError, EOFError):
                time.sleep(0.02)  # the server is down: try again


class Appender(threading.Thread):
    """APPENDs numbered messages to Archive; remembers those that got OK."""

    def __init__(self, server, name, stop):
        super().__init__(daemon=True)
        self.server, self.tname, self.stop_event = server, name, stop
        self.acked, self.n = [], 0

    def run(self):
        c = None
        while not self.stop_event.is_set():
            try:
                if c is None:
                    c = self.server.raw(timeout=20)
                self.n += 1
                mid = f"<append-{self.tname}-{self.n}@test>"
                _, tagged = c.append("Archive", mgtest.make_message(subject=mid, message_id=mid),
                                     flags="\\Seen")
                if re.match(rb"^T\d+ OK", tagged):
                    self.acked.append(mid)
            except (OSError, EOFError, ssl.SSLError, mgtest.ServerError):
                if c is not None:
                    c.close()
                c = None
                time.sleep(0.05)
        if c is not None:
            c.close()


class TestCrash(mgtest.MgTestCase):
    users = ["alice"]

    def message_ids(self, mailbox):
        c = self.raw()
        untagged, _ = c.ok(f"EXAMINE {mailbox}")
        exists = int(re.search(rb"\* (\d+) EXISTS", b"\n".join(untagged)).group(1))
        ids, uids = [], []
        if exists:
            untagged, _ = c.ok("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for line in untagged:
                items = fetch_items(line)[1]
                uids.append(int(items[b"UID"]))
                value = items[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().strip()
                ids.append(value.split(":", 1)[1].strip() if value else "")
        c.close()
        self.assertEqual(len(ids), exists)
        return exists, ids, uids

    def maildir_uids(self, folder):
        d = self.server.maildir("alice", folder)
        names = os.listdir(os.path.join(d, "cur")) + os.listdir(os.path.join(d, "new"))
        uids = []
        for name in names:
            m = re.search(r",U=(\d+)", name)
            self.assertIsNotNone(m, name)
            uids.append(int(m.group(1)))
        return sorted(uids), os.listdir(os.path.join(d, "tmp"))

    def test_kill9_during_deliveries(self):
        random.seed(1234)
        acked_lmtp, acked_append, in_flight_max = [], [], 0
        for rnd, delay in enumerate(ROUND_KILL_AFTER):
            stop = threading.Event()
            workers = [Deliverer(self.server, f"r{rnd}t{i}", stop) for i in range(THREADS)]
            appender = Appender(self.server, f"r{rnd}", stop)
            for w in workers + [appender]:
                w.start()
            time.sleep(delay + random.random() * 0.3)
            self.server.kill9()
            time.sleep(0.3)     # the clients see the server gone
            stop.set()
            for w in workers + [appender]:
                w.join(timeout=60)
                self.assertFalse(w.is_alive())
            in_flight_max += THREADS + 1
            for w in workers:
                acked_lmtp += w.acked
            acked_append += appender.acked
            self.assertGreater(sum(len(w.acked) for w in workers), 0, f"round {rnd}: nothing delivered")
            # Restart: recovery of the index, verification against the Maildir.
            self.server.start()

        exists, ids, uids = self.message_ids("INBOX")
        self.assertEqual(len(set(ids)), len(ids), "a message is there twice")
        missing = set(acked_lmtp) - set(ids)
        self.assertEqual(missing, set(), f"{len(missing)} acknowledged deliveries lost")
        self.assertTrue(all(i.startswith("<crash-") for i in ids), ids[:5])
        a_exists, a_ids, a_uids = self.message_ids("Archive")
        self.assertEqual(len(set(a_ids)), len(a_ids))
        self.assertEqual(set(acked_append) - set(a_ids), set())

        # The index agrees with the Maildir.
        for folder, n, index_uids in (("", exists, uids), ("Archive", a_exists, a_uids)):
            disk_uids, tmp = self.maildir_uids(folder)
            self.assertEqual(len(disk_uids), n, folder)
            self.assertEqual(disk_uids, sorted(index_uids), folder)
            self.assertLessEqual(len(tmp), in_flight_max, tmp)
        spool = os.path.join(self.server.mail_dir, ".lmtp")
        self.assertEqual(os.listdir(spool), [])
        # UIDs only grow: a new delivery gets a UID above all.
        self.deliver(["alice"], mgtest.make_message(subject="after"))
        _, _, uids_after = self.message_ids("INBOX")
        self.assertEqual(max(uids_after), max(uids) + 1 if uids else 1)
        # The store is consistent enough for a clean stop (tearDown checks).


    def test_stale_files_are_removed_at_start(self):
        """Old files in tmp/ (a crash long ago) go when the user's store is
        opened; young ones (maybe another process's write) stay; the LMTP
        spool is emptied at start."""
        self.deliver(["alice"], mgtest.make_message())
        self.server.stop()
        tmp = os.path.join(self.server.maildir("alice"), "tmp")
        old, young = os.path.join(tmp, "1.old.host"), os.path.join(tmp, "2.young.host")
        for path in (old, young):
            with open(path, "wb") as f:
                f.write(b"Subject: partial\r\n")
        os.utime(old, (time.time() - 40 * 3600,) * 2)
        spool = os.path.join(self.server.mail_dir, ".lmtp")
        with open(os.path.join(spool, "LEFTOVER"), "wb") as f:
            f.write(b"x" * 1000)
        self.server.start()
        self.assertEqual(os.listdir(spool), [])
        self.raw().ok("SELECT INBOX")     # opens (and verifies) the store
        self.assertEqual(sorted(os.listdir(tmp)), ["2.young.host"])
        exists, ids, uids = self.message_ids("INBOX")
        self.assertEqual(exists, 1)


if __name__ == "__main__":
    mgtest.main()
