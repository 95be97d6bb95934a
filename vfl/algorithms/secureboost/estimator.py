"""SecureBoost across a guest and its hosts: the guest's estimator and the hosts' roles.

The guest drives: `SecureBoostClassifier(...).fit(ctx, X, y)` sends the training plan, every
host's service runs `host_fit(ctx, X_h)` with its own data. Each party bins its own features
once; then every tree is one epoch of the session skeleton (`vfl.algorithms.session`): the
guest computes the gradients, the parties grow the tree level by level
(`vfl.algorithms.secureboost.protocol`), and the guest decides whether to go on. Every
party checkpoints after every tree in its own directory and resumes at a tree boundary.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.base import BaseEstimator

from vfl.algorithms import contributions, session_start
from vfl.algorithms.guest_classifier import GuestClassifierMixin, sigmoid
from vfl.algorithms.secureboost.binning import Bins
from vfl.algorithms.secureboost.histograms import Candidates
from vfl.algorithms.secureboost.model import GUEST, LEAF, SBGuestPart, SBHostPart
from vfl.algorithms.secureboost.packing import FRAC_BITS, GHLayout
from vfl.algorithms.secureboost.protocol import (
    GuestTreeInputs,
    HostTreeInputs,
    guest_key,
    guest_tree,
    host_key,
    host_tree,
    new_order,
)
from vfl.algorithms.secureboost.tree import SplitRule, Tree
from vfl.algorithms.session import HE, EpochOutcome, early_stopping, training_mode
from vfl.algorithms.session_start import HostPolicy, PlanReply, guest_start, host_start
from vfl.algorithms.validation import EpochValidator
from vfl.crypto import MIN_KEY_BITS, PaillierPrivateKey, PaillierPublicKey
from vfl.errors import ConfigError, DataError, ProtocolError
from vfl.parties.context import Context

MAX_TREES = 10_000
MAX_DEPTH = 16
MAX_BIN = 255  # codes are uint8 and the missing bin takes one more


# --- the plan: what the guest asks every host to do ---------------------------------------
class SBReply(PlanReply):
    """A host's answer to an accepted plan: how many candidate splits (split ids) it offers."""

    n_candidates: int = Field(ge=0, le=1 << 24)


class TrainingPlan(session_start.TrainingPlan):
    """The SecureBoost plan: the session's fields (an epoch is a tree), the key size, the tree
    shape, the bins, feature sampling and the fixed-point layout of the packed gradients."""

    title: ClassVar[str] = "SecureBoost"
    reply: ClassVar[type[PlanReply]] = SBReply

    mode: Literal["he"]
    key_bits: int = Field(ge=MIN_KEY_BITS, le=8192)
    max_depth: int = Field(ge=1, le=MAX_DEPTH)
    max_bin: int = Field(ge=2, le=MAX_BIN)
    colsample_bytree: float = Field(gt=0, le=1)
    seed: int = Field(ge=0, le=(1 << 63) - 1)
    frac_bits: int = Field(ge=8, le=64)
    slot_bits: int = Field(ge=16, le=256)
    pack_bins: bool

    @property
    def layout(self) -> GHLayout:
        return GHLayout(self.frac_bits, self.slot_bits, self.pack_bins)


def _as_matrix(X: Any, what: str) -> tuple[np.ndarray, list[str] | None]:
    """A float table; NaN is a missing value (its own bin), infinity is refused."""
    names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
    if isinstance(X, pd.DataFrame):
        bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise DataError(f"{what}: non-numeric columns {bad}; encode them first")
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise DataError(f"{what} must be a non-empty 2-D table, got shape {arr.shape}")
    if np.isinf(arr).any():
        cols = np.flatnonzero(np.isinf(arr).any(axis=0))
        raise DataError(f"{what}: infinite values in columns {[names[c] for c in cols] if names else cols.tolist()}")
    return arr, names


def _feature_sample(n_features: int, fraction: float, seed: int, tree: int, party: str) -> np.ndarray:
    """Which of a party's features tree `tree` may split on (colsample_bytree), seeded by the plan."""
    if fraction >= 1.0 or n_features == 0:
        return np.ones(n_features, dtype=bool)
    salt = int.from_bytes(hashlib.sha256(party.encode()).digest()[:8], "big")
    rng = np.random.default_rng([seed, tree, salt])
    keep = np.zeros(n_features, dtype=bool)
    keep[rng.choice(n_features, max(1, round(fraction * n_features)), replace=False)] = True
    return keep


def forest(trees: list[dict[str, list[Any]]], n_features: int, hosts: list[str], base_score: float,
           names: list[str] | None) -> SBGuestPart:
    """The guest's model part from its trees (node lists as `Tree` keeps them)."""
    arrays: dict[str, list[Any]] = {k: [] for k in SBGuestPart.ARRAYS}
    for tree in trees:
        base = len(arrays["owner"])
        arrays["roots"].append(base)
        for k in ("owner", "feature", "threshold", "missing_left", "value"):
            arrays[k].extend(tree[k])
        for k in ("left", "right"):
            arrays[k].extend(v + base if v >= 0 else -1 for v in tree[k])
    types = {"threshold": np.float64, "value": np.float64, "missing_left": bool}
    return SBGuestPart(n_features, hosts, base_score, feature_names=names,
                       **{k: np.asarray(v, dtype=types.get(k, np.int64)) for k, v in arrays.items()})


# --- guest ----------------------------------------------------------------------------------
class SecureBoostClassifier(GuestClassifierMixin, BaseEstimator):
    """The guest's estimator of SecureBoost (a scikit-learn estimator; hosts take part).

    Gradient-boosted trees on the logistic loss, XGBoost's second-order splits on quantile
    bins, across the guest's features and every host's (`host_fit`); the hosts see only
    encrypted gradients, the guest only the hosts' split ids and their left/right partitions.
    Every hyper-parameter is keyword-only; docs/secureboost.md explains each one.

    Parameters
    ----------
    n_estimators : int, default 30
        Trees to grow (one epoch of the session each).
    max_depth : int, default 3
        Levels of splits per tree.
    learning_rate : float, default 0.3
        Shrinkage of every leaf value.
    max_bin : int, default 32
        Quantile bins per feature (each party bins its own; missing values get one more).
    min_child_weight : float, default 1.0
        Smallest hessian sum of a child.
    reg_lambda : float, default 1.0
        L2 regularization of the leaf values.
    gamma : float, default 0.0
        Smallest gain of a split.
    subsample : float, default 1.0
        Share of the training rows each tree sees (drawn by the guest; hosts see zero
        gradients for the others, not which rows they are).
    colsample_bytree : float, default 1.0
        Share of each party's features each tree may split on (each party draws its own).
    class_weight : None, "balanced" or dict, default None
        Weights of the two classes (multiplied with ``sample_weight``).
    early_stopping : {"auc", "ks"} or None, default None
        Stop after `patience` trees without improvement of that validation metric on
        ``(X_val, y_val)`` and keep the trees up to the best one.
    patience : int, default 3
        Trees without improvement before early stopping stops.
    key_bits : int, default 2048
        Size of the guest's Paillier key.
    mode : {"he"}, default "he"
        Encrypted training (the only mode of SecureBoost).
    pack_bins : bool, default True
        Pack as many (G_L, H_L) sums per ciphertext as the key holds; False sends one per
        ciphertext (the unpacked protocol, to measure what packing saves).
    random_state : int, default 0
        Seed of row and feature sampling.
    checkpoint_dir : str or Path or None, default None
        Per-tree checkpoints; a new fit with the same plan resumes from them.

    Attributes
    ----------
    classes_ : numpy.ndarray
        The two labels; ``classes_[1]`` is the positive class.
    part_ : SBGuestPart
        The guest's model part (the trees), as exported and served.
    n_trees_ : int
        Trees kept (fewer than `n_estimators` after early stopping).
    base_score_ : float
        The raw score every tree starts from (log-odds of the weighted label mean).
    history_ : list of dict
        Per tree: its seconds, and the validation metrics when validating.
    best_iteration_ : int
        The best tree by the validation metric (-1 without validation).
    split_importance_ : dict
        Splits per guest feature name, and per host (``"host:<name>"``, its features unnamed).
    gain_importance_ : dict
        Total gain of the splits, keyed as `split_importance_`.
    """

    classes_: np.ndarray
    part_: SBGuestPart

    def __init__(
        self,
        *,
        n_estimators: int = 30,
        max_depth: int = 3,
        learning_rate: float = 0.3,
        max_bin: int = 32,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        gamma: float = 0.0,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        class_weight: None | str | dict[Any, float] = None,
        early_stopping: str | None = None,
        patience: int = 3,
        key_bits: int = 2048,
        mode: str = HE,
        pack_bins: bool = True,
        random_state: int = 0,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.max_bin = max_bin
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.gamma = gamma
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.patience = patience
        self.key_bits = key_bits
        self.mode = mode
        self.pack_bins = pack_bins
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir

    # -- checks -------------------------------------------------------------------------------
    def check_params(self) -> SplitRule:
        """Types and ranges of every setting, without data (what `fit` would refuse): a job
        checks its params with this before any party does work. Returns the split rule."""
        if training_mode(self.mode) != HE:
            raise ConfigError("mode: SecureBoost trains only in mode 'he' (the hosts' histograms need "
                              "encrypted gradients)")
        early_stopping(self.early_stopping)
        ranges = {"n_estimators": (1, MAX_TREES), "max_depth": (1, MAX_DEPTH), "max_bin": (2, MAX_BIN),
                  "patience": (1, MAX_TREES), "key_bits": (MIN_KEY_BITS, 8192), "random_state": (0, (1 << 63) - 1)}
        for name, (lo, hi) in ranges.items():
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or not lo <= v <= hi:
                raise ConfigError(f"{name} must be an int in [{lo}, {hi}], got {v!r}")
        limits: list[tuple[str, float, float, bool]] = [  # name, low, high, low excluded
            ("learning_rate", 0, np.inf, True), ("min_child_weight", 0, np.inf, False),
            ("reg_lambda", 0, np.inf, False), ("gamma", 0, np.inf, False),
            ("subsample", 0, 1, True), ("colsample_bytree", 0, 1, True)]
        for key, low, high, open_low in limits:
            v = getattr(self, key)
            if (isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v > high
                    or v < low or (open_low and v == low)):
                raise ConfigError(f"{key} must be a number in {'(' if open_low else '['}{low}, {high}], got {v!r}")
        if not isinstance(self.pack_bins, bool):
            raise ConfigError(f"pack_bins must be true or false, got {self.pack_bins!r}")
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, dict)):
            raise ConfigError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        return SplitRule(float(self.learning_rate), float(self.reg_lambda), float(self.gamma),
                         float(self.min_child_weight))

    def _labels(self, y: Any, what: str, fitting: bool) -> np.ndarray:
        y = np.asarray(y).ravel()
        classes = np.unique(y)
        if fitting:
            if len(classes) != 2:
                raise DataError(f"{what} must have exactly two classes, got {classes.tolist()}")
            self.classes_ = classes
        unknown = sorted(set(classes.tolist()) - set(self.classes_.tolist()))
        if unknown:
            raise DataError(f"{what} has classes {unknown} unseen in training {self.classes_.tolist()}")
        return (y == self.classes_[1]).astype(np.float64)

    def _row_weights(self, y: np.ndarray, sample_weight: Any) -> np.ndarray:
        n = len(y)
        s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).ravel()
        if s.shape != (n,) or not np.all(np.isfinite(s)) or np.any(s < 0) or s.sum() <= 0:
            raise DataError(f"sample_weight must be {n} finite non-negative values, not all zero")
        cw = self.class_weight
        if cw is None:
            return s
        if cw == "balanced":
            pos = float(np.mean(y))
            per = (0.5 / (1 - pos), 0.5 / pos)
        else:
            assert isinstance(cw, dict)
            missing = [c for c in self.classes_.tolist() if c not in cw]
            if missing:
                raise ConfigError(f"class_weight has no weight for classes {missing}")
            per = (float(cw[self.classes_[0]]), float(cw[self.classes_[1]]))
        return s * np.where(y > 0, per[1], per[0])

    # -- training ---------------------------------------------------------------------------
    def fit(self, ctx: Context, X: Any, y: Any, sample_weight: Any = None,
            X_val: Any = None, y_val: Any = None) -> SecureBoostClassifier:
        """Grow the trees with every host of `ctx` (rows aligned by PSI); returns self.

        Parameters
        ----------
        ctx : Context
            The guest's context of a job or simulation with the hosts.
        X : array-like or pandas.DataFrame
            The guest's features (NaN: missing).
        y : array-like
            Two classes.
        sample_weight : array-like or None
            Row weights.
        X_val, y_val : array-like or None
            Validation rows (the hosts pass their own ``X_val``) for metrics and early stopping.

        Returns
        -------
        SecureBoostClassifier
            self, fitted.
        """
        rule = self.check_params()
        Xg, names = _as_matrix(X, "guest features X")
        y01 = self._labels(y, "y", fitting=True)
        if len(y01) != len(Xg):
            raise DataError(f"X has {len(Xg)} rows but y has {len(y01)}")
        w = self._row_weights(y01, sample_weight)
        Xv = yv = None
        if X_val is not None:
            Xv, _ = _as_matrix(X_val, "validation features X_val")
            yv = self._labels(y_val, "y_val", fitting=False) > 0
            if Xv.shape[1] != Xg.shape[1] or len(yv) != len(Xv):
                raise DataError(f"X_val {Xv.shape} / y_val ({len(yv)}) do not match X's {Xg.shape[1]} columns")
        stop_on = early_stopping(self.early_stopping)
        if stop_on and Xv is None:
            raise ConfigError("early_stopping needs a validation set: pass X_val and y_val to fit")
        layout = GHLayout.for_rows(len(Xg), float(w.max()), FRAC_BITS, self.pack_bins)
        plan = TrainingPlan.make(
            mode=HE, epochs=int(self.n_estimators), n_rows=len(Xg), n_val_rows=0 if Xv is None else len(Xv),
            early_stopping=stop_on is not None, key_bits=int(self.key_bits), max_depth=int(self.max_depth),
            max_bin=int(self.max_bin), colsample_bytree=float(self.colsample_bytree), seed=int(self.random_state),
            frac_bits=layout.frac_bits, slot_bits=layout.slot_bits, pack_bins=layout.pack_bins)
        session = guest_start(ctx, plan, self.checkpoint_dir, handshake=lambda c, p, r: guest_key(c, p.key_bits))
        host_candidates = {h: reply.n_candidates for h, reply in session.replies.items()}
        public, private = session.keys
        hosts = sorted(ctx.hosts)
        bins = Bins.fit(Xg, plan.max_bin)
        codes = bins.transform(Xg)
        candidates = Candidates.of(bins, np.isnan(Xg).any(axis=0))
        mean = float(np.average(y01, weights=w))
        base = float(np.log(mean / (1 - mean)))
        state: dict[str, Any] = {"trees": [], "F": np.full(len(Xg), base), "columns": dict.fromkeys(hosts, 0),
                                 "val_bits": {h: [] for h in hosts}, "best_trees": 0, "validation": None}
        validator = EpochValidator(stop_on or "auc", self.patience if stop_on else None)
        if session.state is not None:
            state = session.state
            validator.load_state(state["validation"])

        def train_tree(tctx: Context, t: int) -> EpochOutcome:
            tree, record = self._grow(tctx, t, plan, state, rule, codes, bins, candidates, y01, w,
                                      host_candidates, public, private)
            for host in ctx.hosts:
                state["val_bits"][host].append(self._tree_end(tctx, host, plan.n_val_rows, tree, hosts.index(host) + 1))
            best, stop = True, False
            if Xv is not None and yv is not None:
                part = forest(state["trees"], Xg.shape[1], hosts, base, names)
                pv = part.predict_proba(Xv, [_stack(state["val_bits"][h], len(Xv)) for h in hosts])
                scores = validator.update(t, yv, pv)
                record.update(val_auc=scores["auc"], val_ks=scores["ks"])
                best, stop = validator.improved_, validator.should_stop
            record["stop"] = stop
            state["validation"] = validator.state()
            return EpochOutcome(record, stop, best)

        def keep_best(t: int) -> None:
            state["best_trees"] = t + 1

        session.run(train_tree, lambda: state, "SecureBoost [he]", keep_best)
        kept = state["trees"][: state["best_trees"]] if plan.early_stopping else state["trees"]
        self.part_ = forest(kept, Xg.shape[1], hosts, base, names)
        self.n_trees_ = len(kept)
        self.base_score_ = base
        self.history_ = session.history
        self.best_iteration_ = validator.best_epoch_ if validator.best_epoch_ is not None else -1
        self.n_features_in_ = Xg.shape[1]
        self.feature_names_in_ = names
        self._importances(kept, hosts, names)
        return self

    def _grow(self, ctx: Context, t: int, plan: TrainingPlan, state: dict[str, Any], rule: SplitRule,
              codes: np.ndarray, bins: Bins, candidates: Candidates, y01: np.ndarray, w: np.ndarray,
              host_candidates: dict[str, int], public: PaillierPublicKey,
              private: PaillierPrivateKey) -> tuple[Tree, dict[str, Any]]:
        """Tree `t` from the current scores: gradients, row and feature sampling, the protocol."""
        p = sigmoid(state["F"])
        g, h = (p - y01) * w, p * (1 - p) * w
        if self.subsample < 1.0:
            keep = np.random.default_rng([plan.seed, t]).random(len(g)) < self.subsample
            g, h = np.where(keep, g, 0.0), np.where(keep, h, 0.0)
        usable = _feature_sample(bins.n_features, plan.colsample_bytree, plan.seed, t, ctx.name)
        layout = plan.layout
        inp = GuestTreeInputs(codes, bins, candidates, usable[candidates.feature], layout.quantize(g),
                              layout.quantize(h), rule, plan.max_depth, layout, plan.key_bits, host_candidates)
        tree, update = guest_tree(ctx, public, private, inp, state["columns"])
        state["F"] = state["F"] + update
        state["trees"].append(asdict(tree))
        return tree, {"tree": t + 1, "splits": int(np.sum(np.asarray(tree.owner) != LEAF))}

    def _tree_end(self, ctx: Context, host: str, n_val: int, tree: Tree, owner: int) -> np.ndarray:
        """A host's routing bits of its new columns for the validation rows."""
        new = int(np.sum(np.asarray(tree.owner) == owner))
        msg = ctx.recv(host, "tree_end")
        bits = msg.get("val_bits") if isinstance(msg, dict) and set(msg) == {"val_bits"} else None
        if (not isinstance(bits, np.ndarray) or bits.shape != (n_val, new) or bits.dtype != np.uint8
                or (bits.size and bits.max() > 1)):
            raise ProtocolError(f"'tree_end' from '{host}' at step '{ctx.step}' must hold ({n_val}, {new}) "
                                "validation routing bits")
        return bits

    def _importances(self, trees: list[dict[str, list[Any]]], hosts: list[str], names: list[str] | None) -> None:
        split: dict[str, int] = {}
        gain: dict[str, float] = {}
        for tree in trees:
            for owner, feature, g in zip(tree["owner"], tree["feature"], tree["gain"], strict=True):
                if owner == LEAF:
                    continue
                key = (names[feature] if names else f"x{feature}") if owner == GUEST else f"host:{hosts[owner - 1]}"
                split[key] = split.get(key, 0) + 1
                gain[key] = gain.get(key, 0.0) + float(g)
        self.split_importance_, self.gain_importance_ = split, gain

    # -- inference ------------------------------------------------------------------------
    def decision_function(self, ctx: Context, X: Any) -> np.ndarray:
        """Raw scores (log-odds); every host runs `host_predict` on the same rows meanwhile.

        Parameters
        ----------
        ctx : Context
            The guest's context of a job or simulation with the hosts.
        X : array-like or pandas.DataFrame
            The guest's features of the rows to score.

        Returns
        -------
        numpy.ndarray
            One raw score per row.
        """
        if not hasattr(self, "part_"):
            raise ConfigError("this SecureBoostClassifier is not fitted yet: call fit first")
        Xg, _ = _as_matrix(X, "guest features X")
        bits = dict(zip(ctx.hosts, contributions.guest_collect(ctx, len(Xg)), strict=True))
        return self.part_.decision_function(Xg, [bits[h] for h in self.part_.hosts])


def _stack(blocks: list[np.ndarray], n: int) -> np.ndarray:
    """A host's validation bits of every tree so far as one (n, columns) array."""
    out = np.hstack([np.zeros((n, 0)), *blocks]) if blocks else np.zeros((n, 0))
    return out.astype(np.float64)


# --- host -----------------------------------------------------------------------------------
def host_fit(ctx: Context, X: Any, *, X_val: Any = None, checkpoint_dir: str | Path | None = None) -> SBHostPart:
    """The host's role in training: run by the host's service with its own data.

    Bins its own features, answers every tree with encrypted histograms and the partitions of
    the splits it wins, and returns its split table as its serving part.

    Parameters
    ----------
    ctx : Context
        The host's context of the job or simulation.
    X : array-like or pandas.DataFrame
        This host's features of the aligned training rows (NaN: missing).
    X_val : array-like or None
        Its features of the validation rows, when the guest validates.
    checkpoint_dir : str or Path or None
        This host's own checkpoint directory.

    Returns
    -------
    SBHostPart
        The host's model part.
    """
    Xh, names = _as_matrix(X, f"{ctx.name} features X")
    Xhv = None if X_val is None else _as_matrix(X_val, f"{ctx.name} validation features X_val")[0]
    if Xhv is not None and Xhv.shape[1] != Xh.shape[1]:
        raise DataError(f"{ctx.name}: validation features have {Xhv.shape[1]} columns, training {Xh.shape[1]}")
    prepared: dict[str, Any] = {}

    def accept(plan: TrainingPlan) -> SBReply:
        bins = Bins.fit(Xh, plan.max_bin)
        prepared.update(bins=bins, codes=bins.transform(Xh),
                        candidates=Candidates.of(bins, np.isnan(Xh).any(axis=0)))
        return SBReply(n_candidates=len(prepared["candidates"]))

    session = host_start(ctx, TrainingPlan, HostPolicy(), len(Xh), 0 if Xhv is None else len(Xhv), checkpoint_dir,
                         accept=accept, handshake=lambda c, p: host_key(c, p.key_bits))
    plan, key = session.plan, session.keys
    bins, codes, candidates = prepared["bins"], prepared["codes"], prepared["candidates"]
    table: dict[str, Any] = session.state or {"feature": [], "threshold": [], "missing_left": [], "tree": [],
                                              "best_trees": 0}

    def train_tree(tctx: Context, t: int) -> EpochOutcome:
        usable = _feature_sample(bins.n_features, plan.colsample_bytree, plan.seed, t, ctx.name)
        inp = HostTreeInputs(codes, bins, candidates, new_order(len(candidates)), usable[candidates.feature],
                             plan.layout, plan.key_bits)
        won = host_tree(tctx, key, inp, plan.max_depth, len(table["feature"]))
        for k, v in (("feature", won.feature), ("threshold", won.threshold), ("missing_left", won.missing_left),
                     ("tree", [t] * len(won.feature))):
            table[k].extend(v)
        bits = np.zeros((plan.n_val_rows, len(won.feature)), dtype=np.uint8)
        if Xhv is not None and won.feature:
            x = Xhv[:, won.feature]
            bits = np.where(np.isnan(x), np.asarray(won.missing_left), x <= np.asarray(won.threshold)).astype(np.uint8)
        tctx.send(ctx.guest, "tree_end", {"val_bits": bits})
        return EpochOutcome({"splits": len(won.feature)}, stop=False)

    def keep_best(t: int) -> None:
        table["best_trees"] = t + 1

    session.run(train_tree, lambda: table, "SecureBoost host [he]", keep_best)
    keep = np.asarray(table["tree"], dtype=np.int64) < (table["best_trees"] if plan.early_stopping else MAX_TREES)
    return SBHostPart(Xh.shape[1], np.asarray(table["feature"], dtype=np.int64)[keep],
                      np.asarray(table["threshold"], dtype=np.float64)[keep],
                      np.asarray(table["missing_left"], dtype=bool)[keep],
                      np.asarray(table["tree"], dtype=np.int64)[keep], names)


def host_predict(ctx: Context, X: Any, part: SBHostPart) -> None:
    """Answer one `predict` request of the guest with this host's routing bits."""
    Xh, _ = _as_matrix(X, f"{ctx.name} features X")
    contributions.host_contribute(ctx, Xh, part)
