"""The one error tree of srsfwd: every error it raises on purpose is a SrsfwdError.

    SrsfwdError                  .temporary: retry later (4xx / TEMP) or not (5xx / PERM)
    ├── ConfigError              a configuration or secrets file is missing or wrong
    ├── AddressError             not a mail address srsfwd can work with (also a ValueError)
    ├── SRSError
    │   ├── SRSFormatError       not SRS, or SRS with a part missing (also an AddressError)
    │   ├── SRSHashError         the hash does not verify: forged or tampered
    │   ├── SRSExpiredError      the time stamp is too old or in the future
    │   ├── SRSLengthError       the rewritten local part would exceed 64 octets
    │   └── SRSAliasError        database mode: the alias is unknown
    ├── DSNError                 a bounce message srsfwd cannot read
    ├── TemporaryError           .temporary = True
    │   └── StoreError           the alias or limits store could not answer
    └── ProtocolError            a peer broke a wire format: log it, close the connection

Expected outcomes (a decision, an SPF result) are return values, never exceptions.
"""

from __future__ import annotations


class SrsfwdError(Exception):
    """Root of every error srsfwd raises on purpose."""

    temporary: bool = False


class ConfigError(SrsfwdError):
    """A configuration value, secrets file or key file is missing or unusable."""


class AddressError(SrsfwdError, ValueError):
    """The text is not a mail address that srsfwd can work with."""


class SRSError(SrsfwdError):
    """An SRS address could not be made or reversed."""


class SRSFormatError(SRSError, AddressError):
    """Not an SRS address, or an SRS address with a part missing."""


class SRSHashError(SRSError):
    """The SRS hash does not verify with any of our secrets."""


class SRSExpiredError(SRSError):
    """The SRS time stamp is older than the maximum age, or in the future."""


class SRSLengthError(SRSError):
    """The rewritten local part would be longer than RFC 5321 allows (64 octets)."""


class SRSAliasError(SRSError):
    """Database mode: the SRS address names an alias the store does not know."""


class DSNError(SrsfwdError):
    """A bounce message that cannot be read."""


class TemporaryError(SrsfwdError):
    """Something we depend on could not answer now; the same request may work later."""

    temporary = True


class StoreError(TemporaryError):
    """The alias or limits store could not be read or written."""


class ProtocolError(SrsfwdError):
    """A peer broke the wire format: log it and close that connection."""
