"""``srsfwd doctor``: check a deployment against live DNS and say what to publish."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from srsfwd.cli.common import (
    DnsChoice,
    config_option,
    dns_options,
    echo_json,
    json_option,
    open_config,
    resolver_from_options,
)
from srsfwd.cli.group import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL
from srsfwd.cli.table import echo_table
from srsfwd.dkim.settings import dkim_settings
from srsfwd.doctor import (
    Finding,
    Severity,
    check_dkim_key,
    check_dmarc,
    check_mx,
    check_relay_helo,
    check_secret,
    check_spf,
    failed,
    unknown,
)
from srsfwd.keystore import KeyStore
from srsfwd.pool_settings import pools_from_config

_MARK = {Severity.OK: "ok", Severity.WARNING: "WARNING", Severity.ERROR: "ERROR"}


@click.command()
@config_option
@dns_options
@json_option
def doctor(
    config_path: Path | None,
    dns: DnsChoice,
    as_json: bool,
) -> None:
    """Check what a forwarder needs to be trusted and to get its bounces back.

    The SRS domain's SPF (normal and high-risk pools in it, the relay pool not) and MX,
    every DKIM key of the store (published, matching, not revoked), DMARC of the signing
    domains, and the SRS secret (present, private). Each finding says how to fix it.
    Exit status 1 when something is broken, else 75 when DNS did not answer for some
    check (unknown: try again), else 0.

    \b
    Example:
      srsfwd doctor --config /etc/srsfwd/srsfwd.toml
      srsfwd doctor --config srsfwd.toml --zone example.zone --json
    """
    config = open_config(config_path)
    findings: list[Finding] = []
    resolver = resolver_from_options(config, dns)
    pools = pools_from_config(config)
    srs_domain = config.srs.domain
    if srs_domain:
        findings += check_spf(resolver, srs_domain, pools)
        findings += check_mx(resolver, srs_domain)
    else:
        findings.append(
            Finding(
                Severity.ERROR,
                "srs",
                "no [srs] domain configured",
                'set [srs] domain = "fwd.example.net"',
            )
        )
    findings += check_relay_helo(pools)
    store = KeyStore(dkim_settings(config).keys_dir)
    stored = store.list_keys()
    if not stored:
        findings.append(
            Finding(
                Severity.WARNING,
                "dkim",
                f"no DKIM keys in {store.root}",
                "srsfwd keygen <domain>",
            )
        )
    for entry in stored:
        key = store.load(entry.domain, entry.selector)
        findings.append(check_dkim_key(resolver, entry.domain, entry.selector, key))
    findings += check_dmarc(resolver, {k.domain for k in stored})
    findings.append(check_secret(config.srs.secrets_file))
    if as_json:
        echo_json([f.as_dict() for f in findings])
    else:
        echo_table(
            ("result", "check", "finding", "fix"),
            (
                (
                    _MARK[f.severity],
                    f.check,
                    f.message,
                    f.fix if f.fix and f.severity is not Severity.OK else "",
                )
                for f in findings
            ),
        )
    sys.exit(EXIT_FAILED if failed(findings) else EXIT_TEMPFAIL if unknown(findings) else EXIT_OK)
