"""Helpers for the daemon tests: an in-process daemon, async and blocking clients."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from srsfwd import FrozenClock, SRSRewriter
from srsfwd.protocols import socketmap, tcptable
from srsfwd.protocols.milter import (
    AddHeader,
    ChangeHeader,
    Command,
    Connect,
    DefineMacros,
    EndOfMessage,
    Event,
    Family,
    Helo,
    InsertHeader,
    MilterReply,
    OptionsReply,
    Progress,
    Rcpt,
)
from srsfwd.protocols.milter.mta import MtaClient
from srsfwd.protocols.milter.replies import FINAL_REPLIES
from srsfwd.servers.runtime import Daemon, Loaded
from srsfwd.servers.settings import Endpoint, ServeSettings
from srsfwd.srsmaps import SRSMaps
from tests.ports import free_port

NEW_YEAR_2020 = 1577836860


def postsrsd_maps(secret: str = "tops3cr3t", now: float = NEW_YEAR_2020) -> SRSMaps:  # noqa: S107
    """postsrsd's black-box set-up: domain example.com, secret tops3cr3t, 2020-01-01."""
    return SRSMaps(
        SRSRewriter([secret], "example.com", local_domains=["example.com"], clock=FrozenClock(now))
    )


def settings_for(tmp: Path, **changes: Any) -> ServeSettings:
    """A socketmap on a unix socket in ``tmp`` plus tcp_table ports, with ``changes``."""
    base = ServeSettings(
        socketmap=(Endpoint(path=str(tmp / "srs.sock")),),
        tcp_table_forward=(Endpoint(host="127.0.0.1", port=free_port()),),
        tcp_table_reverse=(Endpoint(host="127.0.0.1", port=free_port()),),
    )
    return replace(base, **changes)


class Notes:
    """Collects sd_notify messages; ``ready`` is set on READY=1."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.ready = asyncio.Event()

    def __call__(self, state: str) -> None:
        self.messages.append(state)
        if state.startswith("READY=1"):
            self.ready.set()


#: Whether ``running`` serves lookups in a thread per connection (tests of that mode
#: set it for the daemon's scenarios).
LOOKUP_THREADS = False


@asynccontextmanager
async def running(loader: Callable[[], Loaded]) -> AsyncIterator[Daemon]:
    """The daemon serving in this event loop until the block ends."""
    notes = Notes()
    daemon = Daemon(loader, notify=notes, lookup_threads=LOOKUP_THREADS)
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(notes.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED, timeout=10)
    if task.done():
        ready.cancel()
        task.result()  # raises the start-up error
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 10)


class SocketmapClient:
    """An asyncio socketmap client on one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._decoder = socketmap.ReplyDecoder()
        self._pending: list[socketmap.SocketmapReply] = []

    @classmethod
    async def open(cls, endpoint: Endpoint) -> SocketmapClient:
        if endpoint.path is not None:
            return cls(*await asyncio.open_unix_connection(endpoint.path))
        return cls(*await asyncio.open_connection(endpoint.host, endpoint.port))

    async def ask(self, line: str) -> socketmap.SocketmapReply:
        name, _, key = line.partition(" ")
        self.writer.write(socketmap.encode_request(socketmap.Request(name, key)))
        return await self.reply()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, wait: float = 5) -> socketmap.SocketmapReply:
        while not self._pending:
            data = await asyncio.wait_for(self.reader.read(65536), wait)
            if not data:
                raise ConnectionError("closed by the server")
            self._pending += self._decoder.feed(data)
        return self._pending.pop(0)

    async def closed(self, wait: float = 5) -> bool:
        """Whether the server closes the connection (EOF) within ``wait`` seconds."""
        try:
            while data := await asyncio.wait_for(self.reader.read(65536), wait):
                self._pending += self._decoder.feed(data)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def close(self) -> None:
        self.writer.close()


class TcpTableClient:
    """An asyncio tcp_table client on one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, endpoint: Endpoint) -> TcpTableClient:
        return cls(*await asyncio.open_connection(endpoint.host, endpoint.port))

    async def ask(self, key: str) -> tcptable.TcpTableReply:
        self.writer.write(tcptable.encode_request(tcptable.Request(key)))
        return await self.reply()

    async def reply(self, wait: float = 5) -> tcptable.TcpTableReply:
        line = await asyncio.wait_for(self.reader.readline(), wait)
        if not line:
            raise ConnectionError("closed by the server")
        (reply,) = tcptable.ReplyDecoder().feed(line)
        return reply

    def close(self) -> None:
        self.writer.close()


class Notifications:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(10)

    def expect(self, word: str) -> str:
        while True:
            message = self.sock.recv(4096).decode()
            if word in message.split("\n"):
                return message

    def close(self) -> None:
        self.sock.close()


@contextmanager
def serve_process(
    *args: str, tmp: Path, checkout: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], Notifications]]:
    """``srsfwd serve ARGS`` as systemd runs it, once it has said READY=1; with
    ``checkout``, the srsfwd of that source tree (benchmarks compare two), run from
    there: ``python -m`` puts the working directory ahead of ``PYTHONPATH``."""
    notes = Notifications(tmp / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notes.path)}
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    process = subprocess.Popen(
        [sys.executable, "-m", "srsfwd", "serve", *args],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=checkout,
    )
    try:
        notes.expect("READY=1")
        yield process, notes
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stderr:
            process.stderr.close()
        notes.close()


@dataclass
class MilterOutcome:
    """What a milter answered for one transaction: RCPT replies, actions, the final reply."""

    rcpt_replies: list[MilterReply]
    actions: list[MilterReply]
    final: MilterReply | None


def split_message(message: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """Headers (name, value as Postfix sends it with HDR_LEADSPC) and the CRLF body."""
    data = message.replace(b"\r\n", b"\n")
    head, _, body = data.partition(b"\n\n")
    headers: list[tuple[str, bytes]] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and headers:
            last, value = headers[-1]
            headers[-1] = (last, value + b"\n" + line)
        elif line:
            raw, _, value = line.partition(b":")
            headers.append((raw.decode("ascii"), value))
    return headers, body.replace(b"\n", b"\r\n")


class MilterClient:
    """Speaks to a milter as Postfix does, over a real socket, with the pure MTA side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.mta = MtaClient()
        self._pending: list[MilterReply] = []

    @classmethod
    async def open(cls, endpoint: Endpoint) -> MilterClient:
        if endpoint.path is not None:
            return cls(*await asyncio.open_unix_connection(endpoint.path))
        return cls(*await asyncio.open_connection(endpoint.host, endpoint.port))

    async def reply(self, wait: float = 30) -> MilterReply:
        while not self._pending:
            data = await asyncio.wait_for(self.reader.read(65536), wait)
            if not data:
                raise ConnectionError("closed by the milter")
            self._pending += self.mta.receive(data)
        return self._pending.pop(0)

    async def write(self, *events: Event) -> None:
        self.writer.write(self.mta.encode(*events))
        await self.writer.drain()

    async def final(self, wait: float = 30) -> tuple[list[MilterReply], MilterReply]:
        """Actions, then the final reply (PROGRESS skipped)."""
        actions: list[MilterReply] = []
        while True:
            reply = await self.reply(wait)
            if isinstance(reply, Progress):
                continue
            if isinstance(reply, FINAL_REPLIES):
                return actions, reply
            actions.append(reply)

    async def start(self, client_ip: str = "198.51.100.25", helo: str = "mail.example.org") -> None:
        """OPTNEG, CONNECT and HELO."""
        await self.write(self.mta.offer)
        assert isinstance(await self.reply(), OptionsReply)
        await self.write(
            DefineMacros(Command.CONNECT, (("{client_addr}", client_ip), ("j", "mx.test"))),
            Connect("client.test", Family.INET, 25, client_ip),
            Helo(helo),
        )

    async def transaction(
        self,
        sender: str,
        rcpts: Sequence[str],
        message: bytes,
        wait: float = 30,
        *,
        mail_macros: Sequence[tuple[str, str]] = (),
    ) -> MilterOutcome:
        """One message, as Postfix sends it (``mail_macros`` at MAIL, e.g. a SASL login's
        ``{auth_authen}``); stops at the first refused RCPT set."""
        headers, body = split_message(message)
        macros: dict[Command, tuple[tuple[str, str], ...]] = {Command.RCPT: (("i", "QID1"),)}
        if mail_macros:
            macros[Command.MAIL] = tuple(mail_macros)
        events = self.mta.message(sender, rcpts, headers, body, macros=macros)
        outcome = MilterOutcome([], [], None)
        for event in events:
            await self.write(event)
            if self.mta.sends(event) and self.mta.expects_reply(event):
                actions, final = await self.final(wait)
                if isinstance(event, Rcpt):
                    outcome.rcpt_replies.append(final)
                elif isinstance(event, EndOfMessage):
                    outcome.actions, outcome.final = actions, final
        return outcome

    def close(self) -> None:
        self.writer.close()


def apply_actions(message: bytes, actions: Sequence[MilterReply]) -> bytes:
    """``message`` as Postfix delivers it after the header actions (our Received aside).

    Actions apply in order, as Postfix applies them: a CHGHEADER index counts the fields of
    that name as they stand then, inserted ones included; an empty value deletes.
    """
    headers, body = split_message(message)
    fields = [name.encode() + b":" + value.replace(b"\n", b"\r\n") for name, value in headers]
    for action in actions:
        if isinstance(action, ChangeHeader):
            name = action.name.encode().lower()
            same = [i for i, f in enumerate(fields) if f.split(b":")[0].lower() == name]
            if action.index <= len(same):
                value = action.value.encode() if isinstance(action.value, str) else action.value
                if value:
                    fields[same[action.index - 1]] = action.name.encode() + b":" + value
                else:
                    del fields[same[action.index - 1]]
        if isinstance(action, InsertHeader):
            value = action.value.encode() if isinstance(action.value, str) else action.value
            field = action.name.encode() + b":" + value.replace(b"\n", b"\r\n")
            fields.insert(action.index, field)
        elif isinstance(action, AddHeader):
            value = action.value.encode() if isinstance(action.value, str) else action.value
            fields.append(action.name.encode() + b":" + value.replace(b"\n", b"\r\n"))
    return b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body
