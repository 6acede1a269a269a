#!/usr/bin/env python3
"""kill -9 of mgsmtpd during a burst of submissions (several client
threads, on port 465 and port 25, numbered subjects), at three different
moments. After a restart:

- every message that got "250 ... queued as ID" is in the INBOX;
- exactly once, except for a message whose LMTP transaction was in
  flight at the kill (mgimapd stored it, its answer was lost with
  mgsmtpd): that one may arrive twice (RFC 1047). A message whose
  delivery mgsmtpd had logged as sent before the kill must never come
  again: its result is in the status log before the log line;
- messages without a 250 may or may not arrive (counted and printed);
- the spool is empty at the end (msg/, tmp/ and log/)."""
import os
import re
import smtplib
import socket
import ssl
import sys
import threading
import time

import mgsystem
from mgsystem import SystemTestCase, make_message

THREADS = 6
KILL_AFTER = (0.4, 1.2, 2.5)   # seconds into the burst


class CrashSmtp(SystemTestCase):
    users = ["alice", "bob", "carol", "dave"]

    def client(self, kind):
        if kind == "submission":
            return self.server.submission("alice", timeout=10)
        return self.server.mx(timeout=10)

    def burst(self, user, rnd, kill_after):
        """Submits until the kill; returns {subject: qid or None} for every
        message whose DATA was begun (None: no 250 was seen)."""
        results = {}
        lock = threading.Lock()
        stop = threading.Event()

        def worker(t):
            kind = "submission" if t % 2 == 0 else "smtp"
            sender = "alice@example.test" if kind == "submission" else "sender@remote.test"
            n = 0
            c = None
            while not stop.is_set():
                try:
                    if c is None:
                        c = self.client(kind)
                except (OSError, smtplib.SMTPException, ssl.SSLError):
                    time.sleep(0.01)
                    continue
                subject = f"r{rnd}-t{t}-n{n}"
                n += 1
                msg = make_message(subject=subject, frm=sender, to=f"{user}@example.test",
                                   message_id=f"<{subject}@crash.test>",
                                   body=f"message {subject}\r\n" * 20)
                with lock:
                    results[subject] = None
                try:
                    qid = self.server.transaction(c, sender, [f"{user}@example.test"], msg)
                    with lock:
                        results[subject] = qid
                except (OSError, smtplib.SMTPException, ssl.SSLError):
                    try:
                        c.close()
                    except Exception:
                        pass
                    c = None
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(THREADS)]
        for th in threads:
            th.start()
        time.sleep(kill_after)
        log_before = self.server.smtpd_log()
        self.server.kill9_smtpd()
        stop.set()
        for th in threads:
            th.join(timeout=30)
            self.assertFalse(th.is_alive())
        return results, log_before

    def subjects(self, user):
        out = {}
        for raw in self.server.fetch_all(user):
            m = re.search(rb"\r\nSubject: (r\d-t\d+-n\d+)\r\n", raw)
            self.assertIsNotNone(m, raw[:500])
            s = m.group(1).decode()
            out[s] = out.get(s, 0) + 1
        return out

    def round(self, user, rnd, kill_after):
        results, log_before = self.burst(user, rnd, kill_after)
        queued = {s: q for s, q in results.items() if q is not None}
        unknown = [s for s, q in results.items() if q is None]
        self.assertGreater(len(queued), 0, "nothing was queued before the kill")
        self.server.start_smtpd()
        self.assertGreaterEqual(self.server.wait_delivered(user, len(queued), timeout=60), len(queued))
        self.assertTrue(self.server.wait_queue_empty(timeout=30), self.server.queue_files())
        time.sleep(0.5)
        got = self.subjects(user)
        # Every acknowledged message arrived.
        missing = sorted(s for s in queued if s not in got)
        self.assertEqual(missing, [], f"acknowledged but lost (round {rnd})")
        # Duplicates only for deliveries in flight at the kill.
        dups = {s: n for s, n in got.items() if n > 1}
        for s, n in dups.items():
            self.assertEqual(n, 2, s)
            qid = queued.get(s)
            if qid is not None:
                self.assertIsNone(re.search(rf"{qid} to=\S+ .*status=sent", log_before),
                                  f"{s} ({qid}) was logged as sent before the kill and came again")
        # Nothing arrived that was never submitted.
        self.assertEqual(sorted(s for s in got if s not in results), [])
        arrived_unknown = sum(1 for s in unknown if s in got)
        print(f"\nround {rnd} (kill after {kill_after}s): {len(queued)} acknowledged, all delivered; "
              f"{len(unknown)} without a 250, {arrived_unknown} of them delivered; "
              f"{len(dups)} delivered twice (in flight at the kill)", file=sys.stderr)
        # The spool is empty: messages, temporary files, status logs.
        for sub in ("msg", "tmp", "log"):
            self.assertEqual(os.listdir(os.path.join(self.server.queue_dir, sub)), [], sub)
        return len(queued), len(dups)

    def test_kill9_during_bursts(self):
        total = dups = 0
        for rnd, (user, kill_after) in enumerate(zip(("bob", "carol", "dave"), KILL_AFTER), 1):
            q, d = self.round(user, rnd, kill_after)
            total += q
            dups += d
        self.assertRegex(self.server.smtpd_log(), r"queue loaded messages=\d+")
        print(f"total: {total} acknowledged messages, {dups} duplicates", file=sys.stderr)


if __name__ == "__main__":
    mgsystem.main()
