"""``srsfwd keygen``, ``keys``, ``sign``, ``verify`` and ``seal``: DKIM and ARC from the shell."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from srsfwd.app import build_key_table
from srsfwd.cli.common import (
    DnsChoice,
    config_option,
    dns_options,
    echo_json,
    json_option,
    open_config,
    read_message,
    resolver_from_options,
)
from srsfwd.cli.group import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL, command_error
from srsfwd.cli.table import echo_table
from srsfwd.clock import Clock, SystemClock
from srsfwd.dkim.arc import ArcSealer
from srsfwd.dkim.canon import author_domain, parse_message
from srsfwd.dkim.keys import (
    DEFAULT_KEY_SPEC,
    KEY_SPECS,
    SigningKey,
    default_selector,
    generate_key,
    key_record_text,
    load_public_key,
    parse_key_record,
    private_key_pem,
    public_key_data,
    zone_line,
)
from srsfwd.dkim.settings import dkim_settings
from srsfwd.dkim.sign import DkimSigner
from srsfwd.dkim.verify import DkimVerifier, Result, SignatureResult
from srsfwd.dns.resolver import Resolver
from srsfwd.errors import ConfigError, KeyFormatError, KeyNotFoundError, SrsfwdError
from srsfwd.keystore import (
    KeyStore,
    KeyTable,
    check_selector,
    normalise_domain,
    read_opendkim_tables,
)

F = TypeVar("F", bound=Callable[..., Any])

#: Rotation: hours between making a key and signing with it (time to publish the record).
DEFAULT_ACTIVATE_HOURS = 48
#: Rotation: days the old record stays published after the switch (queues, forwarding, x=).
DEFAULT_OVERLAP_DAYS = 14


def _keys_dir_option(function: F) -> F:
    return click.option(
        "--keys-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Key store folder [config: dkim.keys_dir; default: keys].",
    )(function)


def _clock() -> Clock:
    return SystemClock()


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, tz=UTC).isoformat()


def _signature_dict(result: SignatureResult) -> dict[str, object]:
    fields = dataclasses.asdict(result)
    fields["result"] = str(result.result)
    return fields


def _date(when: float) -> str:
    return datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------------------- keygen


@click.command()
@config_option
@_keys_dir_option
@click.option("--selector", help="Selector [default: dated, e.g. s202611].")
@click.option(
    "--algorithm",
    type=click.Choice(KEY_SPECS),
    default=DEFAULT_KEY_SPEC,
    show_default=True,
    help="Key type and size.",
)
@click.option("--testing", is_flag=True, help="Publish with t=y (receivers treat it as a test).")
@json_option
@click.argument("domain")
def keygen(
    config_path: Path | None,
    keys_dir: Path | None,
    selector: str | None,
    algorithm: str,
    testing: bool,
    as_json: bool,
    domain: str,
) -> None:
    """Make a DKIM key for DOMAIN and print the DNS record to publish.

    Writes KEYS_DIR/DOMAIN/SELECTOR.key (PKCS#8 PEM, mode 0600) and SELECTOR.txt (the
    zone-file record). An existing key is never replaced.

    \b
    Example:
      srsfwd keygen --keys-dir keys --algorithm ed25519 --selector e202611 example.com
    """
    config = open_config(config_path)
    store = KeyStore(keys_dir or dkim_settings(config).keys_dir)
    name = normalise_domain(domain)
    key = generate_key(algorithm)
    chosen = check_selector(selector or default_selector(_clock().now(), key.key_type))
    store.create(name, chosen, key, pem=private_key_pem(key), now=_clock().now(), testing=testing)
    text = key_record_text(key, testing=testing)
    if as_json:
        echo_json(_record_dict(store, name, chosen, algorithm, text))
        return
    click.echo(f"; wrote {store.key_path(name, chosen)} (keep it secret) and its .txt")
    click.echo(f"; publish this record in the {name} zone:")
    click.echo(zone_line(chosen, name, text), nl=False)


def _record_dict(
    store: KeyStore, domain: str, selector: str, algorithm: str, text: str
) -> dict[str, object]:
    """A new key and the record to publish for it, as ``--json`` prints them."""
    return {
        "domain": domain,
        "selector": selector,
        "algorithm": algorithm,
        "key_file": str(store.key_path(domain, selector)),
        "record_name": f"{selector}._domainkey.{domain}",
        "record_text": text,
        "zone_line": zone_line(selector, domain, text),
    }


# ------------------------------------------------------------------------------------ keys


@click.group()
def keys() -> None:
    """List, check and rotate the DKIM keys of the key store.

    \b
    Example:
      srsfwd keys list --keys-dir keys
    """


@keys.command("list")
@config_option
@_keys_dir_option
@json_option
def keys_list(config_path: Path | None, keys_dir: Path | None, as_json: bool) -> None:
    """Show every key: domain, selector, algorithm and size, created date.

    \b
    Example:
      srsfwd keys list --keys-dir /etc/srsfwd/keys
    """
    config = open_config(config_path)
    store = KeyStore(keys_dir or dkim_settings(config).keys_dir)
    stored = store.list_keys()
    now = _clock().now()
    if as_json:
        echo_json(
            [
                {
                    "domain": item.domain,
                    "selector": item.selector,
                    "algorithm": item.spec,
                    "created": _iso(item.created),
                    "active_from": _iso(item.active_from),
                    "active": item.active_from <= now,
                }
                for item in stored
            ]
        )
        return
    if not stored:
        click.echo(f"no keys in {store.root}")
        return
    echo_table(
        ("domain", "selector", "algorithm", "created", "signs"),
        (
            (
                item.domain,
                item.selector,
                item.spec,
                _date(item.created),
                "yes" if item.active_from <= now else f"from {_date(item.active_from)}",
            )
            for item in stored
        ),
    )


@keys.command("check")
@config_option
@_keys_dir_option
@dns_options
@click.option("--selector", "selectors", multiple=True, help="Check only this one. Repeatable.")
@json_option
@click.argument("domain")
def keys_check(
    config_path: Path | None,
    keys_dir: Path | None,
    selectors: tuple[str, ...],
    as_json: bool,
    domain: str,
    dns: DnsChoice,
) -> None:
    """Look DOMAIN's key records up in DNS and compare them with the private keys.

    Reports a missing record, a published key that does not match, a revoked key (empty
    p=) and testing mode (t=y). Exit status 0 when every key checked is published right.

    \b
    Example:
      srsfwd keys check example.com --selector s202611 --dns-server 127.0.0.1
    """
    config = open_config(config_path)
    problems = 0
    store = KeyStore(keys_dir or dkim_settings(config).keys_dir)
    name = normalise_domain(domain)
    chosen = list(selectors) or [k.selector for k in store.list_keys(name)]
    if not chosen:
        raise KeyNotFoundError(f"no keys for {name} in {store.root}")
    resolver = resolver_from_options(config, dns)
    checked = []
    for selector in chosen:
        key = store.load(name, selector)
        ok, message = _check_published(resolver, name, selector, public_key_data(key))
        problems += not ok
        record = f"{selector}._domainkey.{name}"
        checked.append({"record": record, "selector": selector, "ok": ok, "message": message})
        if not as_json:
            click.echo(f"{'ok  ' if ok else 'FAIL'} {record}: {message}")
    if as_json:
        echo_json(checked)
    sys.exit(EXIT_FAILED if problems else EXIT_OK)


def _check_published(
    resolver: Resolver, domain: str, selector: str, expected: bytes
) -> tuple[bool, str]:
    records = resolver.txt(f"{selector}._domainkey.{domain}")
    if not records:
        return False, "no record published"
    try:
        record = parse_key_record(records[0])
    except KeyFormatError as exc:
        return False, str(exc)
    if record.revoked:
        return False, "revoked (empty p=)"
    try:
        public, _ = load_public_key(record)
    except KeyFormatError as exc:
        return False, str(exc)
    if public_key_data(public) != expected:
        return False, "the published key does not match the private key"
    notes = [f"k={record.key_type}"]
    if record.testing:
        notes.append("testing mode (t=y): receivers may ignore failures")
    if len(records) > 1:
        notes.append(f"{len(records)} TXT records; verifiers use the first")
    return True, "published key matches; " + ", ".join(notes)


@keys.command("rotate")
@config_option
@_keys_dir_option
@click.option(
    "--activate-after",
    type=click.IntRange(0),
    default=DEFAULT_ACTIVATE_HOURS,
    show_default=True,
    help="Hours until srsfwd signs with the new key (time to publish it).",
)
@json_option
@click.argument("domain")
def keys_rotate(
    config_path: Path | None,
    keys_dir: Path | None,
    activate_after: int,
    as_json: bool,
    domain: str,
) -> None:
    """Make new keys for DOMAIN beside the old ones, and print the steps to publish them.

    One new key per algorithm in use (RSA and Ed25519 when the domain signs with both),
    with a new dated selector. The key table keeps signing with the old keys until
    --activate-after hours have passed.

    \b
    Example:
      srsfwd keys rotate example.com --keys-dir keys --activate-after 48
    """
    config = open_config(config_path)
    now = _clock().now()
    store = KeyStore(keys_dir or dkim_settings(config).keys_dir)
    name = normalise_domain(domain)
    current = store.newest(name, now=now)
    if not current:
        raise KeyNotFoundError(f"no keys for {name}; make one with 'srsfwd keygen {name}'")
    taken = {k.selector for k in store.list_keys(name)}
    active_from = now + activate_after * 3600
    made: list[tuple[str, str]] = []
    records = []
    for old in current:
        selector = _free_selector(default_selector(now, old.key_type), taken)
        taken.add(selector)
        key = generate_key(old.spec)
        store.create(
            name, selector, key, pem=private_key_pem(key), now=now, active_from=active_from
        )
        text = key_record_text(key)
        made.append((selector, zone_line(selector, name, text)))
        records.append(_record_dict(store, name, selector, old.spec, text))
    withdraw = active_from + DEFAULT_OVERLAP_DAYS * 86400
    if as_json:
        echo_json(
            {
                "domain": name,
                "new_keys": records,
                "old_selectors": [k.selector for k in current],
                "active_from": _iso(active_from),
                "withdraw_old_after": _iso(withdraw),
            }
        )
        return
    old_names = ", ".join(k.selector for k in current)
    click.echo(f"New keys for {name}: {', '.join(s for s, _ in made)} (old: {old_names}).")
    click.echo("1. Publish now:")
    for _, line in made:
        click.echo(line, nl=False)
    click.echo(
        f"2. Check: srsfwd keys check {name} " + " ".join(f"--selector {s}" for s, _ in made)
    )
    click.echo(f"3. From {_date(active_from)} srsfwd signs with the new keys.")
    click.echo(
        f"4. Keep the old records ({old_names}) published until {_date(withdraw)}"
        " (queued and forwarded mail still carries old signatures), then revoke them"
        " by publishing an empty p= and delete the old .key files."
    )


def _free_selector(prefix: str, taken: set[str]) -> str:
    if prefix not in taken:
        return prefix
    for suffix in "bcdefghijklmnopqrstuvwxyz":
        if prefix + suffix not in taken:
            return prefix + suffix
    raise ConfigError(f"no free selector left for {prefix}; give one to srsfwd keygen")


@keys.command("import-opendkim")
@click.argument("key_table", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("signing_table", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def keys_import_opendkim(key_table: Path, signing_table: Path) -> None:
    """Print the [dkim.domains] rules equivalent to an OpenDKIM KeyTable and SigningTable.

    Key files are not copied: put each into the key store as DOMAIN/SELECTOR.key (0600).

    \b
    Example:
      srsfwd keys import-opendkim /etc/opendkim/KeyTable /etc/opendkim/SigningTable
    """
    try:
        rules = read_opendkim_tables(key_table.read_text(), signing_table.read_text())
    except OSError as exc:
        raise click.ClickException(f"cannot read: {exc}") from None
    click.echo("[dkim.domains]")
    for pattern, rule in rules.items():
        selectors = ", ".join(f'"{s}"' for s in rule.selectors)
        click.echo(f'"{pattern}" = {{ domain = "{rule.domain}", selectors = [{selectors}] }}')


# ------------------------------------------------------------------------------------ sign


@click.command()
@config_option
@_keys_dir_option
@click.option("--domain", help="Sign as this domain (d=) [default: the From domain].")
@click.option("--selector", "selectors", multiple=True, help="Key selector. Repeatable.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the signed message here (one message only).",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each signed message under this folder with the same name.",
)
@click.argument("messages", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def sign(
    config_path: Path | None,
    keys_dir: Path | None,
    domain: str | None,
    selectors: tuple[str, ...],
    output: Path | None,
    output_dir: Path | None,
    messages: tuple[Path, ...],
) -> None:
    """Add DKIM-Signature headers to each MESSAGE (standard input when none).

    Uses the newest key of the From domain (RSA and Ed25519 both, when the domain has
    both), relaxed/relaxed, t= always, x= when [dkim] expire_days is set.

    \b
    Example:
      srsfwd sign --keys-dir keys --domain example.com message.eml > signed.eml
    """
    if output and output_dir:
        raise click.UsageError("give -o or --output-dir, not both")
    if len(messages) > 1 and not output_dir:
        raise click.UsageError("several messages need --output-dir")
    config = open_config(config_path)
    settings = dkim_settings(config)
    table = build_key_table(config, keys_dir)
    signers: dict[str, DkimSigner] = {}
    for path in messages or (None,):
        data = read_message(path)
        try:
            signed = _sign_one(data, table, domain, selectors, settings.expire_days, signers)
        except SrsfwdError as exc:
            raise command_error(exc, str(path or "standard input")) from None
        _write(signed, path, output, output_dir)


def _sign_one(
    data: bytes,
    table: KeyTable,
    domain: str | None,
    selectors: Sequence[str],
    expire_days: int,
    signers: dict[str, DkimSigner],
) -> bytes:
    name = domain
    if name is None:
        name = author_domain(parse_message(data))
        if name is None:
            raise KeyNotFoundError("no single From address; give --domain")
    if name not in signers:
        keys: list[SigningKey] = table.signing_keys(
            name, now=_clock().now(), selectors=tuple(selectors)
        )
        signers[name] = DkimSigner(
            keys, clock=_clock(), expire_after=expire_days * 86400 if expire_days else None
        )
    return signers[name].sign(data)


def _write(data: bytes, source: Path | None, output: Path | None, folder: Path | None) -> None:
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / (source.name if source else "stdin.eml")).write_bytes(data)
        elif output is not None:
            output.write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
    except OSError as exc:
        raise click.ClickException(f"cannot write: {exc}") from None


# ---------------------------------------------------------------------------------- verify


@click.command()
@config_option
@dns_options
@json_option
@click.argument("message", required=False, type=click.Path(dir_okay=False, path_type=Path))
def verify(config_path: Path | None, message: Path | None, as_json: bool, dns: DnsChoice) -> None:
    """Check every DKIM signature of MESSAGE (standard input when none).

    One line per signature: result, domain, selector, algorithm, key size and why.
    Exit status 0 when at least one passes, 75 when none passes and DNS failed, else 1.

    \b
    Example:
      srsfwd verify --zone examples/dkim/football.zone examples/dkim/rfc8463.eml
    """
    config = open_config(config_path)
    data = read_message(message)
    verifier = DkimVerifier(resolver_from_options(config, dns), clock=_clock())
    results = verifier.verify(data)
    if as_json:
        echo_json([_signature_dict(r) for r in results])
    elif not results:
        click.echo("none: no DKIM-Signature")
    else:
        for result in results:
            click.echo(result.describe())
    if not results:
        sys.exit(EXIT_FAILED)
    if any(r.passed for r in results):
        sys.exit(EXIT_OK)
    sys.exit(EXIT_TEMPFAIL if any(r.result is Result.TEMPERROR for r in results) else EXIT_FAILED)


# ------------------------------------------------------------------------------------ seal


@click.command()
@config_option
@_keys_dir_option
@dns_options
@click.option("--authserv-id", help="This ADMD's name in Authentication-Results [config].")
@click.option("--domain", help="Seal as this domain (d=) [default: the From domain].")
@click.option("--selector", help="RSA key selector [default: the domain's newest RSA key].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.argument("message", required=False, type=click.Path(dir_okay=False, path_type=Path))
def seal(
    config_path: Path | None,
    keys_dir: Path | None,
    authserv_id: str | None,
    domain: str | None,
    selector: str | None,
    output: Path | None,
    message: Path | None,
    dns: DnsChoice,
) -> None:
    """Add this hop's Authentication-Results and an ARC set to MESSAGE (RFC 8617).

    Verifies the existing ARC chain and DKIM signatures first; cv= is none, pass or
    fail accordingly. A message whose chain already failed is written out unchanged
    and the exit status is 1.

    \b
    Example:
      srsfwd seal --authserv-id fwd.example.net --domain fwd.example.net in.eml > out.eml
    """
    config = open_config(config_path)
    data = read_message(message)
    settings = dkim_settings(config)
    authserv = authserv_id or settings.authserv_id
    if not authserv:
        raise ConfigError("no authserv-id: give --authserv-id or set [dkim] authserv_id")
    table = build_key_table(config, keys_dir)
    name = domain or author_domain(parse_message(data))
    if name is None:
        raise KeyNotFoundError("no single From address; give --domain")
    chosen = (selector,) if selector else ()
    keys = [
        k
        for k in table.signing_keys(name, now=_clock().now(), selectors=chosen)
        if k.key.key_type == "rsa"
    ]
    if not keys:
        raise KeyNotFoundError(f"no RSA key for {name}: ARC seals use rsa-sha256")
    result = ArcSealer(keys[0], authserv, resolver_from_options(config, dns), clock=_clock()).seal(
        data
    )
    click.echo(
        f"{'sealed' if result.sealed else 'not sealed'}: i={result.instance} cv={result.cv}"
        f" ({result.reason})",
        err=True,
    )
    _write(result.message, None, output, None)
    sys.exit(EXIT_OK if result.sealed else EXIT_FAILED)
