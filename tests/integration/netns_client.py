#!/usr/bin/python3
"""Clients that test_scaleout.py runs inside a network namespace
(`ip netns exec NS python3 netns_client.py COMMAND ...`); each prints one
JSON object on standard output.

  submit HOST PORT USER PASSWORD RCPT PREFIX COUNT SESSIONS
      SMTP over implicit TLS with AUTH PLAIN: COUNT messages with subjects
      PREFIX-0..PREFIX-(COUNT-1) over SESSIONS parallel connections;
      {"accepted": [subjects], "refused": {subject: reply}}
  subjects HOST PORT USER PASSWORD
      IMAPS: the Subject of every INBOX message; {"subjects": [...]}
  probe HOST PORT CERT KEY CA
      TLS with the given client certificate (CERT "-" for none), then what
      the server says first; {"banner": "..."} or {"error": "..."}
"""
import imaplib
import json
import smtplib
import socket
import ssl
import sys
import threading


def insecure_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def submit(host, port, user, password, rcpt, prefix, count, sessions):
    count, sessions = int(count), int(sessions)
    accepted, refused = [], {}
    lock = threading.Lock()
    todo = list(range(count))

    def worker():
        client = None
        while True:
            with lock:
                if not todo:
                    break
                n = todo.pop(0)
            subject = f"{prefix}-{n}"
            msg = (f"From: {user}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
                   f"Message-ID: <{subject}@scaleout.test>\r\n\r\nbody {n}\r\n")
            try:
                if client is None:
                    client = smtplib.SMTP_SSL(host, int(port), context=insecure_context(),
                                              timeout=30)
                    client.login(user, password)
                client.sendmail(user, [rcpt], msg.encode())
                with lock:
                    accepted.append(subject)
            except (smtplib.SMTPException, OSError) as e:
                with lock:
                    refused[subject] = str(e)
                try:
                    if client is not None:
                        client.close()
                except OSError:
                    pass
                client = None
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                pass

    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"accepted": accepted, "refused": refused}


def subjects(host, port, user, password):
    imap = imaplib.IMAP4_SSL(host, int(port), ssl_context=insecure_context(), timeout=30)
    imap.login(user, password)
    imap.select("INBOX", readonly=True)
    out = []
    typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    if typ == "OK":
        for item in data:
            if isinstance(item, tuple):
                line = item[1].decode().strip()
                out.append(line.split(":", 1)[1].strip() if ":" in line else line)
    imap.logout()
    return {"subjects": out}


def probe(host, port, cert, key, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = False
    if cert != "-":
        ctx.load_cert_chain(cert, key)
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with ctx.wrap_socket(raw) as tls:
                tls.settimeout(5)
                # The auth service speaks only when spoken to; LMTP greets.
                tls.sendall(b"HELLO\t1\tprobe\nDOMAIN\t1\texample.test\n")
                data = tls.recv(4096)
                return {"banner": data.decode(errors="replace")}
    except (OSError, ssl.SSLError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    commands = {"submit": submit, "subjects": subjects, "probe": probe}
    result = commands[sys.argv[1]](*sys.argv[2:])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
