"""What the algorithms' resume and message-inspection tests share (hetero LR, SecureBoost).

Resume: every party runs `vfl serve` in its own OS process (tests/parties/service_kit.py),
with the test module as a plugin that registers a protocol training on the party's 'train'
dataset. `ServedTraining` writes the parties' CSVs and configs, kills a host's service as
soon as its checkpoint is on disk, and submits the job again until the guest's service
reaches the restarted host; `resumed_after` and `host_epochs` read from the logs where the
rerun resumed.

Messages: `run_tapped` trains and predicts in one process with a tap on the channel, every
message decoded; `leaves`, `public_keys` and `ciphertexts` take the messages apart for an
inspector.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.parties import service_kit as kit
from vfl.crypto import PaillierPublicKey
from vfl.errors import PeerError
from vfl.net.codec import decode
from vfl.parties import InProcessChannel, IntBlock, simulate

Message = tuple[str, str, str, Any]
"""sender, receiver, key, decoded payload"""


# --- resume: `vfl serve` processes, one killed and restarted ---------------------------------
@dataclass(frozen=True)
class ServedTraining:
    """A training protocol registered by a test module, run by the parties' services.

    Parameters
    ----------
    protocol : str
        The protocol the test module registers.
    roles : dict
        Party name -> "guest" or "host"; every party trains on its dataset 'train'.
    """

    protocol: str
    roles: dict[str, str]

    @property
    def guest(self) -> str:
        return next(p for p, role in self.roles.items() if role == "guest")

    @property
    def datasets(self) -> dict[str, list[str]]:
        return {p: ["train"] for p in self.roles}

    def federation(self, root: Path, plugin: str, Xg: pd.DataFrame, y: np.ndarray,
                   Xh: dict[str, pd.DataFrame]) -> kit.Federation:
        """Certificates, CSVs (column 'id', the guest's label 'y') and party configs under
        `root`; every service loads `plugin`, every host allows the guest this protocol only."""
        fed = kit.Federation(root, list(self.roles))
        ids = pd.Series(np.arange(len(y)), name="id")
        plugins = ["tests.parties.service_kit", plugin]
        pd.concat([ids, Xg, pd.Series(y, name="y")], axis=1).to_csv(root / f"{self.guest}.csv", index=False)
        fed.write_config(self.guest, plugins=plugins, datasets={
            "train": {"uri": str(root / f"{self.guest}.csv"), "id_column": "id", "label": "y"}})
        for h, X in Xh.items():
            pd.concat([ids, X], axis=1).to_csv(root / f"{h}.csv", index=False)
            fed.write_config(h, plugins=plugins, datasets={"train": {"uri": str(root / f"{h}.csv"), "id_column": "id"}},
                             policy={"allow": [{"peers": [self.guest], "protocols": [self.protocol],
                                                "datasets": ["train"]}]})
        return fed

    def kill_host_at(self, client: Any, served: dict[str, kit.Served], host: str, checkpoint: Path,
                     params: dict[str, Any], *, checkpoint_timeout: float, fail_timeout: float,
                     what: str) -> None:
        """Start job "first"; SIGKILL `host`'s service as soon as `checkpoint` (its file) is on
        disk; the guest's job fails naming the host. `what` names the checkpoint in a timeout."""
        client.start_job(self.guest, "first", self.protocol, params, self.roles, self.datasets)
        deadline = time.monotonic() + checkpoint_timeout
        while not checkpoint.exists():
            assert time.monotonic() < deadline, (f"no {what} checkpoint after {checkpoint_timeout:g} s:\n"
                                                        f"{served[self.guest].log()[-3000:]}")
            time.sleep(0.005)
        served[host].kill()
        info = client.wait_job(self.guest, "first", timeout=fail_timeout, poll=0.1)
        assert info.state == "failed" and host in (info.error or ""), info

    def rerun_when_reachable(self, client: Any, params: dict[str, Any]) -> Any:
        """Submit the job again until the guest's service reaches the restarted host.

        gRPC reconnects to a peer that was down only after its reconnect backoff; until then the
        guest's service fails the job while starting the host's role, before any role runs.
        """
        deadline = time.monotonic() + 150
        for attempt in itertools.count():
            try:
                return client.run(f"again-{attempt}", self.protocol, params, self.roles, self.datasets,
                                  timeout=300)
            except PeerError as exc:
                if "while starting job" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(1)
        raise AssertionError("unreachable")


def resumed_after(guest_log: str, title: str) -> list[int]:
    """The epochs after which the guest's log says the training `title` resumed."""
    return [int(e) for e in re.findall(rf"resuming {re.escape(title)} after epoch (\d+)", guest_log)]


def host_epochs(host_log: str, title: str, epochs: int) -> list[int]:
    """The epochs of `epochs` a host's log says it trained in mode he."""
    return [int(e) for e in re.findall(rf"{re.escape(title)} host \[he\] epoch (\d+)/{epochs}", host_log)]


# --- messages: one process, every message tapped ---------------------------------------------
def make_blocks(widths: list[int], n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """One feature block per party (guest first) and labels from a linear model of all of them."""
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=(n, w)) for w in widths]
    z = sum(b @ rng.normal(size=b.shape[1]) for b in blocks)
    return blocks, (z + rng.logistic(size=n) > 0).astype(int)


def run_tapped(guest: Callable[[Any], Any], host: Callable[[Any, np.ndarray], Any],
               blocks: list[np.ndarray]) -> tuple[list[Message], dict[str, Any]]:
    """`guest(ctx)` as "bank" and `host(ctx, X)` as h1, h2, ... on blocks[1:], simulated with a
    tap on the channel; returns every message, decoded, and what each host returned."""
    hosts = [f"h{i}" for i in range(1, len(blocks))]
    messages: list[Message] = []
    channel = InProcessChannel(["bank", *hosts], taps=[lambda s, r, k, p: messages.append((s, r, k, decode(p)))])
    parties = {"bank": (guest, {}), **{h: (host, {"X": b}) for h, b in zip(hosts, blocks[1:], strict=True)}}
    out = simulate(parties, {"bank": "guest", **dict.fromkeys(hosts, "host")}, channel=channel)
    return messages, {h: out[h] for h in hosts}


def leaves(value: Any) -> list[Any]:
    """Scalars, arrays and typed crypto values (keys, ciphertexts, decrypted encodings)."""
    if isinstance(value, dict) and "kind" in value:
        return [value]
    if isinstance(value, dict):
        return [x for v in value.values() for x in leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return [value]


def public_keys(messages: list[Message]) -> dict[str, PaillierPublicKey]:
    """Every Paillier public key sent, by fingerprint."""
    keys = {}
    for _, _, _, value in messages:
        for leaf in leaves(value):
            if isinstance(leaf, dict) and leaf.get("kind") == "paillier.public_key":
                key = PaillierPublicKey.from_wire(leaf)
                keys[key.fingerprint] = key
    return keys


def ciphertexts(leaf: dict[str, Any], keys: dict[str, PaillierPublicKey]) -> tuple[list[int], int]:
    """The ciphertexts of a "paillier.array" leaf and the modulus n of its key (a ciphertext
    c with c = 1 mod n is a trivial encryption, with no randomness)."""
    block = next(v for v in leaf.values() if isinstance(v, IntBlock))
    return block.to_ints(), int(keys[leaf["key"]].n)
