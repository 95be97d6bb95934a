"""The runtime: contexts, channels, the wire codec, simulation and (later) the party service."""

from vfl.net.codec import IntBlock
from vfl.parties.context import GUEST, HOST, Context, ProgressEvent, new_job_id
from vfl.parties.local import InProcessChannel, simulate

__all__ = [
    "GUEST",
    "HOST",
    "Context",
    "InProcessChannel",
    "IntBlock",
    "ProgressEvent",
    "new_job_id",
    "simulate",
]
