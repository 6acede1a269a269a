#!/usr/bin/python3
"""Every response of mgimapd to a wide set of commands, checked by a strict
parser of RFC 3501's formal syntax (section 9, with the response syntax of
the extensions mgimapd announces: UIDPLUS, LIST-EXTENDED, LIST-STATUS,
NAMESPACE, ID, ENABLE, STATUS=SIZE). Lenient clients (imaplib, most MUAs)
tolerate malformed responses this refuses: 8-bit or CR/LF in quoted
strings, a missing space, an unbalanced list, NIL where a string is due,
a BODYSTRUCTURE of the wrong shape or with sizes that are not the sizes
of the sections, a date-time of the wrong form.

The messages: hand-made ones for the corner cases, and the public corpora
of tests/data/corpora (cpython, enmime, stalwart's malformed and legacy
mail) for BODYSTRUCTURE and ENVELOPE. The responses come through a raw
client (every command, exact bytes) and through Python's imaplib driven by
its API (what imaplib accepted is parsed again, strictly)."""
import glob
import imaplib
import os
import re
import ssl

import mgtest

CORPORA = os.path.join(mgtest.SOURCE_DIR, "tests", "data", "corpora")


class SyntaxError_(AssertionError):
    pass


# RFC 3501 9: character classes.
CTL = set(range(0x00, 0x20)) | {0x7f}
QUOTED_SPECIALS = set(b'"\\')
LIST_WILDCARDS = set(b"%*")
RESP_SPECIALS = set(b"]")
ATOM_SPECIALS = set(b"(){ ") | CTL | LIST_WILDCARDS | QUOTED_SPECIALS | RESP_SPECIALS
MONTHS = {b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
          b"Nov", b"Dec"}
SYSTEM_FLAGS = {b"\\answered", b"\\flagged", b"\\deleted", b"\\seen", b"\\draft"}


class Parser:
    """Recursive descent over one response (literals inlined as they came:
    '{n}' CRLF n octets). Each method consumes its production or raises."""

    def __init__(self, data):
        self.d = data
        self.p = 0

    # ---- helpers ----

    def fail(self, what):
        raise SyntaxError_(f"expected {what} at offset {self.p}: "
                           f"{self.d[max(0, self.p - 60):self.p]!r} ^ {self.d[self.p:self.p + 60]!r}"
                           f"\nin {mgtest.short(self.d, 600)}")

    def peek(self, s=None):
        if s is None:
            return self.d[self.p:self.p + 1]
        return self.d[self.p:self.p + len(s)] == s

    def peek_ci(self, s):
        return self.d[self.p:self.p + len(s)].upper() == s.upper()

    def lit(self, s):
        if not self.peek(s):
            self.fail(repr(s))
        self.p += len(s)

    def lit_ci(self, s):
        if not self.peek_ci(s):
            self.fail(repr(s))
        self.p += len(s)

    def sp(self):
        self.lit(b" ")

    def end(self):
        if self.p != len(self.d):
            self.fail("end of response")

    # ---- basic tokens ----

    def number(self):
        m = re.compile(rb"\d+").match(self.d, self.p)
        if not m:
            self.fail("number")
        self.p = m.end()
        v = int(m.group())
        if v > 0xffffffff:
            self.fail("number < 2^32")
        return v

    def nz_number(self):
        if self.peek(b"0"):
            self.fail("nz-number")
        return self.number()

    def atom(self, extra_ok=b""):
        start = self.p
        while self.p < len(self.d) and (self.d[self.p] not in ATOM_SPECIALS or
                                        self.d[self.p] in extra_ok) and self.d[self.p] < 0x80:
            self.p += 1
        if self.p == start:
            self.fail("atom")
        return self.d[start:self.p]

    def quoted(self):
        self.lit(b'"')
        out = bytearray()
        while True:
            if self.p >= len(self.d):
                self.fail("closing quote")
            c = self.d[self.p]
            if c == 0x22:
                self.p += 1
                return bytes(out)
            if c == 0x5c:
                n = self.d[self.p + 1:self.p + 2]
                if n not in (b'"', b"\\"):
                    self.fail('quoted-specials after "\\"')
                out += n
                self.p += 2
                continue
            if c in (0x0d, 0x0a) or c == 0 or c >= 0x80:
                self.fail("QUOTED-CHAR (7-bit, no CR, LF or NUL: use a literal)")
            out.append(c)
            self.p += 1

    def literal(self):
        self.lit(b"{")
        n = self.number()
        self.lit(b"}\r\n")
        if self.p + n > len(self.d):
            self.fail(f"{n} literal octets")
        v = self.d[self.p:self.p + n]
        if b"\x00" in v:
            self.fail("no NUL in a literal")
        self.p += n
        return v

    def string(self):
        if self.peek(b'"'):
            return self.quoted()
        if self.peek(b"{"):
            return self.literal()
        self.fail("string")

    def nil(self):
        self.lit_ci(b"NIL")
        # NIL is an atom: not followed by more atom characters.
        if self.p < len(self.d) and self.d[self.p] not in ATOM_SPECIALS:
            self.fail("NIL as a whole atom")

    def is_nil(self):
        return self.peek_ci(b"NIL") and (self.p + 3 == len(self.d) or
                                         self.d[self.p + 3] in ATOM_SPECIALS)

    def nstring(self):
        if self.is_nil():
            self.nil()
            return None
        return self.string()

    def astring(self):
        if self.peek(b'"') or self.peek(b"{"):
            return self.string()
        return self.atom(extra_ok=b"]")

    def mailbox(self):
        name = self.astring()
        # Modified UTF-7 on the wire: printable US-ASCII only.
        if any(c < 0x20 or c > 0x7e for c in name):
            self.fail(f"7-bit mailbox name, got {name!r}")
        return name

    def text(self, stop=None):
        start = self.p
        while self.p < len(self.d) and self.d[self.p] not in (0x0d, 0x0a):
            if stop is not None and self.d[self.p] in stop:
                break
            self.p += 1
        return self.d[start:self.p]

    def flag(self, fetch=False, perm=False):
        if perm and self.peek(b"\\*"):
            self.p += 2
            return b"\\*"
        if self.peek(b"\\"):
            self.p += 1
            a = self.atom()
            f = b"\\" + a
            if f.lower() == b"\\recent" and not fetch:
                self.fail("no \\Recent outside FETCH")
            return f
        return self.atom()

    def flag_list(self, fetch=False, perm=False):
        self.lit(b"(")
        flags = []
        while not self.peek(b")"):
            if flags:
                self.sp()
            flags.append(self.flag(fetch=fetch, perm=perm))
        self.lit(b")")
        return flags

    def date_time(self):
        m = re.compile(rb'"([ \d]\d)-([A-Z][a-z]{2})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-]\d{4})"'
                       ).match(self.d, self.p)
        if not m or m.group(2) not in MONTHS:
            self.fail('date-time "dd-Mon-yyyy hh:mm:ss +zzzz"')
        self.p = m.end()
        return m.group(0)

    # ---- responses ----

    def response(self):
        """One response line: continuation, untagged or tagged. Returns
        (kind, info) for the caller's checks."""
        if self.peek(b"+"):
            self.lit(b"+")
            if self.peek(b" "):
                self.sp()
                if self.peek(b"["):
                    self.resp_text()
                else:
                    self.text()
            self.end()
            return ("+", None)
        if self.peek(b"* "):
            self.p += 2
            info = self.response_data()
            self.end()
            return ("*", info)
        tag = self.atom(extra_ok=b"")
        if b"+" in tag:
            self.fail("tag without '+'")
        self.sp()
        cond = self.atom().upper()
        if cond not in (b"OK", b"NO", b"BAD"):
            self.fail("OK, NO or BAD")
        self.sp()
        code = self.resp_text()
        self.end()
        return ("tagged", (tag, cond, code))

    def resp_text(self):
        code = None
        if self.peek(b"["):
            self.p += 1
            code = self.resp_text_code()
            self.lit(b"]")
            # RFC 3501 requires text after the code (errata 4214 made it
            # optional; clients still expect the space).
            if self.peek(b" "):
                self.sp()
        t = self.text()
        if code is None and not t:
            self.fail("resp-text")
        return code

    def resp_text_code(self):
        name = self.atom().upper()
        if name in (b"ALERT", b"PARSE", b"READ-ONLY", b"READ-WRITE", b"TRYCREATE", b"CLOSED",
                    b"UIDNOTSTICKY", b"NONEXISTENT", b"ALREADYEXISTS", b"UNAVAILABLE",
                    b"AUTHENTICATIONFAILED", b"AUTHORIZATIONFAILED", b"EXPIRED", b"PRIVACYREQUIRED",
                    b"CONTACTADMIN", b"NOPERM", b"INUSE", b"EXPUNGEISSUED", b"CORRUPTION",
                    b"SERVERBUG", b"CLIENTBUG", b"CANNOT", b"LIMIT", b"OVERQUOTA", b"USEATTR"):
            return (name,)
        if name == b"CAPABILITY":
            return (name, self.capability_rest())
        if name == b"PERMANENTFLAGS":
            self.sp()
            return (name, self.flag_list(perm=True))
        if name in (b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN"):
            self.sp()
            return (name, self.nz_number())
        if name == b"BADCHARSET":
            if self.peek(b" "):
                self.sp()
                self.lit(b"(")
                self.astring()
                while self.peek(b" "):
                    self.sp()
                    self.astring()
                self.lit(b")")
            return (name,)
        if name == b"APPENDUID":
            self.sp()
            v = self.nz_number()
            self.sp()
            return (name, v, self.uid_set())
        if name == b"COPYUID":
            self.sp()
            v = self.nz_number()
            self.sp()
            src = self.uid_set()
            self.sp()
            dst = self.uid_set()
            return (name, v, src, dst)
        # atom [SP 1*<any TEXT-CHAR except "]">]
        if self.peek(b" "):
            self.sp()
            t = self.text(stop=b"]")
            if not t:
                self.fail("text after the code's space")
        return (name,)

    def uid_set(self):
        out = []
        while True:
            a = self.nz_number()
            if self.peek(b":"):
                self.p += 1
                b = self.nz_number()
                out.append((a, b))
            else:
                out.append((a, a))
            if not self.peek(b","):
                return out
            self.p += 1

    def capability_rest(self):
        caps = []
        while self.peek(b" "):
            self.sp()
            caps.append(self.atom().upper())
        if b"IMAP4REV1" not in caps:
            self.fail("IMAP4rev1 among the capabilities")
        return caps

    def response_data(self):
        if self.peek(b"OK") or self.peek(b"NO") or self.peek(b"BAD") or self.peek(b"BYE") \
                or self.peek(b"PREAUTH"):
            cond = self.atom().upper()
            self.sp()
            return (cond, self.resp_text())
        if self.d[self.p:self.p + 1].isdigit():
            n = self.number()
            self.sp()
            what = self.atom().upper()
            if what in (b"EXISTS", b"RECENT"):
                return (what, n)
            if n == 0:
                self.fail("nz-number before EXPUNGE/FETCH")
            if what == b"EXPUNGE":
                return (what, n)
            if what == b"FETCH":
                self.sp()
                return (what, n, self.msg_att())
            self.fail("EXISTS, RECENT, EXPUNGE or FETCH")
        what = self.atom().upper()
        if what == b"CAPABILITY":
            return (what, self.capability_rest())
        if what == b"FLAGS":
            self.sp()
            return (what, self.flag_list())
        if what in (b"LIST", b"LSUB"):
            self.sp()
            return (what, self.mailbox_list())
        if what == b"SEARCH":
            nums = []
            while self.peek(b" "):
                self.sp()
                nums.append(self.nz_number())
            return (what, nums)
        if what == b"STATUS":
            self.sp()
            name = self.mailbox()
            self.sp()
            self.lit(b"(")
            att = {}
            while not self.peek(b")"):
                if att:
                    self.sp()
                k = self.atom().upper()
                if k not in (b"MESSAGES", b"RECENT", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN",
                             b"SIZE"):
                    self.fail("status-att")
                self.sp()
                att[k] = self.number()
            self.lit(b")")
            return (what, name, att)
        if what == b"NAMESPACE":
            self.sp()
            ns = [self.namespace() for _ in range(3) if (_ == 0 or self.sp() is None)]
            return (what, ns)
        if what == b"ID":
            self.sp()
            if self.is_nil():
                self.nil()
                return (what, None)
            self.lit(b"(")
            pairs = []
            while not self.peek(b")"):
                if pairs:
                    self.sp()
                k = self.string()
                self.sp()
                pairs.append((k, self.nstring()))
            self.lit(b")")
            if not pairs:
                self.fail("at least one ID pair (or NIL)")
            return (what, pairs)
        if what == b"ENABLED":
            caps = []
            while self.peek(b" "):
                self.sp()
                caps.append(self.atom())
            return (what, caps)
        self.fail(f"known response, got {what!r}")

    def namespace(self):
        if self.is_nil():
            self.nil()
            return None
        self.lit(b"(")
        out = []
        while self.peek(b"("):
            self.lit(b"(")
            prefix = self.string()
            self.sp()
            if self.is_nil():
                self.nil()
                sep = None
            else:
                sep = self.quoted()
                if len(sep) != 1:
                    self.fail("one-character delimiter")
            self.lit(b")")
            out.append((prefix, sep))
        self.lit(b")")
        if not out:
            self.fail("a namespace description")
        return out

    def mailbox_list(self):
        self.lit(b"(")
        flags = []
        while not self.peek(b")"):
            if flags:
                self.sp()
            self.lit(b"\\")
            flags.append(b"\\" + self.atom())
        self.lit(b")")
        self.sp()
        if self.is_nil():
            self.nil()
            sep = None
        else:
            sep = self.quoted()
            if len(sep) != 1:
                self.fail("one-character hierarchy delimiter")
        self.sp()
        name = self.mailbox()
        ext = []
        if self.peek(b" "):
            # RFC 5258 mbox-list-extended: "(" [item *(SP item)] ")"
            self.sp()
            self.lit(b"(")
            while not self.peek(b")"):
                if ext:
                    self.sp()
                tag = self.astring()
                self.sp()
                ext.append((tag, self.tagged_ext_val()))
            self.lit(b")")
        return (flags, sep, name, ext)

    def tagged_ext_val(self):
        if self.peek(b"("):
            self.lit(b"(")
            vals = []
            while not self.peek(b")"):
                if vals:
                    self.sp()
                vals.append(self.tagged_ext_val())
            self.lit(b")")
            return vals
        if self.d[self.p:self.p + 1].isdigit():
            return self.number()
        return self.astring()

    # ---- FETCH ----

    def msg_att(self):
        self.lit(b"(")
        items = {}
        while True:
            name = self.fetch_att_name()
            if name in items:
                self.fail(f"{name!r} once per FETCH response")
            self.sp()
            items[name] = self.fetch_att_value(name)
            if self.peek(b")"):
                self.p += 1
                return items
            self.sp()

    def fetch_att_name(self):
        for fixed in (b"BODYSTRUCTURE", b"RFC822.HEADER", b"RFC822.TEXT", b"RFC822.SIZE",
                      b"RFC822", b"ENVELOPE", b"INTERNALDATE", b"FLAGS", b"UID"):
            if self.peek(fixed) and (self.d[self.p + len(fixed):self.p + len(fixed) + 1] == b" "):
                self.p += len(fixed)
                return fixed
        if self.peek(b"BODY["):
            self.p += 5
            section = self.section_spec()
            self.lit(b"]")
            name = b"BODY[" + section + b"]"
            if self.peek(b"<"):
                self.p += 1
                origin = self.number()
                self.lit(b">")
                name += b"<%d>" % origin
            return name
        if self.peek(b"BODY "):
            self.p += 4
            return b"BODY"
        self.fail("msg-att name (upper case, as the server should send it)")

    def section_spec(self):
        start = self.p
        m = re.compile(rb"(?:[1-9]\d*(?:\.[1-9]\d*)*)?").match(self.d, self.p)
        self.p = m.end()
        part = m.group()
        if part and self.peek(b"."):
            self.p += 1
            if self.peek(b"MIME"):
                self.p += 4
                return self.d[start:self.p]
        elif part:
            return self.d[start:self.p]
        if self.peek(b"HEADER.FIELDS"):
            self.p += len(b"HEADER.FIELDS")
            if self.peek(b".NOT"):
                self.p += 4
            self.sp()
            self.lit(b"(")
            self.astring()
            while self.peek(b" "):
                self.sp()
                self.astring()
            self.lit(b")")
        elif self.peek(b"HEADER"):
            self.p += 6
        elif self.peek(b"TEXT"):
            self.p += 4
        elif part:
            self.fail("section-text")
        return self.d[start:self.p]

    def fetch_att_value(self, name):
        if name == b"FLAGS":
            return self.flag_list(fetch=True)
        if name == b"UID":
            return self.nz_number()
        if name == b"RFC822.SIZE":
            return self.number()
        if name == b"INTERNALDATE":
            return self.date_time()
        if name == b"ENVELOPE":
            return self.envelope()
        if name == b"BODYSTRUCTURE":
            return self.body(extensible=True)
        if name == b"BODY":
            return self.body(extensible=False)
        return self.nstring()

    def envelope(self):
        self.lit(b"(")
        env = {}
        env["date"] = self.nstring()
        self.sp()
        env["subject"] = self.nstring()
        for k in ("from", "sender", "reply-to", "to", "cc", "bcc"):
            self.sp()
            env[k] = self.address_list()
        self.sp()
        env["in-reply-to"] = self.nstring()
        self.sp()
        env["message-id"] = self.nstring()
        self.lit(b")")
        # RFC 3501 7.4.2: sender and reply-to default to from.
        if env["from"] is not None and (env["sender"] is None or env["reply-to"] is None):
            self.fail("sender and reply-to set when from is (RFC 3501 7.4.2)")
        return env

    def address_list(self):
        if self.is_nil():
            self.nil()
            return None
        self.lit(b"(")
        out = []
        depth = 0
        while not self.peek(b")"):
            self.lit(b"(")
            a = [self.nstring()]
            for _ in range(3):
                self.sp()
                a.append(self.nstring())
            self.lit(b")")
            # Group syntax (RFC 3501 7.4.2): start (NIL NIL name NIL), end
            # (NIL NIL NIL NIL); they nest and balance.
            if a[3] is None:
                if a[2] is None:
                    depth -= 1
                    if depth < 0:
                        self.fail("a group end after a group start")
                else:
                    depth += 1
            out.append(a)
        self.lit(b")")
        if not out:
            self.fail("at least one address (or NIL)")
        if depth != 0:
            self.fail("balanced group start and end")
        return out

    def body(self, extensible):
        self.lit(b"(")
        if self.peek(b"("):
            parts = []
            while self.peek(b"("):
                parts.append(self.body(extensible))
            self.sp()
            subtype = self.string()
            node = {"type": b"MULTIPART", "subtype": subtype, "parts": parts}
            if self.peek(b" "):
                if not extensible:
                    self.fail("no extension data in BODY")
                self.sp()
                node["params"] = self.body_fld_param()
                self.ext_tail(node)
        else:
            mtype = self.string()
            self.sp()
            subtype = self.string()
            self.sp()
            node = {"type": mtype.upper(), "subtype": subtype.upper()}
            node["params"] = self.body_fld_param()
            self.sp()
            node["id"] = self.nstring()
            self.sp()
            node["desc"] = self.nstring()
            self.sp()
            node["enc"] = self.string()
            self.sp()
            node["octets"] = self.number()
            if node["type"] == b"MESSAGE" and node["subtype"] == b"RFC822":
                self.sp()
                node["envelope"] = self.envelope()
                self.sp()
                node["body"] = self.body(extensible)
                self.sp()
                node["lines"] = self.number()
            elif node["type"] == b"TEXT":
                self.sp()
                node["lines"] = self.number()
            if self.peek(b" "):
                if not extensible:
                    self.fail("no extension data in BODY")
                self.sp()
                node["md5"] = self.nstring()
                self.ext_tail(node)
        self.lit(b")")
        return node

    def ext_tail(self, node):
        # [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc *(SP body-extension)]]]
        if not self.peek(b" "):
            return
        self.sp()
        if self.is_nil():
            self.nil()
            node["dsp"] = None
        else:
            self.lit(b"(")
            d = self.string()
            self.sp()
            node["dsp"] = (d, self.body_fld_param())
            self.lit(b")")
        if not self.peek(b" "):
            return
        self.sp()
        if self.peek(b"("):
            self.p += 1
            langs = [self.string()]
            while self.peek(b" "):
                self.sp()
                langs.append(self.string())
            self.lit(b")")
            node["lang"] = langs
        else:
            node["lang"] = self.nstring()
        if not self.peek(b" "):
            return
        self.sp()
        node["loc"] = self.nstring()
        while self.peek(b" "):
            self.sp()
            self.body_extension()

    def body_extension(self):
        if self.peek(b"("):
            self.p += 1
            self.body_extension()
            while self.peek(b" "):
                self.sp()
                self.body_extension()
            self.lit(b")")
        elif self.d[self.p:self.p + 1].isdigit():
            self.number()
        else:
            self.nstring()

    def body_fld_param(self):
        if self.is_nil():
            self.nil()
            return None
        self.lit(b"(")
        params = []
        while True:
            k = self.string()
            self.sp()
            params.append((k, self.string()))
            if self.peek(b")"):
                self.p += 1
                return params
            self.sp()


def parse(line):
    p = Parser(line)
    return p.response()


def leaves(node, prefix=""):
    """(section number, node) of every non-multipart part, as FETCH names them."""
    if node["type"] == b"MULTIPART":
        for i, sub in enumerate(node["parts"], 1):
            yield from leaves(sub, f"{prefix}{i}" if not prefix else f"{prefix}.{i}")
        return
    yield (prefix or "1", node)
    if "body" in node:
        inner = node["body"]
        if inner["type"] == b"MULTIPART":
            yield from leaves(inner, prefix or "1")


class StrictClient(mgtest.RawIMAP):
    """RawIMAP that parses every response it reads."""

    def __init__(self, server, checks):
        self.checks = checks   # shared by the test's clients
        self.own = []          # this client's alone
        super().__init__(server)

    def read_response(self):
        r = super().read_response()
        parsed = parse(r)
        self.checks.append(parsed)
        self.own.append(parsed)
        return r


# Hand-made messages for the corners of the syntax.
TRICKY = [
    # 8-bit header text: ENVELOPE must carry it in literals.
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.test>\r\nTo: \"M\xc3\xbcller, Hans\" <h@example.test>\r\n"
    b"Subject: Gr\xc3\xbc\xc3\x9fe \"quoted\" back\\slash\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"Message-ID: <8bit@example.test>\r\n\r\nbody\r\n",
    # Groups, an empty group, a comment, a route, no Date, an empty Subject.
    b"From: \"Odd \\\"name\\\"\" <odd@example.test>\r\nTo: undisclosed-recipients:;\r\n"
    b"Cc: friends: a@example.test, \"B\" <b@example.test>;, c@example.test (comment)\r\n"
    b"Bcc: <@route.test:d@example.test>\r\nSubject:\r\nIn-Reply-To: <x@y>\r\n\r\nx\r\n",
    # No header at all, no body.
    b"\r\n",
    b"Subject: only a header\r\n",
    # A header field folded, very long, with a tab.
    b"From: a@example.test\r\nSubject: " + b"long " * 200 + b"\r\n\tfolded\r\nX-Tab:\tx\r\n\r\nbody\r\n",
    # MIME corner cases: every body field, disposition with parameters,
    # languages, location, RFC 2231 parameters, a quoted boundary with
    # spaces, message/rfc822 inside, nested multiparts, an empty part.
    b"From: mime@example.test\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b o u n d\"; x-extra=\"a \\\"q\\\"\"\r\n"
    b"Content-Language: en, de\r\nContent-Location: http://example.test/x\r\n\r\n"
    b"preamble\r\n--b o u n d\r\n"
    b"Content-Type: text/plain; charset=\"utf-8\"; format=flowed\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\nContent-ID: <part1@example.test>\r\n"
    b"Content-Description: \"described\" \\ part\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    b"Content-Disposition: inline\r\nContent-Language: fr\r\n\r\nGr=C3=BC=C3=9Fe\r\nline 2\r\n"
    b"--b o u n d\r\n"
    b"Content-Type: application/octet-stream; name*=utf-8''%E2%82%AC.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=\"a \\\"b\\\".bin\"; size=3\r\n\r\nYWJj\r\n"
    b"--b o u n d\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: inner@example.test\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
    b"--alt\r\nContent-Type: text/plain\r\n\r\nplain\r\n--alt\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n"
    b"--alt--\r\n"
    b"--b o u n d\r\n\r\n"
    b"--b o u n d\r\nContent-Type: image/png\r\n\r\n"
    b"--b o u n d--\r\nepilogue\r\n",
    # A message/rfc822 part that is empty, a multipart without its parts,
    # a text part without a charset, an unknown type with no subtype.
    b"From: e@example.test\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
    b"--zz\r\nContent-Type: message/rfc822\r\n\r\n--zz\r\nContent-Type: multipart/related\r\n\r\n"
    b"--zz\r\nContent-Type: text\r\n\r\nx\r\n--zz\r\nContent-Type: weird\r\n\r\ny\r\n--zz--\r\n",
    # A missing closing boundary, bare LFs inside, a NUL-free binary body.
    b"From: m@example.test\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
    b"Content-Type: text/plain\r\n\r\nunterminated\nbare lf\r\n\xff\xfe\x01 binary\r\n",
]


class StrictSyntax(mgtest.MgTestCase):

    def setUp(self):
        super().setUp()
        self.checks = []

    def client(self, login=True):
        c = StrictClient(self.server, self.checks)
        self.clients.append(c)
        if login:
            c.login(self.server.address("alice"), self.server.password("alice"))
        return c

    def corpus(self):
        paths = []
        for pattern in ("cpython-email-data/*.txt", "enmime-testdata/*/*.raw",
                        "stalwart-mail-parser/resources/eml/*/*.eml"):
            paths += sorted(glob.glob(os.path.join(CORPORA, pattern)))
        out = []
        for path in paths:
            with open(path, "rb") as f:
                data = f.read()
            if len(data) > 512 * 1024 or b"\x00" in data:
                continue
            out.append(mgtest.crlf(data) if b"\r\n" not in data else data)
        return out

    def commands(self, c, cmds):
        """Runs each command; every response was parsed on the way."""
        results = {}
        for cmd in cmds:
            results[cmd] = c.command(cmd)
        return results

    def test_session_commands(self):
        c = self.client(login=False)
        parse(c.greeting)
        self.commands(c, ["CAPABILITY", "NOOP", 'ID ("name" "strict" "version" "1")', "ID NIL",
                          "LOGIN", "SELECT INBOX", "FOO", 'LOGIN "x" {3+}\r\nabc',
                          "AUTHENTICATE CRAM-MD5"])
        c.login(self.server.address("alice"), self.server.password("alice"))
        for name in ["Projects/2026", "Tr\u00e4sh \"q\" \\b", "with space", "]bracket", "{brace}"]:
            c.ok(f"CREATE {mgtest.quote(mutf7(name))}")
        c.ok('SUBSCRIBE "with space"')
        self.commands(c, [
            "CAPABILITY", "NAMESPACE", "ENABLE CONDSTORE", "ENABLE UTF8=ACCEPT",
            'LIST "" ""', 'LIST "" "*"', 'LIST "" "%"', 'LSUB "" "*"',
            'LIST (SUBSCRIBED) "" "*"', 'LIST (SPECIAL-USE) "" "*"',
            'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"',
            'LIST "" "*" RETURN (CHILDREN SPECIAL-USE SUBSCRIBED)',
            'LIST "" "*" RETURN (STATUS (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE))',
            'LIST "" ("INBOX" "Proj*")', 'LIST "Projects/" "%"',
            'STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE)',
            'STATUS "with space" (MESSAGES)', "STATUS nope (MESSAGES)", "STATUS INBOX (BOGUS)",
            "CREATE INBOX", 'CREATE "a//b"', "DELETE nope", "RENAME nope other",
            'CREATE "Special" (USE (\\Flagged))', "SELECT nope", "EXAMINE INBOX",
            "CHECK", "CLOSE", "UNSELECT", "FETCH 1 FLAGS", "EXPUNGE",
        ])
        untagged, tagged = c.command("LOGOUT")
        self.assertTrue(any(u.startswith(b"* BYE") for u in untagged), untagged)
        self.assert_all_parsed(min_count=60)
        # mgimapd's mailbox names come back as they were created.
        lists = [info[1] for kind, info in self.checks if kind == "*" and info[0] == b"LIST"]
        names = {l[2] for l in lists}
        self.assertIn(mutf7("Tr\u00e4sh \"q\" \\b").encode(), names)
        self.assertIn(b"]bracket", names)

    def assert_all_parsed(self, min_count):
        self.assertGreaterEqual(len(self.checks), min_count)
        tagged = [info for kind, info in self.checks if kind == "tagged"]
        self.assertTrue(tagged)

    def fill_mailbox(self, c, messages):
        for i, msg in enumerate(messages):
            flags = ["\\Seen", "\\Answered \\Flagged", "$Label1 \\Draft", ""][i % 4]
            _, tagged = c.append("INBOX", msg, flags=flags,
                                 date=" 1-Feb-2022 10:00:00 +0100" if i % 2 else None)
            self.assertRegex(tagged, rb"^\S+ OK \[APPENDUID \d+ \d+\]", mgtest.short(msg))

    def test_fetch_tricky_messages(self):
        c = self.client()
        self.fill_mailbox(c, TRICKY)
        untagged, _ = c.ok("SELECT INBOX")
        self.check_fetches(c, len(TRICKY))
        # Flags, searches, copies, moves, expunges on them.
        self.commands(c, [
            "STORE 1:* +FLAGS (\\Seen $Custom)", "STORE 2 -FLAGS.SILENT (\\Seen)",
            "UID STORE 1:* FLAGS (\\Deleted)", "STORE 1 FLAGS ()",
            "SEARCH ALL", "SEARCH UNSEEN", "UID SEARCH SUBJECT \"inner\"",
            "SEARCH CHARSET UTF-8 SUBJECT \"quoted\"",
            "SEARCH CHARSET KOI8-R TEXT x", "SEARCH OR FROM odd BEFORE 1-Jan-2030",
            "SEARCH 1:3 NOT DELETED LARGER 10", "SEARCH HEADER X-Tab x", "SEARCH BOGUS",
            "COPY 1:2 Trash", "UID COPY 1:* Archive", "COPY 1 nope", "MOVE 3 Junk",
            "UID MOVE 4 Junk", "EXPUNGE", "UID EXPUNGE 1:*", "FETCH 1:* (FLAGS UID)",
            "FETCH 99 FLAGS", "UID FETCH 99:* FLAGS", "FETCH 1:* (BOGUS)", "FETCH * BODY[0]",
            "CLOSE",
        ])
        self.assert_all_parsed(min_count=40)

    def test_what_mail_programs_send(self):
        """Commands as Thunderbird, K-9, Apple Mail and Outlook send them
        (captured shapes), answered in well-formed responses with the
        expected content."""
        import base64
        c = self.client(login=False)
        pw = self.server.password("alice").encode()
        user = self.server.address("alice").encode()
        # Outlook: AUTHENTICATE PLAIN without SASL-IR, then the continuation.
        c.send("A1 AUTHENTICATE PLAIN\r\n")
        self.assertTrue(c.read_response().startswith(b"+"))
        c.send(base64.b64encode(b"\0" + user + b"\0" + pw) + b"\r\n")
        _, tagged = c.read_until_tagged("A1")
        self.assertRegex(tagged, rb"^A1 OK ")
        c2 = self.client(login=False)
        # A literal password (LOGIN with synchronising literals).
        c2.send(b"L1 LOGIN {%d}\r\n" % len(user))
        self.assertTrue(c2.read_response().startswith(b"+"))
        c2.send(user + b" {%d}\r\n" % len(pw))
        self.assertTrue(c2.read_response().startswith(b"+"))
        c2.send(pw + b"\r\n")
        _, tagged = c2.read_until_tagged("L1")
        self.assertRegex(tagged, rb"^L1 OK ")
        for msg in TRICKY[:5]:
            c.append("INBOX", msg)
        results = self.commands(c, [
            'ID ("name" "Thunderbird" "version" "115.0")',
            'LIST (SUBSCRIBED) "" "*" RETURN (SPECIAL-USE)',
            'LIST "" "*" RETURN (SPECIAL-USE)',
            'STATUS "INBOX" (HIGHESTMODSEQ)',
            'EXAMINE "INBOX" (CONDSTORE)',
            'SELECT "INBOX"',
            "UID fetch 1:* (FLAGS)",
            "UID fetch 10:* (FLAGS)",
            "UID fetch 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject "
            "Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type "
            "Reply-To)])",
            "UID SEARCH 1:* NOT DELETED",
            "UID FETCH 1:5 (UID INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (date subject from "
            "content-type to cc bcc reply-to message-id references in-reply-to X-K9mail-Identity)])",
            "UID FETCH 4 (UID RFC822.SIZE BODY.PEEK[]<0.4096>)",
            "UID STORE 1 +FLAGS.SILENT ($Junk NonJunk)",
            "UID STORE 2 +FLAGS (\\Seen)",
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
            "XLIST \"\" \"*\"",
            "LIST \"\" \"%/%\"",
            "UID SEARCH UID 2:4 SINCE 1-Jan-2000 NOT SEEN",
            "UID EXPUNGE 99",
        ])
        flags = [info for kind, info in c.own if kind == "*" and info[0] == b"FETCH"]
        uid10 = results["UID fetch 10:* (FLAGS)"][0]
        # 10:* with 5 messages is 5:10 in effect: the last message (RFC 3501 6.4.8).
        self.assertEqual(len(uid10), 1, uid10)
        self.assertIn(b"UID 5", uid10[0])
        tagged = {cmd: t for cmd, (u, t) in results.items()}
        self.assertRegex(tagged['STATUS "INBOX" (HIGHESTMODSEQ)'], rb"^\S+ BAD ")
        self.assertRegex(tagged["XLIST \"\" \"*\""], rb"^\S+ BAD ")
        self.assertRegex(tagged["UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)"], rb"^\S+ BAD ")
        untagged = results["UID SEARCH UID 2:4 SINCE 1-Jan-2000 NOT SEEN"][0]
        self.assertEqual(untagged, [b"* SEARCH 3 4"])
        self.assertTrue(flags)

    def test_append_and_idle(self):
        c = self.client()
        c.ok("SELECT INBOX")
        _, tagged = c.append("INBOX", TRICKY[0])
        _, tagged = c.append("INBOX", TRICKY[0], nonsync=True)
        _, tagged = c.append("nope", TRICKY[0])
        self.assertRegex(tagged, rb"^\S+ NO \[TRYCREATE\]")
        _, tagged = c.append("INBOX", TRICKY[0], flags="\\Recent")
        # IDLE: a continuation, then a delivery seen at once.
        c.send("I1 IDLE\r\n")
        r = c.read_response()
        self.assertTrue(r.startswith(b"+"), r)
        self.deliver(["alice"], TRICKY[1])
        r = c.read_response()
        self.assertRegex(r, rb"^\* \d+ EXISTS$")
        c.send("DONE\r\n")
        c.read_until_tagged("I1")
        self.check_fetches(c, None)
        self.assert_all_parsed(min_count=10)

    def test_unsolicited_responses(self):
        """What a session hears about another's changes (flags, keywords,
        expunges, appends), while idling and on NOOP, is well formed and
        consistent: sequence numbers stay within EXISTS."""
        watcher = self.client()
        actor = self.client()
        for msg in TRICKY[:5]:
            actor.append("INBOX", msg)
        untagged, _ = watcher.ok("SELECT INBOX")
        actor.ok("SELECT INBOX")
        watcher.send("W1 IDLE\r\n")
        self.assertTrue(watcher.read_response().startswith(b"+"))
        actor.ok("STORE 1:2 +FLAGS (\\Flagged $NewKeyword)")
        actor.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        actor.ok("EXPUNGE")
        actor.append("INBOX", TRICKY[6])
        actor.ok("MOVE 1 Trash")
        watcher.send("DONE\r\n")
        watcher.read_until_tagged("W1")
        watcher.ok("NOOP")
        actor.ok("STORE 1:* FLAGS (\\Seen)")
        watcher.ok("NOOP")
        watcher.ok("UID FETCH 1:* (FLAGS)")
        # Replay what the watcher heard: EXISTS/EXPUNGE bookkeeping.
        exists = 0
        for kind, info in watcher.own:
            if kind != "*":
                continue
            if info[0] == b"EXISTS":
                exists = info[1]
            elif info[0] == b"EXPUNGE":
                self.assertLessEqual(info[1], exists)
                exists -= 1
            elif info[0] == b"FETCH":
                self.assertLessEqual(info[1], exists)
        untagged, _ = watcher.ok("SEARCH ALL")
        self.assertEqual(untagged[-1], b"* SEARCH 1 2 3 4")

    def test_fetch_corpus(self):
        msgs = self.corpus()
        self.assertGreater(len(msgs), 200)
        c = self.client()
        for msg in msgs:
            c.append("INBOX", msg)
        c.ok("EXAMINE INBOX")
        self.check_fetches(c, len(msgs))

    def check_fetches(self, c, count, all_sections=True):
        """FETCH of every kind over the selected mailbox; BODYSTRUCTURE's
        sizes and line counts are those of the sections themselves, BODY
        is BODYSTRUCTURE without its extension data, and the header and
        text of each message (and each message/rfc822 part) add up to it."""
        n_before = len(self.checks)
        untagged, tagged = c.ok("FETCH 1:* (UID RFC822.SIZE INTERNALDATE FLAGS ENVELOPE "
                                "BODYSTRUCTURE BODY)")
        fetches = {info[1]: info[2] for kind, info in self.checks[n_before:]
                   if kind == "*" and info[0] == b"FETCH"}
        if count is not None:
            self.assertEqual(len(fetches), count)
        for macro in ("ALL", "FAST", "FULL"):
            c.ok(f"FETCH 1:* {macro}")
        c.ok("FETCH 1:* (BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.20> BODY.PEEK[HEADER.FIELDS (From "
             "Subject)] BODY.PEEK[HEADER.FIELDS.NOT (Received)] RFC822.HEADER)")
        for seq, items in sorted(fetches.items()):
            self.assertEqual(strip_ext(items[b"BODYSTRUCTURE"]), items[b"BODY"], f"message {seq}")
            c.ok(f"FETCH {seq} (BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[]<5.7>)")
            got = self.last_fetch()
            full = got[b"BODY[]"]
            self.assertEqual(len(full), items[b"RFC822.SIZE"], f"message {seq}")
            self.assertEqual(got[b"BODY[HEADER]"] + got[b"BODY[TEXT]"], full, f"message {seq}")
            self.assertEqual(got[b"BODY[]<5>"], full[5:12], f"message {seq}")
            if not all_sections:
                continue
            for section, node in leaves(items[b"BODYSTRUCTURE"]):
                what = f"BODY.PEEK[{section}]"
                extra = ""
                is_message = "envelope" in node
                if is_message:
                    extra = f" BODY.PEEK[{section}.HEADER] BODY.PEEK[{section}.TEXT]"
                c.ok(f"FETCH {seq} ({what} BODY.PEEK[{section}.MIME]{extra})")
                got = self.last_fetch()
                data = got[f"BODY[{section}]".encode()] or b""
                where = f"message {seq} part {section}"
                self.assertEqual(len(data), node["octets"], f"{where} size: {node}")
                if "lines" in node:
                    self.assertEqual(data.count(b"\n"), node["lines"], f"{where} lines: {data!r}")
                if is_message:
                    h = got[f"BODY[{section}.HEADER]".encode()] or b""
                    t = got[f"BODY[{section}.TEXT]".encode()] or b""
                    self.assertEqual(h + t, data, where)

    def last_fetch(self):
        """The items of the FETCH response before the last tagged one."""
        for kind, info in reversed(self.checks[:-1]):
            if kind == "*" and info[0] == b"FETCH":
                return info[2]
        self.fail("no FETCH response")


def strip_ext(node):
    """BODYSTRUCTURE's tree without the extension data: what BODY shows."""
    out = {k: v for k, v in node.items()
           if k not in ("md5", "dsp", "lang", "loc") and not (k == "params" and
                                                              node["type"] == b"MULTIPART")}
    if "parts" in node:
        out["parts"] = [strip_ext(p) for p in node["parts"]]
    if "body" in node:
        out["body"] = strip_ext(node["body"])
    return out


class StrictIMAP4(imaplib.IMAP4_SSL):
    """imaplib's client with a copy of every byte it reads from the server,
    so the test can parse the responses imaplib accepted."""

    def __init__(self, *args, **kw):
        self.wire = bytearray()
        super().__init__(*args, **kw)

    def read(self, size):
        data = super().read(size)
        self.wire += data
        return data

    def readline(self):
        line = super().readline()
        self.wire += line
        return line


def split_responses(wire):
    """The byte stream in responses, literals inlined as RawIMAP gives them."""
    out, pos = [], 0
    while pos < len(wire):
        end = wire.index(b"\r\n", pos)
        resp = bytes(wire[pos:end])
        pos = end + 2
        while True:
            m = re.search(rb"\{(\d+)\}$", resp)
            if not m:
                break
            n = int(m.group(1))
            resp += b"\r\n" + bytes(wire[pos:pos + n])
            pos += n
            end = wire.index(b"\r\n", pos)
            resp += bytes(wire[pos:end])
            pos = end + 2
        out.append(resp)
    return out


class StrictImaplib(mgtest.MgTestCase):
    """Python's imaplib through its API, the common operations of a mail
    program, each result checked; then every response it read is parsed
    strictly."""

    def test_imaplib_session(self):
        ctx = ssl.create_default_context(cafile=self.server.cert)
        c = StrictIMAP4("localhost", self.server.port, ssl_context=ctx, timeout=30)
        self.clients.append(c)
        for msg in TRICKY[:6]:
            self.deliver(["alice"], msg)
        self.assertEqual(c.login(self.server.address("alice"), self.server.password("alice"))[0],
                         "OK")
        typ, data = c.capability()
        self.assertIn(b"UIDPLUS", data[0].split())
        typ, data = c.list()
        self.assertEqual(typ, "OK")
        self.assertTrue(any(b'"/" INBOX' in d for d in data), data)
        self.assertEqual(c.create('"Arch&AOQ-iv"')[0], "OK")
        self.assertEqual(c.subscribe('"Arch&AOQ-iv"')[0], "OK")
        typ, data = c.lsub()
        self.assertIn(b'() "/" Arch&AOQ-iv', data)
        typ, data = c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT)")
        self.assertRegex(data[0], rb"^INBOX \(MESSAGES 6 UNSEEN 6 UIDNEXT 7 UIDVALIDITY \d+ RECENT 6\)$")
        typ, data = c.select("INBOX")
        self.assertEqual((typ, data), ("OK", [b"6"]))
        self.assertEqual(c.untagged_responses.get("UIDNEXT"), [b"7"])
        typ, data = c.search(None, "ALL")
        self.assertEqual(data, [b"1 2 3 4 5 6"])
        typ, data = c.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT", '"quoted"')
        self.assertEqual(data, [b"1"])
        typ, data = c.fetch("1:6", "(UID FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE)")
        self.assertEqual(typ, "OK")
        typ, data = c.fetch("6", "(BODY.PEEK[3.HEADER] BODY.PEEK[1.MIME] BODY.PEEK[2]<0.2>)")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0][1], b"From: inner@example.test\r\nSubject: inner\r\n"
                                     b"Content-Type: multipart/alternative; boundary=alt\r\n\r\n")
        typ, data = c.uid("FETCH", "1", "(RFC822)")
        self.assertTrue(data[0][1].startswith(b"Return-Path: <sender@remote.test>\r\n"))
        self.assertTrue(data[0][1].endswith(TRICKY[0]), data[0][1])
        self.assertIn(b"\\Seen", data[0][0] + (data[1] if isinstance(data[1], bytes) else b""))
        self.assertEqual(c.store("2:3", "+FLAGS", "(\\Flagged $Later)")[0], "OK")
        typ, data = c.search(None, "FLAGGED", "KEYWORD", "$Later")
        self.assertEqual(data, [b"2 3"])
        typ, data = c.copy("1:2", '"Arch&AOQ-iv"')
        self.assertEqual(typ, "OK")
        self.assertRegex(c.untagged_responses.get("COPYUID", [b""])[0] or b"",
                         rb"^\d+ (1:2|1,2) (1:2|1,2)$")
        typ, data = c.uid("MOVE", "3", "Trash")
        self.assertEqual(typ, "OK")
        typ, data = c.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(1700000000),
                             TRICKY[5])
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0], rb"^\[APPENDUID \d+ 1\]")
        self.assertEqual(c.store("1", "+FLAGS.SILENT", "(\\Deleted)")[0], "OK")
        typ, data = c.expunge()
        # imaplib collects EXPUNGE responses: MOVE's (3), then this one's.
        self.assertEqual(data, [b"3", b"1"])
        typ, data = c.search(None, "ALL")
        self.assertEqual(data, [b"1 2 3 4"])
        self.assertEqual(c.namespace()[1], [b'(("" "/")) NIL NIL'])
        self.assertEqual(c.check()[0], "OK")
        self.assertEqual(c.noop()[0], "OK")
        self.assertEqual(c.unselect()[0], "OK")
        self.assertEqual(c.select("Drafts", readonly=True)[1], [b"1"])
        typ, data = c.fetch("1", "(BODY.PEEK[] FLAGS)")
        self.assertEqual(data[0][1], TRICKY[5])
        self.assertEqual(c.rename('"Arch&AOQ-iv"', "Old")[0], "OK")
        self.assertEqual(c.delete("Old")[0], "OK")
        with self.assertRaisesRegex(imaplib.IMAP4.error, "BAD"):
            c.getquotaroot("INBOX")   # no QUOTA extension
        self.assertEqual(c.logout()[0], "BYE")
        responses = split_responses(c.wire)
        self.assertGreater(len(responses), 60)
        for r in responses:
            parse(r)


def mutf7(name):
    """RFC 3501 5.1.3 modified UTF-7."""
    out, run = [], ""

    def flush():
        if run:
            import base64
            b = base64.b64encode(run.encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
            out.append("&" + b.decode() + "-")
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            run = ""
            out.append("&-" if ch == "&" else ch)
        else:
            run += ch
    flush()
    return "".join(out)


if __name__ == "__main__":
    mgtest.main()
