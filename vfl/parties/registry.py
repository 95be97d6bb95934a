"""Protocols a party service can run, by name.

A protocol entry is ``fn(ctx, party, params) -> dict | None``: `ctx` is this party's Context
for the job (``ctx.role`` says guest or host), `party` its PartyRuntime (restricted to the
datasets the job was approved for), `params` the codec value the guest sent, which the entry
must validate. The return value must be a codec value; the guest's one is reported back to
whoever submitted the job. A dict of params may carry the key ``GUEST_ONLY``: the guest's
service strips it before it starts the hosts, so the guest's local settings (paths, sinks)
never leave it. Modules named in a party config's ``plugins`` are imported at
service start so that their ``@register`` decorators run.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from vfl.errors import ConfigError, PolicyError

Entry = Callable[[Any, Any, Any], Any]

GUEST_ONLY = "guest_only"
BUILTIN = ("vfl.jobs",)
"""Modules whose protocols every service offers (the whole pipeline as protocol "job")."""

_entries: dict[str, Entry] = {}
_lock = threading.Lock()


def register(name: str) -> Callable[[Entry], Entry]:
    """Decorator: make `fn` runnable by the party service under protocol `name`."""

    def deco(fn: Entry) -> Entry:
        with _lock:
            if name in _entries and _entries[name] is not fn:
                raise ValueError(f"protocol '{name}' is already registered by {_entries[name]!r}")
            _entries[name] = fn
        return fn

    return deco


def get(name: str) -> Entry:
    with _lock:
        if name not in _entries:
            raise PolicyError(
                f"protocol '{name}' is not offered by this party (known: {sorted(_entries)})"
            )
        return _entries[name]


def names() -> list[str]:
    with _lock:
        return sorted(_entries)


def for_hosts(params: Any) -> Any:
    """What the hosts of a job receive: the guest's params without its ``GUEST_ONLY`` part."""
    if isinstance(params, dict) and GUEST_ONLY in params:
        return {k: v for k, v in params.items() if k != GUEST_ONLY}
    return params


def load_plugins(modules: list[str]) -> None:
    """Import the modules that register protocols (the party config's ``plugins``)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"plugins: cannot import '{module}': {exc}") from exc


@register("ping")
def ping(ctx: Any, party: Any, params: Any) -> dict[str, Any] | None:
    """Diagnostics: one round trip between the guest and every host of a job."""
    if ctx.role == "guest":
        for host in ctx.hosts:
            ctx.send(host, "ping", ctx.name)
        return {"pong": {host: ctx.recv(host, "pong") for host in ctx.hosts}}
    ctx.send(ctx.guest, "pong", ctx.recv(ctx.guest, "ping") == ctx.guest)
    return None
