"""Federated WOE/IV: exactly the centralized numbers, and only the documented messages."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vfl.crypto import EncryptedArray, PaillierPublicKey
from vfl.errors import DataError, ProtocolError
from vfl.net.codec import decode
from vfl.parties import simulate
from vfl.parties.local import InProcessChannel
from vfl.preprocessing import woe

ROLES = {"bank": "guest", "shop": "host", "telco": "host"}


def host_frames(n: int = 1500, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.7, n)
    y = (rng.random(n) < 1 / (1 + np.exp((np.log(income) - 10) * 3))).astype(np.int64)
    shop = pd.DataFrame({
        "income": np.where(rng.random(n) < 0.05, np.nan, income),
        "segment": rng.choice(["gold", "silver", "basic"], n),
        "visits": rng.integers(0, 4, n),
    })
    shop.loc[rng.random(n) < 0.05, "segment"] = None
    telco = pd.DataFrame({"minutes": rng.gamma(2.0, 100.0, n) + 50 * y, "rare": 0})
    telco.loc[7, "rare"] = 1  # a bin with exactly one row
    return shop, telco, y


def run(y, frames, *, share_iv=True, iv_decimals=None, channel=None, **host_kw):
    guest_kw = {"y": y, "key_bits": 1024, "share_iv": share_iv, "iv_decimals": iv_decimals}
    parties = {"bank": (woe.guest, guest_kw)}
    parties |= {name: (woe.host, {"X": X, **host_kw}) for name, X in frames.items()}
    roles = {p: ROLES[p] for p in parties}
    return simulate(parties, roles=roles, channel=channel)


@pytest.mark.parametrize("method", ["quantile", "uniform"])
def test_federated_woe_iv_equal_the_centralized_computation_exactly(method):
    shop, telco, y = host_frames()
    out = run(y, {"shop": shop, "telco": telco}, bins=8, method=method)
    for name, X in {"shop": shop, "telco": telco}.items():
        fed, central = out["bank"][name], woe.centralized(X, y, bins=8, method=method)
        anon = out[name].columns
        assert list(anon) == [f"x{i}" for i in range(X.shape[1])]
        assert fed.table["column"].map(anon).tolist() == central.table["column"].tolist()
        for col in ["count", "events", "non_events", "woe", "iv"]:
            assert np.array_equal(fed.table[col].to_numpy(), central.table[col].to_numpy()), col
        assert np.array_equal(fed.iv.to_numpy(), central.iv.to_numpy())
        # the host got the same IVs, under its real column names
        assert out[name].iv.index.tolist() == list(X.columns)
        assert np.array_equal(out[name].iv.to_numpy(), central.iv.to_numpy())
        assert out[name].bins == {
            c: central.table.loc[central.table["column"] == c, "bin"].tolist() for c in X.columns
        }
    assert out["shop"].select(0.1) == ["income"]  # the only informative shop column


def test_centralized_counts_and_formula_against_direct_computation():
    shop, _, y = host_frames()
    report = woe.centralized(shop, y, bins=5)
    codes, labels = woe.bin_column(shop["segment"], 5)
    assert labels == ["basic", "gold", "silver", "missing"]
    crosstab = pd.crosstab(codes, y)
    seg = report.table[report.table["column"] == "segment"]
    assert seg["events"].tolist() == crosstab[1].tolist()
    assert seg["non_events"].tolist() == crosstab[0].tolist()
    E, N = y.sum(), len(y) - y.sum()
    for _, row in seg.iterrows():
        woe_b = math.log((row.events / E) / (row.non_events / N))
        assert row.woe == pytest.approx(woe_b, rel=1e-12)
        assert row.iv == pytest.approx((row.events / E - row.non_events / N) * woe_b, rel=1e-12)
    # quantile edges, right-open, missing in its own last bin
    codes, labels = woe.bin_column(shop["income"], 4)
    x = shop["income"].to_numpy()
    q = np.nanquantile(x, [0.25, 0.5, 0.75])
    ok = ~np.isnan(x)
    assert np.array_equal(codes[ok], (x[ok, None] >= q).sum(axis=1))
    assert (codes[~ok] == 4).all() and labels[-1] == "missing" and len(labels) == 5


def test_fate_adjustment_for_a_bin_without_events():
    w, iv = woe.woe_iv(np.array([10, 10]), np.array([0, 5]))  # E = 5, N = 15
    assert w[0] == pytest.approx(math.log((0.5 / 5) / (10.5 / 15)))
    assert w[1] == pytest.approx(math.log((5 / 5) / (5 / 15)))
    assert iv[0] == pytest.approx((0.5 / 5 - 10.5 / 15) * w[0])
    with pytest.raises(DataError, match="both classes"):
        woe.woe_iv(np.array([4]), np.array([0]))


def test_messages_carry_no_column_names_edges_or_reusable_ciphertexts():
    shop, telco, y = host_frames(400)
    seen: list[tuple[str, str, str, bytes]] = []
    channel = InProcessChannel(list(ROLES), taps=[lambda *m: seen.append(m)])
    run(y, {"shop": shop, "telco": telco}, channel=channel)
    tags = sorted({(s, r, key.rsplit("/", 1)[1]) for s, r, key, _ in seen})
    assert tags == sorted([("bank", h, t) for h in ("shop", "telco") for t in ("pubkey", "enc_y", "iv")]
                          + [("shop", "bank", "bins"), ("telco", "bank", "bins")])
    from_hosts = [p for s, _, _, p in seen if s != "bank"]
    for payload in from_hosts:
        for name in [*shop.columns, *telco.columns, "missing", "gold"]:
            assert name.encode() not in payload
    msgs = {(s, key.rsplit("/", 1)[1]): decode(p) for s, r, key, p in seen if r in ("bank", "telco")}
    assert set(msgs[("telco", "bins")]) == {"columns", "counts", "events", "n_rows"}
    pub = PaillierPublicKey.from_wire(msgs[("bank", "pubkey")])
    enc_y = EncryptedArray.from_wire(msgs[("bank", "enc_y")], pub)
    events = EncryptedArray.from_wire(msgs[("telco", "bins")]["events"], pub)
    counts = msgs[("telco", "bins")]["counts"]
    assert counts[1].tolist() == [399, 1]  # the 'rare' column: one bin holds only row 7
    single = events.ciphertexts[len(counts[0]) + 1]
    assert single != enc_y.ciphertexts[7]  # re-randomized: the guest cannot tell which row


def test_host_gets_iv_rounded_by_default():
    shop, _, y = host_frames(300)
    out = simulate({"bank": (woe.guest, {"y": y, "key_bits": 1024}),
                    "shop": (woe.host, {"X": shop})}, roles={"bank": "guest", "shop": "host"})
    exact = out["bank"]["shop"].iv.to_numpy()
    assert np.array_equal(out["shop"].iv.to_numpy(), np.round(exact, 2))


def test_iv_not_shared_leaves_the_host_without_label_information():
    shop, _, y = host_frames(300)
    out = run(y, {"shop": shop}, share_iv=False)
    assert out["shop"].iv is None and len(out["bank"]["shop"].iv) == 3
    with pytest.raises(DataError, match="did not share IV"):
        out["shop"].select()


def test_misaligned_rows_and_bad_labels_are_refused():
    shop, _, y = host_frames(300)
    with pytest.raises(ProtocolError, match=r"expected 299 encrypted 0/1 labels.*shape \(300,\)"):
        run(y, {"shop": shop.iloc[:299]})
    with pytest.raises(DataError, match="labels must be 0/1"):
        run(np.where(y == 1, 1, -1), {"shop": shop})


def _lying_host(ctx, n_rows):
    ctx.recv(ctx.guest, "pubkey")
    ctx.recv(ctx.guest, "enc_y")
    ctx.send(ctx.guest, "bins", {"columns": ["x0"], "counts": [np.array([n_rows - 1, 0])],
                                 "events": {}, "n_rows": n_rows})


def test_guest_rejects_counts_that_do_not_add_up():
    y = np.array([0, 1] * 50)
    with pytest.raises(ProtocolError, match="counts of column 'x0' must be .* summing to 100"):
        simulate({"bank": (woe.guest, {"y": y, "key_bits": 1024}),
                  "shop": (_lying_host, {"n_rows": 100})},
                 roles={"bank": "guest", "shop": "host"})
