"""`srsfwd serve` as systemd runs it: a real process, real signals, sd_notify, sockets."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.cli import cli
from srsfwd.errors import StoreError
from srsfwd.protocols import socketmap, tcptable
from srsfwd.servers.runtime import Daemon
from tests.ports import free_port
from tests.serving import serve_process as serving


def write_setup(tmp: Path, serve: str = "") -> Path:
    secret = tmp / "srs.secret"
    secret.write_text("first-secret\n")
    secret.chmod(0o600)
    config = tmp / "srsfwd.toml"
    config.write_text(
        '[srs]\nsrs-domain = "fwd.example"\ndomains = ["fwd.example"]\n'
        'secrets-file = "srs.secret"\n'
        f'[serve]\nsocketmap = "unix:{tmp}/srs.sock"\nkeep-alive = 30\n{serve}'
    )
    return config


def ask(conn: socket.socket, line: str) -> socketmap.SocketmapReply:
    name, _, key = line.partition(" ")
    conn.sendall(socketmap.encode_request(socketmap.Request(name, key)))
    decoder = socketmap.ReplyDecoder()
    while True:
        data = conn.recv(4096)
        if not data:
            raise ConnectionError("closed")
        if replies := decoder.feed(data):
            return replies[0]


def test_help_shows_an_example() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "socketmap:unix:srs:forward" in result.output


def test_check_lists_the_endpoints(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--config", str(write_setup(tmp_path)), "--check"])
    assert result.exit_code == 0, result.output
    assert f"socketmap on unix:{tmp_path}/srs.sock" in result.output


def check(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--check"])
    return result.exit_code, result.output


def test_check_refuses_a_socket_in_a_missing_folder(tmp_path: Path) -> None:
    config = write_setup(tmp_path, serve=f'milter = ["unix:{tmp_path}/none/milter.sock"]\n')
    code, output = check(config)
    assert code == 1
    assert f"{tmp_path}/none" in output
    assert "configuration is fine" not in output


def test_check_refuses_an_unknown_socket_group(tmp_path: Path) -> None:
    config = write_setup(tmp_path, serve='socket-group = "no-such-group-srsfwd"\n')
    code, output = check(config)
    assert code == 1
    assert "no-such-group-srsfwd" in output


def test_check_refuses_a_unix_socket_path_too_long_for_the_kernel(tmp_path: Path) -> None:
    path = tmp_path / ("s" * (109 - len(str(tmp_path)) - 1))
    assert len(str(path)) == 109
    config = write_setup(tmp_path, serve=f'milter = ["unix:{path}"]\n')
    code, output = check(config)
    assert code == 1
    assert "109 bytes" in output


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A loopback TCP port another socket listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_check_refuses_a_tcp_port_already_taken(tmp_path: Path) -> None:
    with taken_port() as port:
        config = write_setup(tmp_path, serve=f'tcp-table-forward = "inet:127.0.0.1:{port}"\n')
        code, output = check(config)
    assert code == 1
    assert f"inet:127.0.0.1:{port}" in output


def test_check_binds_and_releases_each_socket(tmp_path: Path) -> None:
    port = free_port()
    config = write_setup(tmp_path, serve=f'tcp-table-forward = "inet:127.0.0.1:{port}"\n')
    code, output = check(config)
    assert code == 0, output
    assert not (tmp_path / "srs.sock").exists()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_a_bad_configuration_is_refused_before_serving(tmp_path: Path) -> None:
    config = write_setup(tmp_path, serve="connection-limit = -1\n")
    result = CliRunner().invoke(cli, ["serve", "--config", str(config)])
    assert result.exit_code == 1
    assert "connection-limit" in result.output


@pytest.fixture
def daemon_log_restored() -> Iterator[None]:
    """The srsfwd logger as it was: ``serve`` run in this process sets its handler."""
    logger = logging.getLogger("srsfwd")
    handlers, level = logger.handlers[:], logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.usefixtures("daemon_log_restored")
def test_a_port_taken_at_start_exits_1(tmp_path: Path) -> None:
    with taken_port() as port:
        config = write_setup(tmp_path, serve=f'tcp-table-forward = "inet:127.0.0.1:{port}"\n')
        result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--log", "stderr"])
    assert result.exit_code == 1


@pytest.mark.usefixtures("daemon_log_restored")
def test_a_temporary_failure_at_start_exits_75(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def store_down(self: Daemon) -> None:
        raise StoreError("the store could not answer")

    monkeypatch.setattr(Daemon, "run", store_down)  # as a store that is down at start
    config = write_setup(tmp_path)
    result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--log", "stderr"])
    assert result.exit_code == 75


def test_from_postsrsd_takes_postsrsds_own_test_configuration(tmp_path: Path) -> None:
    (tmp_path / "postsrsd.domains").write_text("example.com\n")
    secret = tmp_path / "postsrsd.secret"
    secret.write_text("tops3cr3t\n")
    secret.chmod(0o600)
    conf = tmp_path / "postsrsd.conf"
    conf.write_text(
        f'domains-file = "{tmp_path}/postsrsd.domains"\ndomains-file-watch = off\n'
        'keep-alive = 1\nchroot-dir = ""\nunprivileged-user = ""\n'
        'original-envelope = embedded\nenvelope-database = ""\n'
        f'secrets-file = "{secret}"\nsocketmap = "unix:{tmp_path}/postsrsd.sock"\nmilter = ""\n'
    )
    result = CliRunner().invoke(cli, ["serve", "--from-postsrsd", str(conf), "--check"])
    assert result.exit_code == 0, result.output
    assert "SRS domain example.com;" in result.output


def test_with_both_files_the_tomls_relative_paths_are_taken_from_its_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "srsfwd").mkdir()
    (tmp_path / "postsrsd").mkdir()
    config = write_setup(tmp_path / "srsfwd")  # secrets-file = "srs.secret", next to it
    conf = tmp_path / "postsrsd" / "postsrsd.conf"
    conf.write_text('srs-domain = "postsrsd.example"\nsocketmap = "unix:srs.sock"\n')
    result = CliRunner().invoke(
        cli, ["serve", "--from-postsrsd", str(conf), "--config", str(config), "--check"]
    )
    assert result.exit_code == 0, result.output
    assert "SRS domain fwd.example;" in result.output  # the TOML file wins


def test_from_postsrsd_given_a_toml_file_says_so(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    result = CliRunner().invoke(cli, ["serve", "--from-postsrsd", str(config), "--check"])
    assert result.exit_code == 1
    assert "TOML" in result.output
    assert "--config" in result.output


def test_sighup_rotates_the_secret_under_an_open_connection_and_sigterm_stops(
    tmp_path: Path,
) -> None:
    config = write_setup(tmp_path)
    with serving("--config", str(config), tmp=tmp_path) as (process, notes):
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(str(tmp_path / "srs.sock"))
        conn.settimeout(5)
        before = ask(conn, "forward alice@example.org")
        assert before.status is socketmap.Status.OK
        (tmp_path / "srs.secret").write_text("second-secret\nfirst-secret\n")
        process.send_signal(signal.SIGHUP)
        assert "RELOADING=1" in notes.expect("RELOADING=1")
        notes.expect("READY=1")
        after = ask(conn, "forward alice@example.org")  # the same connection
        assert after.status is socketmap.Status.OK and after.text != before.text
        # Addresses signed with the old secret still come home.
        assert ask(conn, f"reverse {before.text}").text == "alice@example.org"
        assert ask(conn, f"reverse {after.text}").text == "alice@example.org"
        process.send_signal(signal.SIGTERM)
        notes.expect("STOPPING=1")
        assert process.wait(10) == 0
        assert conn.recv(10) == b""
        conn.close()
        assert not (tmp_path / "srs.sock").exists()
        assert process.stderr is not None
        log = process.stderr.read().decode()
    assert "reloaded" in log
    assert "first-secret" not in log  # never a secret
    assert "second-secret" not in log


@pytest.mark.parametrize("loop", ["asyncio", "auto"])
def test_serves_on_either_event_loop_and_says_which(tmp_path: Path, loop: str) -> None:
    config = write_setup(tmp_path)
    with serving("--config", str(config), "--event-loop", loop, tmp=tmp_path) as (process, _):
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(str(tmp_path / "srs.sock"))
        conn.settimeout(5)
        assert ask(conn, "forward alice@example.org").status is socketmap.Status.OK
        conn.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stderr is not None
        log = process.stderr.read().decode()
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    expected = "uvloop" if loop == "auto" and have_uvloop else "asyncio"
    assert f"event loop: {expected}" in log


def test_a_broken_reload_keeps_serving(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    with serving("--config", str(config), tmp=tmp_path) as (process, notes):
        (tmp_path / "srs.secret").chmod(0o644)  # refused: readable by all
        process.send_signal(signal.SIGHUP)
        notes.expect("READY=1")
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(tmp_path / "srs.sock"))
            conn.settimeout(5)
            assert ask(conn, "forward alice@example.org").status is socketmap.Status.OK
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stderr is not None
        assert "reload failed" in process.stderr.read().decode()


def test_from_postsrsd_serves_debians_tcp_tables(tmp_path: Path) -> None:
    secret = tmp_path / "postsrsd.secret"
    secret.write_text("tops3cr3t\n")
    secret.chmod(0o600)
    forward, reverse = free_port(), free_port()
    env_file = tmp_path / "postsrsd"
    env_file.write_text(
        f"SRS_DOMAIN=example.com\nSRS_SECRET={secret}\nSRS_FORWARD_PORT={forward}\n"
        f"SRS_REVERSE_PORT={reverse}\nRUN_AS=postsrsd\nCHROOT=/var/lib/postsrsd\n"
    )
    with serving("--from-postsrsd", str(env_file), tmp=tmp_path) as (process, _):
        with socket.create_connection(("127.0.0.1", forward), timeout=5) as conn:
            conn.sendall(b"get test%40otherdomain.com\n")
            (reply,) = tcptable.ReplyDecoder().feed(conn.makefile("rb").readline())
        assert reply.code is tcptable.Code.FOUND
        assert reply.text.startswith("SRS0=") and reply.text.endswith("@example.com")
        with socket.create_connection(("127.0.0.1", reverse), timeout=5) as conn:
            conn.sendall(f"get {reply.text}\n".encode())
            (back,) = tcptable.ReplyDecoder().feed(conn.makefile("rb").readline())
        assert back == tcptable.TcpTableReply(tcptable.Code.FOUND, "test@otherdomain.com")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_with_clients_connected(tmp_path: Path, signum: int) -> None:
    config = write_setup(tmp_path)
    with serving("--config", str(config), tmp=tmp_path) as (process, _):
        clients = []
        for _ in range(20):
            conn = socket.socket(socket.AF_UNIX)
            conn.connect(str(tmp_path / "srs.sock"))
            conn.sendall(b"10:forward a@")  # half a request
            clients.append(conn)
        started = time.monotonic()
        process.send_signal(signum)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 5
        for conn in clients:
            conn.close()


def test_sighup_rereads_the_domains_file(tmp_path: Path) -> None:
    domains = tmp_path / "domains"
    domains.write_text("# local domains\nexample.net\n")
    config = write_setup(tmp_path)
    config.write_text(config.read_text().replace("[serve]", 'domains-file = "domains"\n[serve]'))
    with serving("--config", str(config), tmp=tmp_path) as (process, notes):
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(tmp_path / "srs.sock"))
            conn.settimeout(5)
            assert ask(conn, "forward bob@example.org").status is socketmap.Status.OK
            domains.write_text("example.net\nexample.org\n")
            process.send_signal(signal.SIGHUP)
            notes.expect("RELOADING=1")
            notes.expect("READY=1")
            assert ask(conn, "forward bob@example.org") == socketmap.SocketmapReply(
                socketmap.Status.NOTFOUND, "Need not rewrite local domain."
            )
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
