"""Who lives where in the mail lab: one loopback address per component.

127.0.0.0/8 is all loopback on Linux, so each component gets an address of its own in
127.12.0.0/16 (away from the 127.0.0.x other tests use) and the standard ports. The
pools' addresses stand for the forwarder's public outbound addresses.
"""

from __future__ import annotations

DNS = "127.12.0.53"  # Knot DNS, authoritative for every lab zone, port 53
SENDER = "127.12.0.10"  # the senders' Postfix (MX of the sender domains too)
OPENDKIM = "127.12.0.11"  # the senders' OpenDKIM milter
FORWARDER = "127.12.0.20"  # the forwarder's public Postfix (MX of example.net, fwd.example.net)
FORWARDER_LOOP = "127.12.0.21"  # its after-queue smtpd running the srsfwd milter
SRSFWD = "127.12.0.22"  # srsfwd serve: milter and socketmap
NORMAL_POOL = "127.12.0.25"
RELAY_POOL = "127.12.0.40"
HIGH_RISK_POOL = "127.12.0.50"
RECEIVER = "127.12.0.30"  # the receiving Postfix (MX of rcv.example)
RSPAMD = "127.12.0.31"  # rspamd's proxy worker, a milter of the receiver

LOOP_PORT = 10026
SOCKETMAP_PORT = 10003
MILTER_PORT = 10004
OPENDKIM_PORT = 8891
RSPAMD_PORT = 11332

SRS_DOMAIN = "fwd.example.net"
USERS_DOMAIN = "example.net"
RECEIVER_DOMAIN = "rcv.example"
