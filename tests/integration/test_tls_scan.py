#!/usr/bin/env python3
"""The TLS policy (docs/tls.md) of the three public ports of a real
instance, as a scanner sees it: sslscan against 993 (IMAP, implicit TLS),
465 (submission, implicit TLS) and 25 (SMTP, STARTTLS), with exactly the
accepted protocol versions and cipher suites, our order, ECDHE everywhere
with the groups we chose, no renegotiation, no heartbeat; and what sslscan
cannot check here (its OpenSSL has no zlib): a ClientHello offering DEFLATE
gets null compression. Also ALPN: a client offering "imap" is served.

sslscan is a Debian package (deploy/install-deps.sh); without it the whole
program is skipped (exit 77).
"""
import shutil
import socket
import ssl
import subprocess
import sys
import xml.etree.ElementTree as ET

import mgsystem
from mgsystem import SystemTestCase

SSLSCAN = shutil.which("sslscan")

TLS13_SUITES = {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                "TLS_AES_128_GCM_SHA256"}
# The harness's certificate is ECDSA P-256: the ECDHE-RSA twins of these
# need an RSA certificate ([tls] alt_cert_file).
TLS12_CIPHERS = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                 "ECDHE-ECDSA-CHACHA20-POLY1305"}
PREFERRED = {"TLSv1.3": "TLS_AES_256_GCM_SHA384", "TLSv1.2": "ECDHE-ECDSA-AES128-GCM-SHA256"}
GROUPS = {"0x001d", "0x0017", "0x0018"}  # X25519, P-256, P-384


def client_hello_deflate():
    """A TLS 1.2 ClientHello offering DEFLATE before null compression
    (ECDHE-ECDSA-AES128-GCM-SHA256, X25519 and P-256)."""
    ext = (bytes.fromhex("000a00060004001d0017")     # supported groups
           + bytes.fromhex("000b00020100")           # EC point formats
           + bytes.fromhex("000d000400020403"))      # ecdsa_secp256r1_sha256
    body = (b"\x03\x03" + b"MG" * 16 + b"\x00"       # version, random, no session ID
            + bytes.fromhex("0002c02b")              # one cipher suite
            + b"\x02\x01\x00"                        # compression: DEFLATE, null
            + len(ext).to_bytes(2, "big") + ext)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_smtp_reply(sock):
    """The lines of one SMTP reply, up to the one with a space after the code."""
    buf = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed in a reply: {buf!r}")
        buf += chunk
        lines = buf.split(b"\r\n")
        if any(len(line) >= 4 and line[3:4] == b" " for line in lines[:-1]):
            return buf


class TlsScan(SystemTestCase):
    # A scanner makes a few hundred connections in a row.
    conf = {"smtp.max_connections_per_ip": "1000", "imap.max_connections_per_ip": "1000"}

    def ports(self):
        s = self.server
        return {"imaps": (s.port, False), "submissions": (s.submission_port, False),
                "smtp": (s.smtp_port, True)}

    def sslscan(self, port, starttls):
        argv = [SSLSCAN, "--xml=-", "--no-colour"]
        if starttls:
            argv.append("--starttls-smtp")
        argv.append(f"127.0.0.1:{port}")
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        start = r.stdout.find("<?xml")
        self.assertGreaterEqual(start, 0, r.stdout)
        return ET.fromstring(r.stdout[start:]).find("ssltest")

    def check_policy(self, name):
        port, starttls = self.ports()[name]
        test = self.sslscan(port, starttls)
        self.assertIsNotNone(test, f"{name}: sslscan reached nothing")

        enabled = {(p.get("type"), p.get("version")) for p in test.iter("protocol")
                   if p.get("enabled") == "1"}
        self.assertEqual(enabled, {("tls", "1.2"), ("tls", "1.3")}, name)

        ciphers = {}
        for c in test.iter("cipher"):
            ciphers.setdefault(c.get("sslversion"), {})[c.get("cipher")] = c
        self.assertEqual(set(ciphers), {"TLSv1.2", "TLSv1.3"}, name)
        self.assertEqual(set(ciphers["TLSv1.3"]), TLS13_SUITES, name)
        self.assertEqual(set(ciphers["TLSv1.2"]), TLS12_CIPHERS, name)
        for version, by_name in ciphers.items():
            preferred = [n for n, c in by_name.items() if c.get("status") == "preferred"]
            self.assertEqual(preferred, [PREFERRED[version]], f"{name} {version}: server order")
            for n, c in by_name.items():
                # Forward secrecy: an ephemeral elliptic-curve key every time.
                self.assertIsNotNone(c.get("curve"), f"{name}: {n} without ECDHE")
                self.assertIsNone(c.get("dhebits"), f"{name}: {n} with finite-field DH")

        groups = {}
        for g in test.iter("group"):
            groups.setdefault(g.get("sslversion"), set()).add(g.get("id").lower())
        self.assertEqual(groups.get("TLSv1.3"), GROUPS, name)
        # sslscan offers one group per TLS 1.2 handshake, and an ECDSA
        # P-256 certificate needs P-256 among them: it finds P-256 alone.
        self.assertTrue(groups.get("TLSv1.2") and groups["TLSv1.2"] <= GROUPS, name)

        reneg = test.find("renegotiation")
        self.assertIsNotNone(reneg, name)
        self.assertEqual(reneg.get("supported"), "0", f"{name}: renegotiation")
        for hb in test.iter("heartbleed"):
            self.assertEqual(hb.get("vulnerable"), "0", f"{name}: heartbleed")
        for comp in test.iter("compression"):
            self.assertEqual(comp.get("supported"), "0", f"{name}: compression")

    def test_imaps(self):
        self.check_policy("imaps")

    def test_submissions(self):
        self.check_policy("submissions")

    def test_smtp_starttls(self):
        self.check_policy("smtp")

    def test_no_compression(self):
        for name, (port, starttls) in self.ports().items():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                if starttls:
                    read_smtp_reply(sock)
                    sock.sendall(b"EHLO scanner.example.test\r\n")
                    self.assertIn(b"STARTTLS", read_smtp_reply(sock))
                    sock.sendall(b"STARTTLS\r\n")
                    self.assertTrue(read_smtp_reply(sock).startswith(b"220"))
                sock.sendall(client_hello_deflate())
                header = read_exactly(sock, 5)
                self.assertEqual(header[0], 0x16, f"{name}: not a handshake record")
                record = read_exactly(sock, int.from_bytes(header[3:5], "big"))
                self.assertEqual(record[0], 0x02, f"{name}: not a ServerHello")
                at = 4 + 2 + 32
                at += 1 + record[at]
                self.assertEqual(record[at:at + 2], b"\xc0\x2b", name)
                self.assertEqual(record[at + 2], 0, f"{name}: compression method")

    def test_alpn(self):
        """A client offering "imap" on 993 gets it; one offering only other
        protocols (an HTTPS client sent here: ALPACA) is refused; one
        without ALPN is served. The SMTP ports ignore ALPN."""
        ctx = self.server.client_context()
        ctx.set_alpn_protocols(["imap"])
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                self.assertEqual(tls.selected_alpn_protocol(), "imap")
                self.assertTrue(tls.recv(1024).startswith(b"* OK"))
        ctx = self.server.client_context()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as raw:
            with self.assertRaises(ssl.SSLError):
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.recv(1024)
        ctx = self.server.client_context()
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                self.assertIsNone(tls.selected_alpn_protocol())
                self.assertTrue(tls.recv(1024).startswith(b"* OK"))
        ctx = self.server.client_context()
        ctx.set_alpn_protocols(["smtp", "h2"])
        with socket.create_connection(("127.0.0.1", self.server.submission_port),
                                      timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                self.assertIsNone(tls.selected_alpn_protocol())
                self.assertTrue(tls.recv(1024).startswith(b"220"))


if __name__ == "__main__":
    if SSLSCAN is None:
        print("sslscan is missing (apt-get install sslscan): skipped", file=sys.stderr)
        sys.exit(77)
    mgsystem.main()
