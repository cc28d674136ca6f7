"""``srsfwd serve``: the socketmap / tcp_table daemon that replaces postsrsd."""

from __future__ import annotations

import logging
import logging.handlers
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from srsfwd.address import MAX_LOCAL_PART
from srsfwd.app import build_resolver, build_rewriter, limits_store_location
from srsfwd.cli.common import WarningsToStderr, config_option, echo_json, error, json_option
from srsfwd.cli.group import EXIT_FAILED, exit_status
from srsfwd.config import Config, config_from_data, load_config
from srsfwd.errors import ConfigError, SrsfwdError
from srsfwd.forward import Forwarder
from srsfwd.logtext import OneLineFormatter
from srsfwd.pool_settings import decide_settings
from srsfwd.postsrsdconf import read_postsrsd
from srsfwd.servers import eventloop
from srsfwd.servers.eventloop import LOOP_CHOICES, LoopChoice
from srsfwd.servers.milter import MilterService
from srsfwd.servers.preflight import serving_problems
from srsfwd.servers.runtime import Daemon, Loaded
from srsfwd.servers.settings import ServeSettings, serve_settings
from srsfwd.srs import SRSRewriter
from srsfwd.srsmaps import SRSMaps
from srsfwd.stores import is_redis

log = logging.getLogger("srsfwd")

#: ``long-addresses = "rewrite"``: no practical limit, as postsrsd (keys are <= 512 octets).
UNLIMITED_LOCAL_PART = 4096


@click.command()
@config_option
@click.option(
    "--from-postsrsd",
    "postsrsd_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read postsrsd's configuration as it stands: 2.x's postsrsd.conf or 1.x's"
    " /etc/default/postsrsd. With --config too, the TOML file's settings win.",
)
@click.option("--log", "log_target", type=click.Choice(["stderr", "syslog"]), help="[serve] log.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="[serve] log-level.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Check the configuration and try each socket (bind, mode, owner, release);"
    " show what would be served.",
)
@click.option(
    "--event-loop",
    type=click.Choice(LOOP_CHOICES),
    default="auto",
    show_default=True,
    help="auto: uvloop when installed (pip install 'srsfwd[fast]'), else asyncio's own.",
)
@click.option(
    "--lookup-threads/--no-lookup-threads",
    default=True,
    show_default=True,
    help="Serve each socketmap and tcp_table connection in a thread of its own, as"
    " postsrsd serves each in a process (less CPU per lookup); --no-lookup-threads"
    " serves them in the event loop.",
)
@json_option
def serve(
    config_path: Path | None,
    postsrsd_path: Path | None,
    log_target: str | None,
    log_level: str | None,
    check: bool,
    as_json: bool,
    event_loop: LoopChoice,
    lookup_threads: bool,
) -> None:
    """Serve SRS to Postfix: socketmap (postsrsd 2.x), tcp_table (postsrsd 1.x), milter.

    Maps "forward" (sender_canonical_maps) and "reverse" (recipient_canonical_maps);
    with [serve] milter, the whole forwarding pipeline (SRS, DKIM, ARC, pools) as a
    milter for smtpd_milters (docs/postfix.md, part 2).
    SIGHUP re-reads the configuration, secrets and domains without dropping
    connections; SIGTERM stops. Under systemd use Type=notify.

    \b
    Example:
      srsfwd serve --config /etc/srsfwd/srsfwd.toml
      srsfwd serve --from-postsrsd /etc/default/postsrsd --check
    \b
    main.cf:
      sender_canonical_maps = socketmap:unix:srs:forward
      sender_canonical_classes = envelope_sender
      recipient_canonical_maps = socketmap:unix:srs:reverse
      recipient_canonical_classes = envelope_recipient, header_recipient
    """

    def loader() -> Loaded:
        return load(config_path, postsrsd_path, notes=log.warning)

    first = load(config_path, postsrsd_path, notes=_echo_note)
    if check:
        if first.milter is not None:
            first.milter.close()
        problems = serving_problems(first.settings)
        if as_json:
            endpoints = first.settings.endpoints()
            echo_json(
                {
                    "endpoints": [{"service": s, "endpoint": str(e)} for s, e in endpoints],
                    "srs_domain": first.maps.rewriter.domain,
                    "problems": list(problems),
                    "ok": not problems,
                }
            )
            if problems:
                sys.exit(EXIT_FAILED)
            return
        for service, endpoint in first.settings.endpoints():
            click.echo(f"{service} on {endpoint}")
        if problems:
            for problem in problems:
                error(problem)
            raise click.ClickException("serve would not start")
        click.echo(f"SRS domain {first.maps.rewriter.domain}; configuration is fine")
        return
    setup_logging(log_target or first.settings.log, log_level or first.settings.log_level)
    daemon = Daemon(loader, lookup_threads=lookup_threads)
    try:
        eventloop.run(daemon.run(), event_loop)
    except SrsfwdError as exc:
        log.error("%s", exc)
        sys.exit(exit_status(exc))


def _echo_note(note: str) -> None:
    click.echo(f"note: {note}", err=True)


def load(config_path: Path | None, postsrsd_path: Path | None, *, notes: Any) -> Loaded:
    """Settings and maps from the configuration files, read afresh (start and SIGHUP).

    Raises:
        ConfigError: a file is missing or wrong.
    """
    config = read_config(config_path, postsrsd_path, notes=notes)
    settings = serve_settings(config)
    milter = None
    if settings.milter:
        decide = decide_settings(config)
        # One resolver, and so one DNS cache, for every worker thread (it is thread-safe).
        resolver = build_resolver(config, timeout=decide.dns_timeout)
        milter = MilterService.from_settings(
            settings,
            lambda: Forwarder.from_config(config, resolver=resolver),
            accepted=decide.policy.accepted,
            local_stores=_local_stores(config),
        )
    return Loaded(settings, SRSMaps(_rewriter(config, settings)), milter)


def _local_stores(config: Config) -> bool:
    """The limits and SRS alias stores are SQLite files, not Redis: the milter's event
    loop may use them (``milter-inline``)."""
    srs = config.srs
    aliases = (srs.envelope_database or "") if srs.original_envelope == "database" else ""
    return not (is_redis(limits_store_location(config)) or is_redis(aliases))


def read_config(config_path: Path | None, postsrsd_path: Path | None, *, notes: Any) -> Config:
    """The TOML configuration, or postsrsd's read as one, or both merged (TOML wins)."""
    if postsrsd_path is None:
        return load_config(config_path)
    try:
        text = postsrsd_path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {postsrsd_path}: {exc}") from None
    data, found_notes = read_postsrsd(text, postsrsd_path.absolute(), mydomain=_postfix_mydomain)
    for note in found_notes:
        notes(f"{postsrsd_path}: {note}")
    if config_path is None:
        return config_from_data(data, postsrsd_path.absolute())
    # postsrsd's paths came out absolute, so the merged data takes its relative paths
    # from the TOML file's folder, as the TOML file alone would.
    toml = load_config(config_path)
    for name, table in toml.sections.items():
        if isinstance(table, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **table}
        else:
            data[name] = table
    return config_from_data(data, config_path.absolute())


def _rewriter(config: Config, settings: ServeSettings) -> SRSRewriter:
    long_ok = settings.long_addresses == "rewrite"
    return build_rewriter(
        config,
        max_local_part=UNLIMITED_LOCAL_PART if long_ok else MAX_LOCAL_PART,
        watch_store=True,
    )


def _postfix_mydomain() -> str | None:
    """``postconf -h mydomain``: postsrsd 1.x's start script's default SRS domain."""
    postconf = shutil.which("postconf")
    if postconf is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 - a fixed command, no shell
            [postconf, "-h", "mydomain"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def setup_logging(target: str, level: str) -> None:
    """Send srsfwd's log to standard error or to syslog (facility mail)."""
    for shown in [h for h in log.handlers if isinstance(h, WarningsToStderr)]:
        log.removeHandler(shown)  # the daemon's own handler shows warnings from now on
    handler: logging.Handler
    if target == "syslog":
        handler = logging.handlers.SysLogHandler(
            address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_MAIL
        )
        handler.setFormatter(OneLineFormatter("srsfwd[%(process)d]: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(OneLineFormatter("srsfwd: %(levelname)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level.upper())
