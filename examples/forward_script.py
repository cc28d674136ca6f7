#!/usr/bin/env python3
"""A forwarding script that embeds srsfwd: a pipe target for an alias.

Install it as the delivery command of an alias or a Postfix pipe transport, for example in
/etc/aliases:

    bob: "|/usr/local/bin/forward_script.py --to bob@receiver.example"

The MTA hands it the message on standard input and the envelope in the environment
(Postfix's pipe(8) and local(8) set SENDER, CLIENT_ADDRESS and CLIENT_HELO). The script
forwards the message through the pool srsfwd chooses, by SMTP from that pool's address,
and answers the MTA with sysexits codes: 0 done, 67 refused (a bounce goes back),
75 try again later (the MTA keeps the message queued). Nothing is lost either way.

Try it on the shipped example (no network for the decision; the SMTP hand-over needs a
server on 127.0.0.1:2525, e.g. `python -m aiosmtpd -n -l 127.0.0.1:2525`):

    SENDER=alice@example.org CLIENT_ADDRESS=198.51.100.25 CLIENT_HELO=mail.example.org \\
        examples/forward_script.py --config examples/srsfwd.toml --to bob@receiver.example \\
        --relay 127.0.0.1:2525 < examples/messages/normal.eml
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from srsfwd.config import load_config
from srsfwd.delivery import deliver_smtp
from srsfwd.errors import SrsfwdError
from srsfwd.forward import Forwarder
from srsfwd.hostport import parse_host_port

EX_OK, EX_NOPERM, EX_TEMPFAIL = 0, 67, 75


def main() -> int:
    parser = argparse.ArgumentParser(description="Forward one message with srsfwd.")
    parser.add_argument("--config", type=Path, default=Path("/etc/srsfwd/srsfwd.toml"))
    parser.add_argument("--to", action="append", required=True, help="forward to (repeatable)")
    parser.add_argument("--relay", default="127.0.0.1:25", help="the MTA that sends it out")
    args = parser.parse_args()
    try:
        # Build once per process: keys, secrets, DNS resolver and limits store.
        forwarder = Forwarder.from_config(load_config(args.config))
    except SrsfwdError as exc:
        print(f"forward_script: {exc}", file=sys.stderr)
        return EX_TEMPFAIL  # a broken configuration must not bounce mail
    message = sys.stdin.buffer.read()
    result = forwarder.forward(
        message,
        client_ip=os.environ.get("CLIENT_ADDRESS", "127.0.0.1"),
        helo=os.environ.get("CLIENT_HELO", "localhost"),
        mail_from=os.environ.get("SENDER", ""),
        rcpts=args.to,
    )
    print(
        f"forward_script: {result.action} pool={result.pool} srs={result.srs} "
        f"reasons={','.join(result.reasons)}",
        file=sys.stderr,
    )
    if result.message is None:
        print(result.smtp_reply, file=sys.stderr)
        return EX_TEMPFAIL if result.action == "tempfail" else EX_NOPERM
    host, port = parse_host_port(args.relay, default_port=25)
    try:
        deliver_smtp(
            result.message,
            mail_from=result.mail_from,
            rcpts=result.rcpts,
            host=host,
            port=port,
            source_address=result.source_address,
            helo=result.helo,
        )
    except SrsfwdError as exc:
        print(f"forward_script: {exc}", file=sys.stderr)
        with contextlib.suppress(SrsfwdError):
            forwarder.give_back(result)  # not sent: it does not count against the limits
        return EX_TEMPFAIL if exc.temporary else EX_NOPERM
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
