"""A stand-in for our own spam filter, as a milter: ``X-Spam-Flag: YES`` on prizes.

It plays rspamd or spamass-milter in front of srsfwd in ``smtpd_milters`` (docs/postfix.md
part 2, §5): a message whose Subject mentions a PRIZE gets the header; others nothing.
Built on srsfwd's own pure codec, one thread per connection.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from srsfwd.protocols.milter import (
    ActionFlag,
    AddHeader,
    Continue,
    EndOfMessage,
    MilterConnection,
    Negotiation,
    OptionNegotiation,
    Quit,
)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        codec = MilterConnection(Negotiation(actions=ActionFlag.ADDHDRS))
        while data := self.request.recv(65536):
            for event in codec.feed(data):
                if isinstance(event, OptionNegotiation) and codec.options_reply is not None:
                    self.request.sendall(codec.send(codec.options_reply))
                elif isinstance(event, EndOfMessage):
                    message = codec.message
                    prize = message is not None and any(
                        h.name.lower() == "subject" and b"PRIZE" in h.value for h in message.headers
                    )
                    if prize:
                        self.request.sendall(codec.send(AddHeader("X-Spam-Flag", b" YES")))
                    self.request.sendall(codec.send(Continue()))
                elif isinstance(event, Quit):
                    return
                elif codec.needs_reply(event):
                    self.request.sendall(codec.send(Continue()))


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


@contextmanager
def spam_milter(path: Path) -> Iterator[Path]:
    """The filter listening on the unix socket ``path`` (mode 0666)."""
    server = _Server(str(path), _Handler)
    path.chmod(0o666)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)
