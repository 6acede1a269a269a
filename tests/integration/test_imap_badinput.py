#!/usr/bin/python3
"""Malformed and hostile input: over-long lines and literals, unbalanced
parentheses, garbage and NUL bytes, commands in the wrong state, too many
bad commands, wrong passwords (delay, limit per connection and per
address), AUTHENTICATE PLAIN (SASL-IR, continuation, cancel), the login
timeout. After each, the server must still serve another client."""
import base64
import socket
import ssl
import time

import mgtest


def plain(user, password, authzid=""):
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


class BadInputCase(mgtest.MgTestCase):
    conf = {"imap.auth_failure_delay": "1s", "imap.login_timeout": "2s"}

    def still_serving(self):
        """Another client can log in and work."""
        c = self.raw()
        c.ok("SELECT INBOX")
        c.ok("NOOP")
        c.close()

    def bad(self, c, text):
        _, tagged = c.command(text)
        self.assertRegex(tagged, rb"^T\d+ BAD", text)
        return tagged


class TestLines(BadInputCase):
    def test_overlong_line(self):
        c = self.raw()
        c.send(b"T1 NOOP " + b"x" * (70 * 1024) + b"\r\n")
        line = c.read_response()
        self.assertRegex(line, rb"^(T1|\*) BAD")
        # The rest of that line was dropped; the session goes on.
        c.ok("NOOP")
        c.ok("SELECT INBOX")
        # Just below the limit is fine (a long SEARCH).
        program = "UID " + ",".join(str(i) for i in range(100001, 109001))
        self.assertGreater(len(program), 60 * 1024)
        self.assertLess(len(program), 64 * 1024 - 100)
        c.ok("SEARCH " + program)
        self.still_serving()

    def test_overlong_before_login(self):
        c = self.raw(login=False)
        c.send(b"T1 LOGIN " + b"y" * (20 * 1024) + b" pw\r\n")
        line = c.read_response()
        self.assertRegex(line, rb"^(T1|\*) BAD")
        c.login(self.server.address("alice"), self.server.password("alice"))
        self.still_serving()

    def test_huge_literals(self):
        c = self.raw()
        c.send(b"T1 SELECT {4294967295}\r\n")
        _, tagged = c.read_until_tagged("T1")
        self.assertRegex(tagged, rb"^T1 NO \[TOOBIG\]")
        c.ok("NOOP")
        # Over the 1 MiB command limit (not an APPEND): refused.
        c.send(b"T2 SELECT {2000000}\r\n")
        _, tagged = c.read_until_tagged("T2")
        self.assertRegex(tagged, rb"^T2 NO \[TOOBIG\]")
        c.ok("NOOP")
        # Non-synchronising: the data would follow at once, so BYE.
        c.send(b"T3 SELECT {4294967295+}\r\n")
        self.assertRegex(c.read_response(), rb"^\* BYE")
        self.assertTrue(c.is_closed())
        # Before login, literals are small.
        d = self.raw(login=False)
        d.send(b"T1 LOGIN {5000}\r\n")
        _, tagged = d.read_until_tagged("T1")
        self.assertRegex(tagged, rb"^T1 NO \[TOOBIG\]")
        # A literal announcement that is no number.
        d.send(b"T2 LOGIN {99999999999999999999999}\r\n")
        line = d.read_response()
        self.assertRegex(line, rb"^(T2|\*) (BAD|NO)")
        # Literals in LOGIN work.
        user = self.server.address("alice").encode()
        pw = self.server.password("alice").encode()
        d.send(b"T3 LOGIN {%d+}\r\n%s {%d}\r\n" % (len(user), user, len(pw)))
        self.assertTrue(d.read_response().startswith(b"+"))
        d.send(pw + b"\r\n")
        _, tagged = d.read_until_tagged("T3")
        self.assertRegex(tagged, rb"^T3 OK")
        self.still_serving()

    def test_unbalanced_and_garbage(self):
        c = self.raw()
        c.ok("SELECT INBOX")
        for text in ("FETCH 1 (FLAGS", "FETCH 1 FLAGS)", 'LIST "" "*', "SEARCH ((SEEN)",
                     "STORE 1 +FLAGS (\\Seen", 'LOGIN "a', "FETCH 1 (BODY[HEADER.FIELDS (From)])",
                     "SELECT", "SELECT a b c", "NOOP extra",
                     "UID", "UID NOOP", "UID FROB 1", "FROB", "fetch"):
            with self.subTest(text=text):
                if text == "FETCH 1 (BODY[HEADER.FIELDS (From)])":
                    # Valid, but the mailbox is empty: sequence 1 does not exist.
                    _, tagged = c.command(text)
                    self.assertRegex(tagged, rb"^T\d+ (BAD|NO)")
                elif text == "NOOP extra":
                    # Dovecot ignores arguments to NOOP; either is fine, but
                    # the session goes on.
                    _, tagged = c.command(text)
                    self.assertRegex(tagged, rb"^T\d+ (BAD|OK)")
                else:
                    self.bad(c, text)
                c.ok("NOOP")
        # Garbage bytes, NULs, 8-bit bytes, a lone CR.
        for raw in (b"\x00\x01\x02\r\n", b"T9 NO\x00OP\r\n", b"\xff\xfe garbage\r\n",
                    b"T10 SELECT \"IN\x00BOX\"\r\n", b"T11 LOGIN \x80\x81 x\r\n",
                    b"T12 NOOP\rNOOP\r\n", b"*\r\n", b"+ hello\r\n", b" \r\n"):
            with self.subTest(raw=raw):
                c.send(raw)
                line = c.read_response()
                self.assertRegex(line, rb"^\S+ BAD", raw)
                c.ok("NOOP")
        # An empty line is ignored (clients send one after literals).
        c.send(b"\r\n")
        c.ok("NOOP")
        # A tag that is too long gets an untagged BAD.
        c.send(b"T" * 300 + b" NOOP\r\n")
        self.assertRegex(c.read_response(), rb"^\* BAD")
        # Byte by byte is the same as all at once.
        for b in b"S1 SELECT INBOX\r\n":
            c.send(bytes([b]))
        _, tagged = c.read_until_tagged("S1")
        self.assertRegex(tagged, rb"^S1 OK")
        self.still_serving()

    def test_too_many_bad_commands(self):
        c = self.raw()
        for i in range(19):
            self.bad(c, "FROB")
        # A good one resets the count.
        c.ok("NOOP")
        for i in range(19):
            self.bad(c, "FROB")
        c.send(b"T99 FROB\r\n")
        lines = [c.read_response(), c.read_response()]
        self.assertRegex(lines[0], rb"^T99 BAD")
        self.assertRegex(lines[1], rb"^\* BYE")
        self.assertTrue(c.is_closed())
        # Before login too.
        d = self.raw(login=False)
        for i in range(20):
            d.send(b"\x00\r\n")
        got = b""
        while not got.startswith(b"* BYE"):
            got = d.read_response()
        self.assertTrue(d.is_closed())
        self.still_serving()

    def test_wrong_state(self):
        c = self.raw(login=False)
        for text in ("SELECT INBOX", "LIST \"\" \"*\"", "EXAMINE INBOX", "CREATE x",
                     "APPEND INBOX x", "FETCH 1 FLAGS", "IDLE", "ENABLE CONDSTORE", "NAMESPACE",
                     "STATUS INBOX (MESSAGES)"):
            with self.subTest(text=text):
                _, tagged = c.command(text)
                self.assertRegex(tagged, rb"^T\d+ BAD", text)
                c.ok("NOOP")
        # Allowed before login.
        c.ok("CAPABILITY")
        c.ok('ID NIL')
        c.login(self.server.address("alice"), self.server.password("alice"))
        # Selected-state commands without a mailbox, and a second LOGIN.
        for text in ("FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "CLOSE", "UNSELECT",
                     "SEARCH ALL", "COPY 1 Trash", "CHECK", "UID FETCH 1 FLAGS",
                     f"LOGIN {self.server.address('alice')} x", "AUTHENTICATE PLAIN"):
            with self.subTest(text=text):
                _, tagged = c.command(text)
                self.assertRegex(tagged, rb"^T\d+ BAD", text)
                c.ok("NOOP")
        c.ok("LOGOUT")
        self.still_serving()


class TestLogin(BadInputCase):
    def test_wrong_password(self):
        c = self.raw(login=False)
        user = self.server.address("alice")
        for attempt in range(3):
            t0 = time.monotonic()
            _, tagged = c.command(f"LOGIN {user} wrong{attempt}")
            elapsed = time.monotonic() - t0
            self.assertRegex(tagged, rb"^T\d+ NO \[AUTHENTICATIONFAILED\]")
            self.assertGreaterEqual(elapsed, 0.9, "no delay after a failed login")
        # The third failure closes the connection.
        self.assertTrue(c.is_closed(timeout=5))
        # Unknown users look the same.
        d = self.raw(login=False)
        _, tagged = d.command("LOGIN nobody@example.test x")
        self.assertRegex(tagged, rb"^T\d+ NO \[AUTHENTICATIONFAILED\]")
        _, tagged = d.command('LOGIN "" ""')
        self.assertRegex(tagged, rb"^T\d+ (NO|BAD)")
        # The right password still works on the same connection.
        d.login(user, self.server.password("alice"))
        d.ok("SELECT INBOX")
        # Disabled users cannot log in.
        self.server.mgadm("user", "disable", self.server.address("bob"))
        e = self.raw(login=False)
        _, tagged = e.command(f"LOGIN {self.server.address('bob')} {self.server.password('bob')}")
        self.assertRegex(tagged, rb"^T\d+ NO \[AUTHENTICATIONFAILED\]")
        self.still_serving()

    def test_authenticate_plain(self):
        user, pw = self.server.address("alice"), self.server.password("alice")
        # SASL-IR.
        c = self.raw(login=False)
        _, tagged = c.command(f"AUTHENTICATE PLAIN {plain(user, pw)}")
        self.assertRegex(tagged, rb"^T\d+ OK \[CAPABILITY ")
        c.ok("SELECT INBOX")
        # Continuation.
        d = self.raw(login=False)
        d.send(b"A1 AUTHENTICATE PLAIN\r\n")
        self.assertEqual(d.read_response(), b"+ ")
        d.send(plain(user, pw, authzid=user).encode() + b"\r\n")
        _, tagged = d.read_until_tagged("A1")
        self.assertRegex(tagged, rb"^A1 OK")
        # Cancelled, bad base64, wrong password, other mechanisms, proxy.
        e = self.raw(login=False)
        e.send(b"A2 AUTHENTICATE PLAIN\r\n")
        e.read_response()
        e.send(b"*\r\n")
        _, tagged = e.read_until_tagged("A2")
        self.assertRegex(tagged, rb"^A2 BAD")
        _, tagged = e.command("AUTHENTICATE PLAIN !!!notbase64")
        self.assertRegex(tagged, rb"^T\d+ BAD")
        _, tagged = e.command(f"AUTHENTICATE PLAIN {plain(user, 'wrong')}")
        self.assertRegex(tagged, rb"^T\d+ NO \[AUTHENTICATIONFAILED\]")
        _, tagged = e.command("AUTHENTICATE CRAM-MD5")
        self.assertRegex(tagged, rb"^T\d+ NO")
        other = self.server.address("bob")
        _, tagged = e.command(f"AUTHENTICATE PLAIN {plain(user, pw, authzid=other)}")
        self.assertRegex(tagged, rb"^T\d+ NO \[AUTHENTICATIONFAILED\]")
        # Three fields exactly.
        bad = base64.b64encode(f"{user}\0{pw}".encode()).decode()
        _, tagged = e.command(f"AUTHENTICATE PLAIN {bad}")
        self.assertRegex(tagged, rb"^T\d+ NO")
        self.still_serving()

    def test_login_timeout(self):
        c = self.raw(login=False)
        t0 = time.monotonic()
        c.settimeout(10)
        line = c.read_response()
        self.assertRegex(line, rb"^\* BYE")
        self.assertTrue(c.is_closed())
        self.assertLess(time.monotonic() - t0, 6)
        # A half-done TLS handshake is dropped too (handshake timeout), and a
        # client that never says anything: both leave the server usable.
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.sendall(b"\x16\x03\x01")
        # Logged-in sessions are not bound by the login timeout.
        d = self.raw()
        time.sleep(3)
        d.ok("NOOP")
        s.close()
        self.still_serving()

    def test_plaintext_on_tls_port(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        s.sendall(b"A1 CAPABILITY\r\n")
        s.settimeout(10)
        try:
            data = s.recv(100)
        except (ConnectionError, socket.timeout):
            data = b""
        self.assertNotIn(b"CAPABILITY", data)
        s.close()
        self.still_serving()


class TestDisconnects(BadInputCase):
    """Clients that vanish in the middle of something: the server cleans up
    (the sanitizers watch for leaks and use-after-free at the stop)."""

    def test_vanish_mid_command(self):
        big = mgtest.make_message(subject="big", body=b"z" * (900 * 1024) + b"\r\n")
        c = self.raw()
        for i in range(6):
            c.append("INBOX", big if i % 2 else mgtest.make_message(subject=f"small {i}"))
        c.close()
        user, pw = self.server.address("alice"), self.server.password("alice")
        scripts = [
            [b"A1 SELECT INBOX\r\n", b"A2 FETCH 1:* (BODY[] BODY[1] ENVELOPE)\r\n"],
            [b"A1 SELECT INBOX\r\n", b"A2 SEARCH BODY zzzz\r\n"],
            [b"A1 SELECT INBOX\r\n", b"A2 COPY 1:* Trash\r\n"],
            [b"A1 SELECT INBOX\r\n", b"A2 STORE 1:* +FLAGS (\\Seen)\r\n"],
            [b"A1 SELECT INBOX\r\n", b"A2 IDLE\r\n"],
            [b"A1 APPEND INBOX {100000}\r\n", b"partial data"],
            [b"A1 APPEND INBOX {100+}\r\n" + b"x" * 100 + b"\r\n"],
            [b"A1 AUTHENTICATE PLAIN\r\n"],
            [b"A1 CREATE Vanish\r\n", b"A2 DELETE Vanish\r\n"],
            [b"A1 SELECT INBOX\r\n", b"A2 EXPUNGE\r\n", b"A3 CLOSE\r\n"],
        ]
        for script in scripts:
            for cut in range(2):
                with self.subTest(script=script[-1][:30], cut=cut):
                    d = self.raw(login=not script[0].startswith(b"A1 AUTH"))
                    for part in script:
                        d.send(part)
                    if cut:
                        time.sleep(0.1)
                    d.sock.close()
        # A login pending at the auth service, and one waiting for the
        # failure delay, both abandoned.
        e = self.raw(login=False)
        e.send(f"A1 LOGIN {user} {pw}\r\n".encode())
        e.sock.close()
        f = self.raw(login=False)
        f.send(f"A1 LOGIN {user} wrong\r\n".encode())
        time.sleep(0.2)
        f.sock.close()
        # A reader that stops reading a large FETCH, then goes.
        g = self.raw()
        g.ok("SELECT INBOX")
        g.send(b"A9 FETCH 1:* (BODY.PEEK[])\r\n")
        time.sleep(1)
        g.sock.close()
        time.sleep(0.5)
        self.still_serving()


class TestPerAddressLimit(mgtest.MgTestCase):
    conf = {"imap.auth_failure_delay": "0", "imap.max_auth_failures_per_ip": "4",
            "imap.max_connections_per_ip": "8"}

    def test_failures_per_address(self):
        user = self.server.address("alice")
        for i in range(2):
            c = self.raw(login=False)
            for k in range(2):
                _, tagged = c.command(f"LOGIN {user} wrong")
                self.assertRegex(tagged, rb"^T\d+ NO \[AUTHENTICATIONFAILED\]")
            c.close()
        # Now even the right password is refused from this address.
        c = self.raw(login=False)
        _, tagged = c.command(f"LOGIN {user} {self.server.password('alice')}")
        self.assertRegex(tagged, rb"^T\d+ NO \[UNAVAILABLE\]")

    def test_connections_per_address(self):
        conns = [self.raw(login=False) for _ in range(8)]
        ctx = self.server.ssl_context()
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        s = ctx.wrap_socket(sock, server_hostname="localhost")
        data = s.recv(200)
        self.assertTrue(data.startswith(b"* BYE"), data)
        s.close()
        conns[0].close()
        time.sleep(0.3)
        c = self.raw()
        c.ok("NOOP")


if __name__ == "__main__":
    mgtest.main()
