"""The ``[srs]`` table's schema and its reader (``srsfwd.config.SRSSettings``).

postsrsd's names for its settings are taken as ours, so its users can copy them over.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from srsfwd.config import Config, OriginalEnvelope, SRSSettings
from srsfwd.config_schema import ConfigTable, Count, Strings, as_list, check_store_location, given
from srsfwd.srs import MAX_HASH_LENGTH, STAMP_PERIOD, HashAlphabet

# postsrsd's names for the same settings, accepted so its users can copy them over.
SRS_KEY_ALIASES = {
    "srs_domain": "domain",
    "domains": "local_domains",
    "domains_file": "local_domains_file",
    "hash_min": "hash_minimum",
    "max_age": "max_age_days",
}


#: SRS hash lengths (the library refuses others too).
HashLength = Annotated[int, msgspec.Meta(ge=1, le=MAX_HASH_LENGTH)]
#: SRS time stamps wrap after 1024 days.
MaxAgeDays = Annotated[int, msgspec.Meta(ge=0, le=STAMP_PERIOD - 1)]


class SrsTable(ConfigTable, frozen=True):
    """The schema of the ``[srs]`` table (postsrsd's names are taken as ours first)."""

    domain: str | None = None
    secrets_file: str | None = None
    separator: Literal["=", "+", "-"] | None = None
    hash_length: HashLength | None = None
    hash_minimum: HashLength | None = None
    hash_alphabet: HashAlphabet | None = None
    max_age_days: MaxAgeDays | None = None
    local_domains: Strings | None = None
    local_domains_file: str | None = None
    always_rewrite: bool | None = None
    original_envelope: OriginalEnvelope | None = None
    envelope_database: str | None = None
    max_aliases: Count | None = None

    def __post_init__(self) -> None:
        check_store_location("envelope_database", self.envelope_database)


def srs_settings(base: Config, table: SrsTable) -> SRSSettings:
    """The ``[srs]`` table (checked when it was loaded), paths taken from ``base``'s folder."""
    values = given(table)
    for key in ("secrets_file", "local_domains_file"):
        if key in values:
            values[key] = base.resolve(values[key])
    if "local_domains" in values:
        # postsrsd's domains may be one string, separated by commas or spaces.
        values["local_domains"] = tuple(
            domain
            for item in as_list(table.local_domains)
            for domain in item.replace(",", " ").split()
        )
    return SRSSettings(**values)
