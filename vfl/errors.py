"""The error hierarchy: one class per kind of failure a user must act on differently.

Every message names the thing to fix: the file, column, field, peer or protocol step.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VflError(Exception):
    """Base of every error `vfl` raises on purpose."""


class ConfigError(VflError):
    """A party or job configuration is invalid (the message names the file and field)."""


class DataError(VflError):
    """Input data is unusable: missing column, duplicates, non-numeric values, empty table..."""


class ProtocolError(VflError):
    """A protocol was violated: a malformed, unexpected or out-of-range message."""


class CodecError(ProtocolError):
    """A wire message could not be decoded safely (truncated, oversized, unknown type)."""


class MailboxFullError(ProtocolError):
    """A peer pushed more undelivered bytes into a job's mailbox than this party allows (the
    message names the peer and the message's tag)."""


class PeerError(VflError):
    """A peer failed, disappeared or could not be reached (the message names it)."""


class PeerTimeoutError(PeerError, TimeoutError):
    """Waited too long for a message from a peer (names the peer, tag and step)."""


class PolicyError(VflError):
    """A party's own policy refused the request (the message says which rule)."""


class JobCancelledError(VflError):
    """The job was cancelled (by its guest or an operator) while this role was running."""


def did_you_mean(word: object, options: Iterable[object]) -> str:
    """``"; did you mean 'epochs'?"`` for a close option, else ``""`` (for error messages)."""
    names = {str(o): o for o in options if o is not None}
    close = difflib.get_close_matches(str(word), list(names), n=1, cutoff=0.6)
    return f"; did you mean {names[close[0]]!r}?" if close else ""


class UnsafeNameError(ConfigError, ProtocolError):
    """A name that becomes a path (job id, model id, version, dataset or step name) is refused.

    It is both a configuration error (from a YAML or the Python API) and a protocol error
    (from a peer or an application), so every boundary reports it the way it reports its own.
    """


class UnknownModelError(DataError):
    """This party serves no (production version of the) model asked for."""
