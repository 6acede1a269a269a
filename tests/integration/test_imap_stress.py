#!/usr/bin/python3
"""Random load: several sessions of one user run random commands (valid
and malformed) on shared mailboxes while LMTP deliveries arrive. The daemon
must answer every command with its tag, never crash (sanitizers watch it),
keep each session's view consistent (EXISTS and EXPUNGE arithmetic), and
leave an index that agrees with the Maildir."""
import os
import random
import re
import threading
import time

import mgtest
from mgtest import fetch_items

SEED = int(os.environ.get("MG_STRESS_SEED", "20240601"))
DURATION = float(os.environ.get("MG_STRESS_SECONDS", "20"))
SESSIONS = 4
BOXES = ["INBOX", "Trash", "Archive", "Work", "Work/Sub"]

TOKENS = ["FLAGS", "UID", "BODY[]", "BODY.PEEK[1]", "BODY[HEADER]", "ENVELOPE", "RFC822.SIZE",
          "BODYSTRUCTURE", "INTERNALDATE", "BODY.PEEK[TEXT]<0.10>", "RFC822.HEADER",
          "BODY.PEEK[HEADER.FIELDS (Subject)]", "BODY[2.1]", "(", ")", "\\Seen", "*", "1:*",
          "NIL", '""', '"x"', "{3}", "[", "]", "<", ">", "%", "&", "\x00", "\xff"]


class Session:
    """One client with its own view of the selected mailbox."""

    def __init__(self, test, rnd, name):
        self.test, self.rnd, self.name = test, rnd, name
        self.c = test.server.raw()
        self.exists = None
        self.errors = []

    def track(self, untagged):
        for line in untagged:
            m = re.match(rb"^\* (\d+) (EXISTS|EXPUNGE)$", line)
            if not m or self.exists is None:
                continue
            n = int(m.group(1))
            if m.group(2) == b"EXISTS":
                if n < self.exists:
                    self.errors.append(f"EXISTS went down {self.exists} -> {n} without EXPUNGE")
                self.exists = n
            else:
                if n < 1 or n > self.exists:
                    self.errors.append(f"EXPUNGE {n} out of range 1..{self.exists}")
                self.exists -= 1

    def run(self, text):
        if re.match(r"^(SELECT|EXAMINE|CLOSE|UNSELECT) ", text + " "):
            self.exists = None   # a new view; the caller reads EXISTS
        untagged, tagged = self.c.command(text)
        self.track(untagged)
        if not re.match(rb"^T\d+ (OK|NO|BAD)", tagged):
            self.errors.append(f"{text[:80]!r}: {tagged[:120]!r}")
        return untagged, tagged

    def random_set(self):
        r = self.rnd
        top = max(self.exists or 1, 1)
        choice = r.randrange(5)
        if choice == 0:
            return "1:*"
        if choice == 1:
            return str(r.randint(1, top))
        if choice == 2:
            a = r.randint(1, top)
            return f"{a}:{r.randint(a, top)}"
        if choice == 3:
            return ",".join(str(r.randint(1, top)) for _ in range(3))
        return "*"

    def step(self):
        r = self.rnd
        box = r.choice(BOXES)
        op = r.randrange(22)
        s = self.random_set()
        if op == 0:
            untagged, tagged = self.run(f'SELECT "{box}"')
            if b" OK " in tagged:
                m = re.search(rb"\* (\d+) EXISTS", b"\n".join(untagged))
                self.exists = int(m.group(1))
            else:
                self.exists = None
        elif self.exists is None or op == 1:
            self.run(r.choice(['LIST "" "*"', 'STATUS INBOX (MESSAGES UNSEEN RECENT)',
                               'LIST "" "%" RETURN (STATUS (MESSAGES) SPECIAL-USE)',
                               "NOOP", 'LSUB "" "*"', "NAMESPACE"]))
            if self.exists is None:
                untagged, tagged = self.run(f'SELECT "{box}"')
                if b" OK " in tagged:
                    self.exists = int(re.search(rb"\* (\d+) EXISTS", b"\n".join(untagged)).group(1))
        elif op in (2, 3):
            self.run(f"{r.choice(['', 'UID '])}FETCH {s} ({' '.join(r.sample(TOKENS[:13], 3))})")
        elif op == 4:
            flag = r.choice(["\\Seen", "\\Deleted", "\\Flagged", "$Kw" + str(r.randrange(5))])
            self.run(f"{r.choice(['', 'UID '])}STORE {s} {r.choice('+-')}FLAGS"
                     f"{r.choice(['', '.SILENT'])} ({flag})")
        elif op == 5:
            self.run(r.choice(["EXPUNGE", f"UID EXPUNGE {s}"]))
        elif op == 6:
            self.run(f"{r.choice(['', 'UID '])}COPY {s} \"{box}\"")
        elif op == 7:
            self.run(f"{r.choice(['', 'UID '])}MOVE {s} \"{box}\"")
        elif op == 8:
            self.run(f"{r.choice(['', 'UID '])}SEARCH {r.choice(['ALL', 'UNSEEN', 'BODY stress', 'OR SEEN DELETED', 'SUBJECT s', 'LARGER 100', 'RECENT', s])}")
        elif op == 9:
            msg = mgtest.make_message(subject=f"append {self.name}", body="stress body\r\n" * r.randint(1, 50))
            untagged, tagged = self.c.append(box, msg, flags=r.choice([None, "\\Seen", "\\Deleted $Kw1"]),
                                             nonsync=r.random() < 0.5)
            self.track(untagged)
        elif op == 10:
            tag = self.c.next_tag()
            self.c.send(f"{tag} IDLE\r\n")
            first = self.c.read_response()
            untagged = [first]
            time.sleep(r.random() * 0.2)
            self.c.send("DONE\r\n")
            u, tagged = self.c.read_until_tagged(tag)
            self.track(untagged + u)
        elif op == 11:
            # Garbage: a random mix of tokens, maybe with a literal.
            text = " ".join(r.choice(TOKENS) for _ in range(r.randint(1, 8)))
            text = text.replace("{3}", "")
            self.run(r.choice(["FETCH ", "SEARCH ", "STORE ", "LIST ", "FROB ", ""]) + text)
        elif op == 12:
            # CLOSE and UNSELECT leave the selected state: select again.
            self.run(r.choice(["CHECK", "NOOP", "UNSELECT", "CLOSE"]))
            untagged, tagged = self.run(f'SELECT "{box}"')
            if b" OK " in tagged:
                self.exists = int(re.search(rb"\* (\d+) EXISTS", b"\n".join(untagged)).group(1))
            else:
                self.exists = None
        elif op in (13, 14, 15):
            self.run(r.choice(['CREATE "Tmp"', 'DELETE "Tmp"', 'RENAME "Tmp" "Tmp2"',
                               'RENAME "Tmp2" "Tmp"', 'SUBSCRIBE "Work"', 'UNSUBSCRIBE "Work"']))
        else:
            self.run(f"FETCH {s} (FLAGS UID)")


class TestStress(mgtest.MgTestCase):
    users = ["alice"]

    def test_random_sessions_with_deliveries(self):
        setup = self.raw()
        setup.ok('CREATE "Work/Sub"')
        for i in range(10):
            self.deliver(["alice"], mgtest.make_message(subject=f"seed {i}"))
        setup.close()
        rnd = random.Random(SEED)
        stop = threading.Event()
        delivered = []

        def deliver_loop():
            n = 0
            while not stop.is_set():
                n += 1
                refused = self.server.lmtp_deliver(["alice"], mgtest.make_message(subject=f"live {n}"))
                if not refused:
                    delivered.append(n)
                time.sleep(0.05)

        deliverer = threading.Thread(target=deliver_loop, daemon=True)
        deliverer.start()
        errors = []
        steps_done = []

        def session_loop(i):
            sess = Session(self, random.Random(rnd.random()), f"s{i}")
            deadline = time.monotonic() + DURATION
            steps = 0
            try:
                while time.monotonic() < deadline:
                    sess.step()
                    steps += 1
            except Exception as e:   # a dropped connection or a stuck command
                errors.append(f"session {i} after {steps} steps: {e!r}")
            errors.extend(f"session {i}: {e}" for e in sess.errors)
            steps_done.append(steps)
            sess.c.close()

        threads = [threading.Thread(target=session_loop, args=(i,)) for i in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=DURATION + 120)
            self.assertFalse(t.is_alive(), "a session got stuck")
        stop.set()
        deliverer.join(timeout=60)
        self.assertEqual(errors, [], f"seed {SEED}")
        self.assertGreater(len(delivered), 5)
        self.assertGreater(min(steps_done), 50, steps_done)

        # Afterwards: the index agrees with the Maildir in every mailbox.
        c = self.raw()
        for box in BOXES:
            untagged, _ = c.ok(f'EXAMINE "{box}"')
            exists = int(re.search(rb"\* (\d+) EXISTS", b"\n".join(untagged)).group(1))
            uids = []
            if exists:
                untagged, _ = c.ok("FETCH 1:* (UID)")
                uids = sorted(int(fetch_items(l)[1][b"UID"]) for l in untagged)
            folder = self.server.maildir("alice", box.replace("/", ".") if box != "INBOX" else "")
            names = os.listdir(os.path.join(folder, "cur")) + os.listdir(os.path.join(folder, "new"))
            disk = sorted(int(re.search(r",U=(\d+)", n).group(1)) for n in names)
            self.assertEqual(disk, uids, box)
            self.assertEqual(len(set(uids)), len(uids))
        self.server.restart()
        c = self.raw()
        c.ok("SELECT INBOX")


if __name__ == "__main__":
    mgtest.main()
