"""ECDH-PSI end to end in simulation: correctness against a plaintext intersection, alignment,
options, policy, multi-host, progress, the session salt, and what crosses the wire."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest

from vfl.errors import ConfigError, DataError, PolicyError, VflError
from vfl.net import codec
from vfl.parties import simulate
from vfl.parties.context import ProgressEvent
from vfl.parties.local import InProcessChannel
from vfl.parties.progress import ProgressDisplay
from vfl.psi import align, ecdh
from vfl.psi.ids import encode_rows, id_columns
from vfl.psi.x25519 import POINT, encrypt, hash_encrypt, hash_to_u, session_salt

CHUNK = 64  # small chunks: every run streams several chunks each way
TIMEOUT = 60.0
KEY = ["branch", "no"]  # the composite key


# --- data with a known intersection -----------------------------------------------------------


def _keys(kind: str, n: int, rng: np.random.Generator) -> list[Any]:
    """`n` distinct random ids; ints are >= 1e12 so they never equal a row position."""
    values = np.unique(rng.integers(10**12, 10**15, 2 * n))[:n]
    values = values[rng.permutation(len(values))]
    if kind == "int":
        return [int(v) for v in values]
    if kind == "str":
        return [f"cüst-{v}" for v in values]
    return [(f"b{v % 7}", int(v)) for v in values]  # composite: (branch, no)


def _table(keys: list[Any], kind: str, party: str) -> pd.DataFrame:
    """A party's table: its id column(s) plus a column of its own (the customer, spelled out)."""
    if kind == "composite":
        frame = pd.DataFrame(keys, columns=KEY)
    else:
        frame = pd.DataFrame({"id": keys})
    frame[f"{party}_who"] = [repr(k) for k in keys]
    return frame


def _ids(table: pd.DataFrame) -> pd.DataFrame:
    return table[KEY] if "branch" in table else table[["id"]]


def _sets(kind: str, n_guest: int, n_host: int, common: int,
          seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, set[Any]]:
    rng = np.random.default_rng(seed)
    universe = _keys(kind, n_guest + n_host - common, rng)
    shared, rest = universe[:common], universe[common:]
    guest = shared + rest[: n_guest - common]
    host = shared + rest[n_guest - common :]
    guest = [guest[i] for i in rng.permutation(len(guest))]
    host = [host[i] for i in rng.permutation(len(host))]
    return _table(guest, kind, "bank"), _table(host, kind, "partner"), set(shared)


def _who(frame: pd.DataFrame) -> list[str]:
    return frame.filter(like="_who").iloc[:, 0].tolist()


# --- running parties --------------------------------------------------------------------------


def _catching(fn):
    """The role, returning its error instead of raising (to look at every party's error)."""

    def role(ctx, **kwargs):
        try:
            return fn(ctx, **kwargs)
        except VflError as exc:
            return exc

    return role


def _run(guest_ids, hosts: dict[str, Any], *, guest_kw=None, host_kw=None, catch=False,
         channel=None, on_progress=None, executor=None, timeout=TIMEOUT) -> dict[str, Any]:
    g, h = (_catching(ecdh.guest), _catching(ecdh.host)) if catch else (ecdh.guest, ecdh.host)
    parties = {"bank": (g, {"ids": guest_ids, "chunk_size": CHUNK, **(guest_kw or {})})}
    for name, ids in hosts.items():
        parties[name] = (h, {"ids": ids, "chunk_size": CHUNK, **(host_kw or {})})
    roles = {"bank": "guest", **dict.fromkeys(hosts, "host")}
    return simulate(parties, roles, channel=channel, on_progress=on_progress,
                    executor=executor, timeout=timeout)


class Wire:
    """An in-process channel that records every message: (sender, receiver, key, payload)."""

    def __init__(self, parties: list[str]) -> None:
        self.messages: list[tuple[str, str, str, bytes]] = []
        self.channel = InProcessChannel(parties, taps=[self._tap])

    def _tap(self, sender: str, receiver: str, key: str, payload: bytes) -> None:
        self.messages.append((sender, receiver, key, payload))

    def to(self, receiver: str) -> list[tuple[str, bytes]]:
        return [(key, payload) for _, r, key, payload in self.messages if r == receiver]

    def value(self, sender: str, pattern: str) -> Any:
        [payload] = [p for s, _, k, p in self.messages if s == sender and re.search(pattern, k)]
        return codec.decode(payload)

    def points(self, sender: str, stream: str) -> list[bytes]:
        """The 32-byte points of a chunked stream, in the order sent."""
        chunks = sorted((int(m.group(1)), p) for s, _, k, p in self.messages
                        if s == sender and (m := re.search(rf"/{stream}/(\d+)/chunk$", k)))
        data = b"".join(codec.decode(p) for _, p in chunks)
        return [data[i : i + POINT] for i in range(0, len(data), POINT)]


# --- correctness ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["int", "str", "composite"])
@pytest.mark.parametrize("common", [1, 100, 200])  # one element, 50 %, 100 %
def test_intersection_and_alignment_match_plaintext(kind, common):
    guest, host, expected = _sets(kind, 200, 200 if common != 1 else 150, common,
                                  seed=common)
    out = _run(_ids(guest), {"partner": _ids(host)})
    g, h = out["bank"], out["partner"]
    assert g.size == h.size == len(expected)
    assert (g.own_size, g.peer_size, h.own_size, h.peer_size) == (
        len(guest), len(host), len(host), len(guest))
    g_rows, h_rows = align(guest, g), align(host, h)
    # the same customers, in the same order, on both sides; each side has only its own columns
    assert _who(g_rows) == _who(h_rows)
    assert set(_who(g_rows)) == {repr(k) for k in expected}
    assert "partner_who" not in g_rows and "bank_who" not in h_rows
    assert len(set(g.rows.tolist())) == len(g.rows)


def test_whole_float_and_int_ids_meet_but_str_does_not():
    guest = pd.Series([10**12 + i for i in range(50)])
    as_float = pd.Series([float(10**12 + i) for i in range(25, 75)])
    out = _run(guest, {"partner": as_float})
    assert out["bank"].size == 25
    out = _run(guest, {"partner": as_float.astype(int).astype(str)}, catch=True)
    assert isinstance(out["bank"], DataError) and "int 1 and str '1' differ" in str(out["bank"])


def test_empty_intersection_is_a_clear_error_on_both_sides():
    guest, host, expected = _sets("str", 80, 90, 0)
    assert not expected
    out = _run(_ids(guest), {"partner": _ids(host)}, catch=True)
    g, h = out["bank"], out["partner"]
    assert isinstance(g, DataError) and isinstance(h, DataError)
    assert re.search(r"^bank: PSI intersection is empty at step 'partner' "
                     r"\(host 'partner' reports no common ids\)", str(g))
    assert str(h).startswith("partner: PSI intersection is empty")


# --- duplicates -------------------------------------------------------------------------------


def test_duplicate_ids_are_refused_by_default_naming_party_and_column():
    guest = pd.DataFrame({"cust": [1, 2, 3, 2, 2]})
    with pytest.raises(DataError, match=r"bank: PSI ids: 2 duplicate id row\(s\) in \['cust'\]"):
        _run(guest, {"partner": pd.DataFrame({"cust": [1, 2]})})


def test_duplicate_ids_keep_first_aligns_the_first_occurrence():
    guest = pd.DataFrame({"cust": [7, 8, 9, 8, 7], "row": ["a", "b", "c", "d", "e"]})
    host = pd.DataFrame({"cust": [9, 8, 7, 9], "h": ["x", "y", "z", "w"]})
    out = _run(guest[["cust"]], {"partner": host[["cust"]]},
               guest_kw={"duplicates": "keep_first"}, host_kw={"duplicates": "keep_first"})
    g, h = align(guest, out["bank"]), align(host, out["partner"])
    assert out["bank"].own_size == out["partner"].own_size == 3
    assert g["cust"].tolist() == h["cust"].tolist()
    assert dict(zip(g["cust"], g["row"], strict=True)) == {7: "a", 8: "b", 9: "c"}
    assert dict(zip(h["cust"], h["h"], strict=True)) == {9: "x", 8: "y", 7: "z"}


# --- cardinality_only and policy ----------------------------------------------------------------


def test_cardinality_only_reveals_only_the_size(monkeypatch):
    key = bytes(range(32))  # one known scalar, to follow the points through the protocol
    monkeypatch.setattr(ecdh, "new_key", lambda: key)
    guest, host, expected = _sets("int", 120, 100, 40)
    wire = Wire(["bank", "partner"])
    out = _run(_ids(guest), {"partner": _ids(host)}, channel=wire.channel,
               guest_kw={"cardinality_only": True}, host_kw={"cardinality_only": True})
    for r in out.values():
        assert r.cardinality_only and r.rows is None and r.size == len(expected)
        assert r.pair_sizes == {"bank": 40} or r.pair_sizes == {"partner": 40}
        with pytest.raises(DataError, match="no rows to align"):
            align(guest, r)
    assert out["bank"].peer_sizes == {"partner": 100} and out["partner"].peer_sizes == {"bank": 120}
    # no positions cross the wire, and the doubly encrypted points come back re-shuffled: the
    # same values as the singly encrypted ones under the key, in an order unlinked from the rows
    assert not any(k.endswith("/final") for _, _, k, _ in wire.messages)
    for sender, stream, returner, returned in (("bank", "a", "partner", "ba"),
                                               ("partner", "b", "bank", "ab")):
        sent, back = wire.points(sender, stream), wire.points(returner, returned)
        expect = encrypt(key, b"".join(sent))
        assert sorted(back) == sorted(expect[i : i + POINT] for i in range(0, len(expect), POINT))
        assert b"".join(back) != expect


def test_host_policy_cardinality_only_refuses_a_guest_asking_for_rows():
    out = _run(pd.Series(range(10**12, 10**12 + 20)), {"partner": pd.Series(range(10**12, 10**12 + 20))},
               host_kw={"cardinality_only": True}, catch=True)
    assert isinstance(out["bank"], PolicyError)
    assert "host 'partner' refused PSI: policy cardinality_only=true" in str(out["bank"])


def test_min_intersection_refuses_before_the_guest_learns_anything():
    guest, host, expected = _sets("str", 100, 100, 30)
    wire = Wire(["bank", "partner"])
    out = _run(_ids(guest), {"partner": _ids(host)}, channel=wire.channel,
               host_kw={"min_intersection": 31}, catch=True)
    assert isinstance(out["bank"], PolicyError) and isinstance(out["partner"], PolicyError)
    assert "host 'partner' refused PSI: policy min_intersection=31" in str(out["bank"])
    received = [key.split("/", 1)[1] for key, _ in wire.to("bank")]
    # the guest got the hello, the host's singly encrypted points (useless without its key)
    # and the refusal: never the doubly encrypted 'ba' that would reveal the intersection
    assert received[0] == "partner/hello"
    assert received[-1] == "partner/verdict"
    assert all(re.fullmatch(r"partner/b/\d+/chunk", k) for k in received[1:-1])
    verdict = wire.value("partner", "/verdict$")
    assert verdict["status"] == "refused" and "30" not in verdict["reason"]
    assert not any("/final" in k for _, _, k, _ in wire.messages)


def test_min_intersection_above_a_set_size_refuses_at_hello():
    wire = Wire(["bank", "partner"])
    out = _run(pd.Series(range(10**12, 10**12 + 20)), {"partner": pd.Series(range(10**12, 10**12 + 500))},
               channel=wire.channel, host_kw={"min_intersection": 50}, catch=True)
    assert isinstance(out["bank"], PolicyError)
    assert "a set of the guest is smaller" in str(out["bank"])
    [(key, payload)] = wire.to("bank")
    assert key.endswith("partner/hello")
    assert codec.decode(payload).keys() == {"status", "reason"}  # not even the host's size


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="min_intersection"):
        _run(pd.Series([1, 2]), {"partner": pd.Series([1, 2])}, host_kw={"min_intersection": -1})
    with pytest.raises(ConfigError, match="chunk_size"):
        _run(pd.Series([1, 2]), {"partner": pd.Series([1, 2])}, guest_kw={"chunk_size": 0})


# --- several hosts ----------------------------------------------------------------------------


def test_multi_host_alignment_is_common_to_all_parties():
    rng = np.random.default_rng(3)
    universe = _keys("str", 400, rng)
    guest = universe[:200]
    h1 = universe[50:260]
    h2 = universe[:30] + universe[120:230] + universe[300:360]
    tables = {"bank": _table(guest, "str", "bank"), "p1": _table(h1, "str", "p1"),
              "p2": _table(h2, "str", "p2")}
    out = _run(_ids(tables["bank"]), {"p1": _ids(tables["p1"]), "p2": _ids(tables["p2"])})
    expected = set(guest) & set(h1) & set(h2)
    assert len(expected) == 80
    aligned = {p: align(tables[p], out[p])["id"].tolist() for p in tables}
    assert aligned["bank"] == aligned["p1"] == aligned["p2"]
    assert set(aligned["bank"]) == expected
    assert out["bank"].pair_sizes == {"p1": 150, "p2": 110}
    assert out["bank"].peer_sizes == {"p1": 210, "p2": 200}
    assert out["p1"].size == out["p2"].size == out["bank"].size == 80
    with pytest.raises(ConfigError, match="one host at a time"):
        _run(_ids(tables["bank"]), {"p1": _ids(tables["p1"]), "p2": _ids(tables["p2"])},
             guest_kw={"cardinality_only": True})


# --- progress, artifacts ----------------------------------------------------------------------


def test_progress_events_reach_the_total_on_every_party():
    events: list[ProgressEvent] = []
    lock = threading.Lock()

    def record(e: ProgressEvent) -> None:
        with lock:
            events.append(e)

    out = io.StringIO()
    bar = ProgressDisplay(out, live=False, interval=0.0)
    _run(pd.Series(range(10**12, 10**12 + 300)), {"partner": pd.Series(range(10**12, 10**12 + 200))},
         on_progress=lambda e: (record(e), bar(e)))
    for party in ("bank", "partner"):
        mine = [e for e in events if e.party == party]
        assert {e.total for e in mine} == {500}
        assert max(e.done for e in mine) == 500
        assert len(mine) >= 500 // CHUNK and all(e.info["unit"] == "points" for e in mine)
    for party in ("bank", "partner"):  # the pair's step is named after the host
        assert re.search(rf"^\[{party} partner\] 500/500 points 100% ", out.getvalue(), re.M), party


# --- the session salt -------------------------------------------------------------------------


def test_both_salt_contributions_change_the_encodings(monkeypatch):
    """With the scalar fixed, the guest's points are exactly X25519(a, u_s(x)) with
    s = H(s_g || s_h); flipping either party's salt gives entirely different points."""
    key = bytes(range(32))
    monkeypatch.setattr(ecdh, "new_key", lambda: key)
    guest = pd.DataFrame({"id": [f"c{i}" for i in range(100)]})
    host = pd.DataFrame({"id": [f"c{i}" for i in range(50, 130)]})
    sent = []
    for _ in range(2):
        wire = Wire(["bank", "partner"])
        _run(guest, {"partner": host}, channel=wire.channel)
        s_g = wire.value("bank", "partner/hello$")["salt"]
        s_h = wire.value("partner", "partner/hello$")["salt"]
        sent.append((s_g, s_h, set(wire.points("bank", "a"))))

    def points(s_g: bytes, s_h: bytes) -> set[bytes]:
        data = hash_encrypt(key, session_salt(s_g, s_h), id_columns(guest, "t"))
        return {data[i : i + POINT] for i in range(0, len(data), POINT)}

    s_g, s_h, a = sent[0]
    flip = bytes([s_g[0] ^ 1]) + s_g[1:]
    assert a == points(s_g, s_h)
    assert not a & points(flip, s_h)
    assert not a & points(s_g, bytes([s_h[0] ^ 1]) + s_h[1:])
    assert sent[1][0] != s_g and sent[1][1] != s_h and not sent[1][2] & a  # fresh every run


# --- what crosses the wire --------------------------------------------------------------------


def _forbidden(table: pd.DataFrame, salts: list[bytes]) -> tuple[list[bytes], set[bytes], set[int]]:
    """A party's raw ids (as byte strings), their plain and PSI hashes, and its int ids."""
    ids = _ids(table)
    rows = encode_rows(id_columns(ids, "t"))
    raw = {r for r in rows}
    ints: set[int] = set()
    for v in ids.iloc[:, 0]:
        raw.add(str(v).encode())
        if isinstance(v, int | np.integer):
            ints.add(int(v))
            raw.add(np.int64(v).tobytes())
            raw.add(int(v).to_bytes(8, "big"))
    hashes = {hashlib.sha256(r).digest() for r in raw}
    for s in salts:
        for u in hash_to_u(s, rows):
            hashes |= {u, bytes(u[:31]) + bytes([u[31] & 0x7F])}  # as X25519 reads it
    return sorted(raw, key=len, reverse=True), hashes, ints


def _leaks(payload: bytes, raw: list[bytes], hashes: set[bytes], ints: set[int]) -> list[str]:
    found = [f"raw {r!r}" for r in raw if r in payload]
    found += [f"hash at {i}" for i in range(len(payload) - 31) if payload[i : i + 32] in hashes]

    def walk(v: Any) -> None:
        if isinstance(v, np.ndarray) and v.dtype.kind in "iu":
            found.extend(f"int id {x}" for x in set(v.ravel().tolist()) & ints)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, int) and v in ints:
            found.append(f"int id {v}")

    walk(codec.decode(payload))
    return found


@pytest.mark.parametrize("kind", ["int", "str"])
def test_no_party_receives_the_others_raw_or_hashed_ids(kind):
    guest, host, expected = _sets(kind, 150, 130, 60, seed=9)
    wire = Wire(["bank", "partner"])
    out = _run(_ids(guest), {"partner": _ids(host)}, channel=wire.channel)
    assert out["bank"].size == len(expected)
    salts = [wire.value("bank", "partner/hello$")["salt"], wire.value("partner", "partner/hello$")["salt"]]
    session = session_salt(*salts)
    for me, other in (("bank", host), ("partner", guest)):
        raw, hashes, ints = _forbidden(other, [session, *salts])
        received = wire.to(me)
        assert len(received) > 4
        for key, payload in received:
            assert not _leaks(payload, raw, hashes, ints), f"{me} received ids in {key}"
        # the detector does see ids and their hashes when they are there
        planted = codec.encode([b"".join(hash_to_u(session, encode_rows(id_columns(_ids(other), "t"))))])
        assert _leaks(planted, raw, hashes, ints)
        assert _leaks(codec.encode(b"x" + raw[-1] + b"y"), raw, hashes, ints)
        if ints:
            assert _leaks(codec.encode(np.array(sorted(ints)[:3])), raw, hashes, ints)


def test_the_wire_carries_only_points_sizes_and_positions():
    """Every stream chunk is a whole number of points, and double encryption commutes: the
    guest's `ab` are the host's `b` points under the guest's key (checked with that key)."""
    key = bytes(range(1, 33))
    guest, host, _ = _sets("int", 90, 90, 45, seed=5)
    wire = Wire(["bank", "partner"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ecdh, "new_key", lambda: key)
        _run(_ids(guest), {"partner": _ids(host)}, channel=wire.channel)
    b, ab = wire.points("partner", "b"), wire.points("bank", "ab")
    assert encrypt(key, b"".join(b)) == b"".join(ab)
    final = wire.value("bank", "/final$")
    assert final.dtype == np.int64 and len(final) == 45 and final.max() < 90


# --- failure handling -------------------------------------------------------------------------


def test_a_failing_worker_ends_both_parties_promptly(monkeypatch):
    """Both parties' sending streams fail while their receiving streams wait on each other:
    the receivers notice their failed sibling instead of waiting out the timeout."""

    def broken(*args):
        raise RuntimeError("worker crashed")

    monkeypatch.setattr(ecdh, "hash_encrypt", broken)
    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool, pytest.raises(RuntimeError, match="worker crashed"):
        _run(pd.Series(range(100)), {"partner": pd.Series(range(100))}, executor=pool,
             timeout=60)
    assert time.monotonic() - start < 20
