"""Wiring: builds the long-lived objects from the configuration, once."""

from __future__ import annotations

from srsfwd.address import MAX_LOCAL_PART, read_domains_file
from srsfwd.clock import Clock
from srsfwd.config import Config, SRSSettings
from srsfwd.errors import ConfigError
from srsfwd.secretfile import load_secrets
from srsfwd.srs import HashAlphabet, SRSRewriter
from srsfwd.stores.sqlite import SQLiteStore

ALIAS_DATABASE_NAME = "srs-aliases.sqlite"


def build_rewriter(
    config: Config,
    settings: SRSSettings | None = None,
    *,
    need_domain: bool = True,
    clock: Clock | None = None,
    max_local_part: int = MAX_LOCAL_PART,
) -> SRSRewriter:
    """An ``SRSRewriter`` from ``settings`` (by default the configuration's ``[srs]``).

    Raises:
        ConfigError: no domain or secrets file, an unreadable file, or a bad value.
    """
    srs = settings or config.srs
    if srs.secrets_file is None:
        raise ConfigError("no secrets file: give --secret-file or set [srs] secrets_file")
    if need_domain and not srs.domain:
        raise ConfigError("no SRS domain: give --domain or set [srs] domain")
    # Reverse needs no domain of its own unless told to check it.
    domain = srs.domain or "srs.invalid"
    local_domains = list(srs.local_domains)
    if srs.local_domains_file is not None:
        try:
            local_domains += read_domains_file(srs.local_domains_file.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read domains file {srs.local_domains_file}: {exc}") from None
    store = None
    if srs.original_envelope == "database":
        path = srs.envelope_database or config.state_dir / ALIAS_DATABASE_NAME
        store = SQLiteStore.open(path, max_entries=srs.max_aliases)
    alphabet: HashAlphabet = "classic" if srs.hash_alphabet == "classic" else "url"
    if srs.hash_alphabet not in ("classic", "url"):
        raise ConfigError("hash alphabet must be 'classic' or 'url'")
    try:
        return SRSRewriter(
            load_secrets(srs.secrets_file),
            domain,
            separator=srs.separator,
            hash_length=srs.hash_length,
            hash_alphabet=alphabet,
            hash_min=min(srs.hash_minimum, srs.hash_length),
            max_age_days=srs.max_age_days,
            local_domains=local_domains,
            always_rewrite=srs.always_rewrite,
            max_local_part=max_local_part,
            alias_store=store,
            clock=clock,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
