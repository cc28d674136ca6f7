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
    ├── DKIMError
    │   ├── TagListError         not a DKIM/ARC tag list (RFC 6376 §3.2; also a ValueError)
    │   ├── KeyFormatError       a private key, key file or DNS key record that cannot be used
    │   ├── KeyNotFoundError     no key in the store for this domain / selector
    │   └── SignatureError       a message that cannot be signed or sealed (garbage, no From)
    ├── DeliveryError            the next hop refused the message for good (5xx)
    ├── TemporaryError           .temporary = True
    │   ├── StoreError           the alias or limits store could not answer
    │   ├── DNSTempError         DNS timed out or answered SERVFAIL: retry later
    │   └── DeliveryDeferredError  the next hop could not take the message now (4xx)
    ├── ProtocolError            a peer broke a wire format: log it, close the connection
    └── CommandError             (srsfwd.cli.group) a SrsfwdError as the command line prints it

Every exception class under ``srsfwd/`` is in this tree (a test walks the modules); the
command line's ``CommandError`` lives with click in ``srsfwd/cli/group.py`` so that
importing this module never imports click. The one exception class outside it is a
signal, not an error: ``srsfwd.inline.NotInline`` ends the milter's attempt to answer on
its event loop, and is a ``BaseException`` so that no ``except Exception`` turns it into
a verdict.

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


class DKIMError(SrsfwdError):
    """A DKIM or ARC key, signature or message problem."""


class TagListError(DKIMError, ValueError):
    """Not a DKIM/ARC tag list; the caller turns it into its own, more precise error."""


class KeyFormatError(DKIMError):
    """A private key, key file or DNS key record that cannot be used (never named KeyError)."""


class KeyNotFoundError(DKIMError):
    """The key store holds no key for the domain or selector asked for."""


class SignatureError(DKIMError):
    """A message that cannot be signed or sealed: not a message, no From, a refused setting."""


class TemporaryError(SrsfwdError):
    """Something we depend on could not answer now; the same request may work later."""

    temporary = True


class StoreError(TemporaryError):
    """The alias or limits store could not be read or written."""


class DeliveryError(SrsfwdError):
    """The next hop refused the message for good (5xx)."""


class DeliveryDeferredError(TemporaryError):
    """The next hop could not take the message now (4xx, no connection, timeout)."""


class ProtocolError(SrsfwdError):
    """A peer broke the wire format: log it and close that connection."""


class DNSTempError(TemporaryError):
    """DNS timed out or answered SERVFAIL; the same query may work later."""
