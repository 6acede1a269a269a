#!/usr/bin/python3
"""Perl's Mail::IMAPClient (libmail-imapclient-perl) over IMAPS, the test
certificate trusted (SSL_verify_mode peer, SSL_ca_file): a script doing
what scripts built on it do (login, folders, select, search, BODYSTRUCTURE
parsed by Mail::IMAPClient::BodyStructure, ENVELOPE, flags, copy, move,
append, delete + expunge, status, rename) prints what it saw as JSON; the
test checks it against the messages and against the server's state."""
import datetime
import json
import os
import shutil
import subprocess
import unittest

import mgtest
from mgtest import fetch_items

PERL = shutil.which("perl")


def parse_internaldate(text):
    return datetime.datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z")


def has_module():
    if PERL is None:
        return False
    r = subprocess.run([PERL, "-MMail::IMAPClient", "-MIO::Socket::SSL", "-e", "1"],
                       capture_output=True)
    return r.returncode == 0


SCRIPT = r'''
use strict;
use warnings;
use Mail::IMAPClient;
use Mail::IMAPClient::BodyStructure;
use IO::Socket::SSL qw(SSL_VERIFY_PEER);
use JSON::PP;

my ($port, $ca, $user, $pass, $append_file) = @ARGV;
my %out;
sub check { my ($what, $ok) = @_; die "$what failed: $@\n" unless $ok; return $ok; }

my $imap = Mail::IMAPClient->new(
    Server => 'localhost', Port => $port,
    Ssl => [ SSL_verify_mode => SSL_VERIFY_PEER, SSL_ca_file => $ca,
             SSL_verifycn_name => 'localhost', SSL_verifycn_scheme => 'imap' ],
    User => $user, Password => $pass, Uid => 1, Peek => 1, Timeout => 60,
    Debug => $ENV{MG_IMAPCLIENT_DEBUG} ? 1 : 0, Debug_fh => *STDERR,
) or die "connect/login: $@\n";
check("login", $imap->IsAuthenticated);
$out{capability} = [ $imap->capability ];
$out{has_uidplus} = $imap->has_capability('UIDPLUS') ? 1 : 0;
$out{separator} = $imap->separator;

check("create", $imap->create('Perl/Sub'));
check("subscribe", $imap->subscribe('Perl/Sub'));
$out{folders} = [ sort @{ $imap->folders } ];
$out{subscribed} = [ sort @{ $imap->subscribed } ];
$out{exists_sub} = $imap->exists('Perl/Sub') ? 1 : 0;
$out{exists_none} = $imap->exists('Nope') ? 1 : 0;
$out{special} = $imap->folders_hash ? { map { $_->{name} => $_->{attrs} } @{ $imap->folders_hash } } : {};

check("select", $imap->select('INBOX'));
$out{message_count} = $imap->message_count + 0;
$out{uids} = [ map { $_ + 0 } sort { $a <=> $b } @{ $imap->messages } ];
$out{search_subject} = [ map { $_ + 0 } $imap->search('SUBJECT', 'multi part') ];
$out{search_unseen} = [ map { $_ + 0 } sort { $a <=> $b } @{ $imap->unseen } ];
$out{search_from} = [ map { $_ + 0 } $imap->search('FROM', 'carol@example.test') ];

my ($mp) = @{ $out{search_subject} };
my $bs = $imap->get_bodystructure($mp) or die "bodystructure: $@\n";
$out{bs_type} = $bs->bodytype . '/' . $bs->bodysubtype;
$out{bs_parts} = [ $bs->parts ];
my @leaves;
for my $part ($bs->bodystructure) {
    next if lc($part->bodytype) eq 'multipart';
    push @leaves, { part => $part->id, type => lc($part->bodytype . '/' . $part->bodysubtype),
                    enc => lc($part->bodyenc // ''), size => $part->bodysize + 0,
                    params => $part->bodyparms };
}
$out{bs_leaves} = \@leaves;
my $env = $imap->get_envelope($mp) or die "envelope: $@\n";
$out{env_subject} = $env->subject;
$out{env_from} = [ $env->from_addresses ];
$out{env_to} = [ $env->to_addresses ];
$out{part1} = $imap->bodypart_string($mp, '1');
$out{message_string} = $imap->message_string($mp);
$out{size} = $imap->size($mp) + 0;
$out{internaldate} = $imap->internaldate($mp);
$out{subject_header} = $imap->get_header($mp, 'Subject');

# Flags.
check("set_flag", $imap->set_flag('Flagged', $mp));
check("see", $imap->see($mp));
$out{flags_after_set} = [ sort @{ $imap->flags($mp) } ];
check("unset_flag", $imap->unset_flag('Flagged', $mp));
check("keyword", $imap->set_flag('$Work', $mp));
$out{flags_after_unset} = [ sort @{ $imap->flags($mp) } ];
$out{search_seen} = [ map { $_ + 0 } $imap->search('SEEN') ];

# Copy and move (UIDPLUS gives the new UIDs).
my $first = $out{uids}[0];
my $copied = $imap->copy('Perl/Sub', $first);
check("copy", defined $copied);
$out{copy_uid} = $copied + 0;
my $moved = $imap->move('Trash', $out{uids}[1]);
check("move", defined $moved);
$out{move_uid} = $moved + 0;
$out{after_move_count} = $imap->message_count('INBOX') + 0;

# Append, from a file (bytes as they are) and from a string.
open(my $fh, '<:raw', $append_file) or die $!;
my $data = do { local $/; <$fh> };
close $fh;
my $auid = $imap->append_string('Perl/Sub', $data, '\\Seen \\Draft', '01-Feb-2022 10:00:00 +0100');
check("append_string", defined $auid);
$out{append_uid} = $auid + 0;
my $auid2 = $imap->append_file('Perl/Sub', $append_file);
check("append_file", defined $auid2);
$out{append_uid2} = $auid2 + 0;

# Delete + expunge in INBOX.
check("select again", $imap->select('INBOX'));
check("delete_message", $imap->delete_message($out{uids}[2]));
check("expunge", $imap->expunge);
$out{after_expunge} = [ map { $_ + 0 } sort { $a <=> $b } @{ $imap->messages } ];

# IDLE: another connection appends; the idling one hears EXISTS.
my $other = Mail::IMAPClient->new(
    Server => 'localhost', Port => $port,
    Ssl => [ SSL_verify_mode => SSL_VERIFY_PEER, SSL_ca_file => $ca ],
    User => $user, Password => $pass, Uid => 1, Timeout => 60,
) or die "second connection: $@\n";
my $idle_tag = $imap->idle or die "idle: $@\n";
check("append while idling", defined $other->append_string('INBOX', $data));
my @heard;
for (1 .. 50) {
    my $got = $imap->idle_data(0.2);
    push @heard, @$got if $got;
    last if grep { /^\* \d+ EXISTS/ } @heard;
}
check("done", defined $imap->done($idle_tag));
$out{idle_heard} = [ map { s/\r?\n$//r } @heard ];
$other->logout;

# Status, rename, delete.
my @st = $imap->status('Perl/Sub', 'MESSAGES', 'UNSEEN', 'UIDNEXT');
$out{status} = join(' ', @st);
$out{sub_count} = $imap->message_count('Perl/Sub') + 0;
check("select sub", $imap->examine('Perl/Sub'));
$out{sub_uids} = [ map { $_ + 0 } sort { $a <=> $b } @{ $imap->messages } ];
$out{appended_back} = $imap->message_string($auid);
check("close", $imap->close);
check("rename", $imap->rename('Perl/Sub', 'Perl/Renamed'));
check("create tmp", $imap->create('Perl/Gone'));
check("delete", $imap->delete('Perl/Gone'));
$out{folders_end} = [ sort @{ $imap->folders } ];
$out{last_error_ok} = defined $imap->LastError ? $imap->LastError : '';
check("logout", $imap->logout);
print JSON::PP->new->canonical->ascii->encode(\%out);
'''


@unittest.skipUnless(has_module(), "Mail::IMAPClient (libmail-imapclient-perl) or "
                                   "IO::Socket::SSL (libio-socket-ssl-perl) is not installed")
class TestMailIMAPClient(mgtest.MgTestCase):

    def server_state(self):
        c = self.raw()
        state = {}
        for box in ("INBOX", "Trash", "Perl/Renamed"):
            untagged, _ = c.ok(f'EXAMINE "{box}"')
            msgs = []
            if not any(l == b"* 0 EXISTS" for l in untagged):
                untagged, _ = c.ok("FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])")
                for line in untagged:
                    items = fetch_items(line)[1]
                    msgs.append((int(items[b"UID"]),
                                 sorted(f.decode() for f in items[b"FLAGS"] if f != b"\\Recent"),
                                 items[b"INTERNALDATE"].decode(), items[b"BODY[]"]))
            state[box] = msgs
        c.close()
        return state

    def test_script(self):
        multipart = (b"From: Carol Example <carol@example.test>\r\nTo: alice@example.test, "
                     b"bob@example.test\r\nSubject: multi part\r\nMIME-Version: 1.0\r\n"
                     b"Date: Tue, 1 Feb 2022 10:00:00 +0100\r\nMessage-ID: <mp@example.test>\r\n"
                     b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
                     b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe, Alice.\r\n"
                     b"--XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
                     b"Content-Transfer-Encoding: base64\r\n"
                     b"Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\n"
                     b"JVBERi0xLjQK\r\n--XX--\r\n")
        for i in range(3):
            self.deliver(["alice"], mgtest.make_message(subject=f"plain {i}"))
        self.deliver(["alice"], multipart)
        append_msg = mgtest.make_message(subject="appended by perl",
                                         body="line\r\n.dot\r\n\r\nend\r\n")
        path = os.path.join(self.tmp, "append.eml")
        with open(path, "wb") as f:
            f.write(append_msg)
        script = os.path.join(self.tmp, "client.pl")
        with open(script, "w") as f:
            f.write(SCRIPT)
        r = subprocess.run([PERL, script, str(self.server.port), self.server.cert,
                            self.server.address("alice"), self.server.password("alice"), path],
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"{r.stdout!r}\n{r.stderr.decode(errors='replace')}\n"
                                          f"{self.server.log_tail()}")
        # Mail::IMAPClient warns about responses it cannot parse.
        self.assertEqual(r.stderr, b"", r.stderr)
        out = json.loads(r.stdout)

        self.assertIn("IMAP4REV1", [c.upper() for c in out["capability"]])
        self.assertEqual(out["has_uidplus"], 1)
        self.assertEqual(out["separator"], "/")
        self.assertEqual(out["folders"], sorted(["INBOX", "Archive", "Drafts", "Junk", "Sent",
                                                 "Trash", "Perl", "Perl/Sub"]))
        self.assertIn("Perl/Sub", out["subscribed"])
        self.assertEqual((out["exists_sub"], out["exists_none"]), (1, 0))
        self.assertIn("\\Sent", out["special"]["Sent"])
        self.assertEqual(out["message_count"], 4)
        self.assertEqual(out["uids"], [1, 2, 3, 4])
        self.assertEqual(out["search_subject"], [4])
        self.assertEqual(out["search_unseen"], [1, 2, 3, 4])
        self.assertEqual(out["search_from"], [4])

        self.assertEqual(out["bs_type"].lower(), "multipart/mixed")
        self.assertEqual([str(p) for p in out["bs_parts"]], ["1", "2"])
        leaves = {str(l["part"]): l for l in out["bs_leaves"]}
        self.assertEqual(leaves["1"]["type"], "text/plain")
        self.assertEqual(leaves["1"]["enc"], "8bit")
        # The CR LF before a boundary belongs to the boundary (RFC 2046 5.1.1).
        self.assertEqual(leaves["1"]["size"], len("Grüße, Alice.".encode()))
        self.assertEqual(leaves["2"]["type"], "application/pdf")
        self.assertEqual(leaves["2"]["enc"], "base64")
        self.assertEqual(leaves["2"]["size"], len(b"JVBERi0xLjQK"))
        self.assertEqual(out["env_subject"], "multi part")
        self.assertEqual(out["env_from"], ["Carol Example <carol@example.test>"])
        self.assertEqual(out["env_to"], ["<alice@example.test>", "<bob@example.test>"])
        # Text comes back through JSON as Latin-1 code points of the bytes.
        self.assertEqual(out["part1"].encode("latin-1"), "Grüße, Alice.".encode())
        stored = self.server_state()
        inbox = {m[0]: m for m in stored["INBOX"]}
        self.assertEqual(out["message_string"].encode("latin-1"), inbox[4][3])
        self.assertEqual(out["size"], len(inbox[4][3]))
        self.assertEqual(out["internaldate"], inbox[4][2])
        self.assertEqual(out["subject_header"], "multi part")

        # This session is the first to see the messages: \Recent too.
        self.assertEqual(out["flags_after_set"], ["\\Flagged", "\\Recent", "\\Seen"])
        self.assertEqual(out["flags_after_unset"], ["$Work", "\\Recent", "\\Seen"])
        self.assertEqual(out["search_seen"], [4])

        self.assertEqual(out["copy_uid"], 1)
        self.assertEqual(out["move_uid"], 1)
        # Mail::IMAPClient 3.43's move() is COPY + \Deleted (no MOVE, no
        # expunge): the original stays until the EXPUNGE below.
        self.assertEqual(out["after_move_count"], 4)
        self.assertEqual((out["append_uid"], out["append_uid2"]), (2, 3))
        self.assertEqual(out["after_expunge"], [1, 4])
        self.assertIn("* 3 EXISTS", out["idle_heard"])
        # status() returns the transaction's lines.
        self.assertIn("* STATUS Perl/Sub (MESSAGES 3 UNSEEN 2 UIDNEXT 4)\r\n", out["status"])
        self.assertEqual(out["sub_count"], 3)
        self.assertEqual(out["sub_uids"], [1, 2, 3])
        self.assertEqual(out["appended_back"].encode("latin-1"), append_msg)
        self.assertNotIn("Perl/Gone", out["folders_end"])
        self.assertIn("Perl/Renamed", out["folders_end"])
        self.assertNotIn("Perl/Sub", out["folders_end"])

        # What the server holds now.
        self.assertEqual(sorted(inbox), [1, 4, 5])
        self.assertEqual(inbox[5][3], append_msg)
        self.assertEqual(inbox[4][1], ["$Work", "\\Seen"])
        self.assertEqual([m[0] for m in stored["Trash"]], [1])
        self.assertIn(b"Subject: plain 1", stored["Trash"][0][3])
        sub = stored["Perl/Renamed"]
        self.assertEqual([m[0] for m in sub], [1, 2, 3])
        self.assertIn(b"Subject: plain 0", sub[0][3])
        self.assertEqual(sub[1][3], append_msg)
        self.assertEqual(sub[1][1], ["\\Draft", "\\Seen"])
        # The same instant (mgimapd answers in UTC).
        self.assertEqual(parse_internaldate(sub[1][2]),
                         parse_internaldate(" 1-Feb-2022 10:00:00 +0100"))
        self.assertEqual(sub[2][3], append_msg)


if __name__ == "__main__":
    mgtest.main()
