"""HE logistic regression across a guest and one or more hosts, no third party.

The guest drives: `HeteroLogisticRegression(...).fit(ctx, X, y)` sends the training plan,
every host's service runs `host_fit(ctx, X_h)` with its own data and policy. Both walk the
same epochs and mini-batches (a shared seed), exchange only encrypted or masked values
(`protocol`), apply their own optimizer to their own gradient, checkpoint every
epoch in their own directory and end with only their own weights.

Per epoch, the only plaintext exchanged is: the hosts' partial scores of the validation rows
(as at inference) and one "converged" bit per host; the guest answers with "best" / "stop".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, PlainSerializer, PlainValidator
from sklearn.base import BaseEstimator

from vfl.algorithms import contributions, session_start
from vfl.algorithms.guest_classifier import GuestClassifierMixin, sigmoid
from vfl.algorithms.hetero_lr.model import LRGuestPart, LRHostPart
from vfl.algorithms.hetero_lr.protocol import (
    Keys,
    guest_batch,
    guest_batch_plaintext,
    guest_keys,
    host_batch,
    host_batch_plaintext,
    host_keys,
)
from vfl.algorithms.optim import (
    FEW_BATCHES,
    Optimizer,
    OptimizerConfig,
    auto_batch_size,
    epoch_batches,
    smallest_batch,
)
from vfl.algorithms.session import (
    HE,
    STOPPING_METRICS,
    EpochOutcome,
    early_stopping,
    training_mode,
)
from vfl.algorithms.session import INSECURE as INSECURE  # the mode's name, for users of this module
from vfl.algorithms.session_start import HostPolicy, PlanReply, guest_start, host_start
from vfl.algorithms.validation import EpochValidator
from vfl.crypto import MIN_KEY_BITS
from vfl.errors import ConfigError, DataError, PolicyError, ProtocolError, did_you_mean
from vfl.parties.context import Context

INSECURE_BANNER = (
    "INSECURE PLAINTEXT MODE: partial scores and residuals cross the party boundary "
    "unencrypted; for experiments only"
)
SAFE_Z = 4.0  # the Taylor expansion of the logistic loss is only accurate for small |z|
WIDE_SHARE = 0.05  # warn when more than this share of whole scores leave [-SAFE_Z, SAFE_Z]
METRIC_DROP = 0.02  # warn when the validation metric falls more than this in one epoch
REMEDY = ("clip and scale the features (preprocessing: clip: [0.01, 0.99], scale: standard) "
          "or lower learning_rate")


# --- the training plan: what the guest asks every host to do ------------------------------
def _optimizer(value: Any) -> OptimizerConfig:
    if isinstance(value, OptimizerConfig):
        return value
    try:
        return OptimizerConfig.from_wire(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


class LRReply(PlanReply):
    """A host's answer to an accepted plan: its number of features."""

    n_features: int = Field(ge=1, le=1 << 24)


class TrainingPlan(session_start.TrainingPlan):
    """The hetero LR plan: the session's fields, the key size, the batch schedule and the
    optimizer every party applies to its own gradient."""

    title: ClassVar[str] = "hetero LR"
    insecure_banner: ClassVar[str] = INSECURE_BANNER
    reply: ClassVar[type[PlanReply]] = LRReply
    resumable: ClassVar[frozenset[str]] = frozenset({"epochs", "warm_start"})

    key_bits: int = Field(ge=MIN_KEY_BITS, le=8192)
    batch_size: int = Field(ge=1, le=1 << 40)
    seed: int = Field(ge=0, le=(1 << 63) - 1)
    optimizer: Annotated[OptimizerConfig, PlainValidator(_optimizer),
                         PlainSerializer(OptimizerConfig.to_wire)]
    tol: float | None = Field(ge=0, allow_inf_nan=False)
    weighted: bool
    warm_start: bool
    guest_width: int = Field(ge=1, le=1 << 24)  # guest weights incl. intercept: the length the lead host decrypts


# --- shared helpers -----------------------------------------------------------------------
def _as_matrix(X: Any, what: str) -> tuple[np.ndarray, list[str] | None]:
    names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
    if isinstance(X, pd.DataFrame):
        bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise DataError(f"{what}: non-numeric columns {bad}; encode them first")
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise DataError(f"{what} must be a non-empty 2-D table, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        cols = np.flatnonzero(~np.isfinite(arr).all(axis=0))
        where = [names[c] for c in cols] if names else cols.tolist()
        raise DataError(f"{what}: missing or infinite values in columns {where}; impute them first")
    return arr, names


@dataclass
class _TrainState:
    """What one party checkpoints every epoch."""

    w: np.ndarray
    best_w: np.ndarray
    opt: Optimizer

    def arrays(self) -> dict[str, np.ndarray]:
        return {"w": self.w, "best_w": self.best_w, **self.opt.state()}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.w, self.best_w = arrays["w"].astype(np.float64), arrays["best_w"].astype(np.float64)
        self.opt.load_state(arrays)


def _max_change(before: np.ndarray, after: np.ndarray) -> float:
    return float(np.max(np.abs(after - before))) if before.size else 0.0


def _check_batches(plan: TrainingPlan, widths: dict[str, int]) -> None:
    """Refuse batches a host could solve: X_h^T (s d) with rows <= its features gives d (labels)."""
    rows = smallest_batch(plan.n_rows, plan.batch_size)
    for host, width in widths.items():
        if rows <= width:
            raise ConfigError(
                f"batch_size={plan.batch_size} with {plan.n_rows} rows makes mini-batches of {rows} "
                f"rows, but host '{host}' has {width} features: its gradient of a batch with no "
                f"more rows than features reveals the residuals, hence the labels; use a larger batch_size"
            )


# --- guest ----------------------------------------------------------------------------------
class HeteroLogisticRegression(GuestClassifierMixin, BaseEstimator):
    """The guest's estimator of HE logistic regression (a scikit-learn estimator; hosts take part).

    Labels and the guest's features stay on the guest; each host keeps its own weights
    (`host_fit`). `coef_` and `intercept_` are the guest's part only. With
    ``mode="insecure_plaintext"`` nothing is encrypted (hosts must allow it in their policy).
    Every hyper-parameter is keyword-only; docs/hetero_lr.md explains each one.

    Parameters
    ----------
    epochs : int, default 10
        Passes over the training rows.
    batch_size : int or None, default None
        Rows per mini-batch; None picks it from the number of rows.
    learning_rate : float, default 0.15
        Step size of the optimizer.
    lr_schedule : str, default "constant"
        How the step size changes over epochs (see docs/hetero_lr.md).
    decay : float, default 0.0
        Decay rate of the schedule.
    optimizer : str, default "sgd"
        The optimizer every party applies to its own gradient.
    penalty : str or None, default "l2"
        Regularization of the weights.
    alpha : float, default 0.0
        Strength of the penalty.
    class_weight : None, "balanced" or dict, default None
        Weights of the two classes.
    tol : float or None, default 1e-4
        Convergence threshold on the largest weight change of an epoch; None never converges.
    early_stopping : bool, default False
        Stop after `patience` epochs without improvement of `validation_metric` on
        ``(X_val, y_val)`` and keep the best epoch.
    validation_metric : {"auc", "ks"}, default "auc"
        The metric early stopping watches.
    patience : int, default 3
        Epochs without improvement before early stopping stops.
    warm_start : bool, default False
        Continue from the weights of the previous `fit`.
    key_bits : int, default 2048
        Size of the guest's Paillier key.
    mode : {"he", "insecure_plaintext"}, default "he"
        Encrypted training, or plaintext for experiments (hosts must allow it).
    random_state : int, default 0
        Seed of the batch order shared with the hosts.
    checkpoint_dir : str or Path or None, default None
        Per-epoch checkpoints; a new fit with the same plan resumes from them.

    Attributes
    ----------
    classes_ : numpy.ndarray
        The two labels; ``classes_[1]`` is the positive class.
    coef_ : numpy.ndarray
        The guest's weights.
    intercept_ : float
        The intercept (held by the guest).
    part_ : LRGuestPart
        The guest's model part, as exported and served.
    """

    classes_: np.ndarray
    coef_: np.ndarray
    intercept_: float
    part_: LRGuestPart

    def __init__(
        self,
        *,
        epochs: int = 10,
        batch_size: int | None = None,
        learning_rate: float = 0.15,
        lr_schedule: str = "constant",
        decay: float = 0.0,
        optimizer: str = "sgd",
        penalty: str | None = "l2",
        alpha: float = 0.0,
        class_weight: None | str | dict[Any, float] = None,
        tol: float | None = 1e-4,
        early_stopping: str | bool | None = None,
        validation_metric: str = "auc",
        patience: int = 3,
        warm_start: bool = False,
        key_bits: int = 2048,
        mode: str = HE,
        random_state: int = 0,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.decay = decay
        self.optimizer = optimizer
        self.penalty = penalty
        self.alpha = alpha
        self.class_weight = class_weight
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_metric = validation_metric
        self.patience = patience
        self.warm_start = warm_start
        self.key_bits = key_bits
        self.mode = mode
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir

    # -- input checks ---------------------------------------------------------------------
    def _labels(self, y: Any, what: str, fitting: bool) -> np.ndarray:
        """Labels as -1/+1 (classes_[1] is the positive class)."""
        y = np.asarray(y).ravel()
        classes = np.unique(y)
        if fitting:
            if len(classes) != 2:
                raise DataError(f"{what} must have exactly two classes, got {classes.tolist()}")
            if hasattr(self, "classes_") and self.warm_start and not np.array_equal(classes, self.classes_):
                raise DataError(f"warm_start: {what} has classes {classes.tolist()}, "
                                f"the fitted model {self.classes_.tolist()}")
            self.classes_ = classes
        unknown = sorted(set(classes.tolist()) - set(self.classes_.tolist()))
        if unknown:
            raise DataError(f"{what} has classes {unknown} unseen in training {self.classes_.tolist()}")
        return np.where(y == self.classes_[1], 1.0, -1.0)

    def _row_weights(self, y_pm: np.ndarray, sample_weight: Any) -> np.ndarray:
        n = len(y_pm)
        s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).ravel()
        if s.shape != (n,) or not np.all(np.isfinite(s)) or np.any(s < 0) or s.sum() <= 0:
            raise DataError(f"sample_weight must be {n} finite non-negative values, not all zero")
        cw = self.class_weight
        if cw is None:
            return s
        if cw == "balanced":
            pos = float(np.mean(y_pm > 0))
            per = {1.0: 0.5 / pos, -1.0: 0.5 / (1 - pos)}
        elif isinstance(cw, dict):
            missing = [c for c in self.classes_.tolist() if c not in cw]
            if missing:
                raise ConfigError(f"class_weight has no weight for classes {missing}")
            per = {-1.0: float(cw[self.classes_[0]]), 1.0: float(cw[self.classes_[1]])}
        else:
            raise ConfigError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        return s * np.where(y_pm > 0, per[1.0], per[-1.0])

    def check_params(self) -> OptimizerConfig:
        """Types and ranges of every setting, without data (what `fit` would refuse): a job
        checks its params with this before any party does work. Returns the optimizer's."""
        training_mode(self.mode)
        early_stopping(self.early_stopping, self.validation_metric)
        if self.validation_metric not in STOPPING_METRICS:
            raise ConfigError(f"validation_metric must be one of {STOPPING_METRICS}, got {self.validation_metric!r}"
                              f"{did_you_mean(self.validation_metric, STOPPING_METRICS)}")
        for name in ("epochs", "batch_size", "patience", "key_bits", "random_state"):
            v = getattr(self, name)
            if name == "batch_size" and v is None:
                continue
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 0 or (v == 0 and name != "random_state"):
                raise ConfigError(f"{name} must be a positive int, got {v!r}")
        if self.tol is not None and not (isinstance(self.tol, int | float) and self.tol >= 0):
            raise ConfigError(f"tol must be None or a number >= 0, got {self.tol!r}")
        for name in ("learning_rate", "decay", "alpha"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"{name} must be a number, got {v!r}")
        return OptimizerConfig(
            name=self.optimizer, learning_rate=float(self.learning_rate), lr_schedule=self.lr_schedule,
            decay=float(self.decay), penalty=self.penalty, alpha=float(self.alpha),
        )

    def _plan(self, n_rows: int, n_val_rows: int, width: int, weighted: bool, warm: bool) -> TrainingPlan:
        opt = self.check_params()
        stop_on = early_stopping(self.early_stopping, self.validation_metric)
        if stop_on and n_val_rows == 0:
            raise ConfigError("early_stopping needs a validation set: pass X_val and y_val to fit")
        batch_size = auto_batch_size(n_rows) if self.batch_size is None else int(self.batch_size)
        return TrainingPlan.make(
            mode=training_mode(self.mode), key_bits=int(self.key_bits), epochs=int(self.epochs),
            batch_size=batch_size, seed=int(self.random_state), optimizer=opt,
            tol=None if self.tol is None else float(self.tol), weighted=weighted,
            early_stopping=stop_on is not None, warm_start=warm, n_rows=n_rows,
            n_val_rows=n_val_rows, guest_width=width,
        )

    def _say_batches(self, ctx: Context, plan: TrainingPlan) -> None:
        """Small data and big batches underfit: one gradient step per epoch learns little."""
        steps = len(epoch_batches(plan.n_rows, plan.batch_size, plan.seed, 0))
        if self.batch_size is None:
            ctx.log.info(f"batch_size not given: {plan.batch_size} rows per batch for {plan.n_rows} "
                         f"training rows ({steps} gradient steps per epoch)")
        elif steps < FEW_BATCHES:
            ctx.log.warning(f"batch_size={plan.batch_size} with {plan.n_rows} training rows makes only "
                            f"{steps} gradient step(s) per epoch, which may underfit; use a smaller "
                            "batch_size or leave it out to choose one from the row count")

    # -- training ---------------------------------------------------------------------------
    def fit(
        self, ctx: Context, X: Any, y: Any, sample_weight: Any = None,
        X_val: Any = None, y_val: Any = None,
    ) -> HeteroLogisticRegression:
        """Train with every host of `ctx` (rows aligned by PSI); returns self."""
        Xg, names = _as_matrix(X, "guest features X")
        warm = bool(self.warm_start and hasattr(self, "coef_"))
        y_pm = self._labels(y, "y", fitting=True)
        if len(y_pm) != len(Xg):
            raise DataError(f"X has {len(Xg)} rows but y has {len(y_pm)}")
        s = self._row_weights(y_pm, sample_weight)
        weighted = sample_weight is not None or self.class_weight is not None
        Xa = np.hstack([Xg, np.ones((len(Xg), 1))])
        Xv = yv = None
        if X_val is not None:
            Xv, _ = _as_matrix(X_val, "validation features X_val")
            yv = self._labels(y_val, "y_val", fitting=False) > 0
            if Xv.shape[1] != Xg.shape[1] or len(yv) != len(Xv):
                raise DataError(f"X_val {Xv.shape} / y_val ({len(yv)}) do not match X's {Xg.shape[1]} columns")
        plan = self._plan(len(Xg), 0 if Xv is None else len(Xv), Xa.shape[1], weighted, warm)
        if warm and self.coef_.shape != (Xg.shape[1],):
            raise DataError(f"warm_start: X has {Xg.shape[1]} columns, the fitted model {self.coef_.shape[0]}")
        self._say_batches(ctx, plan)
        session = guest_start(ctx, plan, self.checkpoint_dir, handshake=_guest_handshake)
        widths = {h: reply.n_features for h, reply in session.replies.items()}

        init = np.r_[self.coef_, self.intercept_] if warm else np.zeros(Xa.shape[1])
        penalized = np.r_[np.ones(Xg.shape[1]), 0.0]
        state = _TrainState(init, init.copy(), Optimizer(plan.optimizer, Xa.shape[1], penalized))
        stop_on = early_stopping(self.early_stopping, self.validation_metric)
        validator = EpochValidator(stop_on or self.validation_metric, self.patience if stop_on else None)
        if session.state is not None:
            state.load(session.state["arrays"])
            validator.load_state(session.state["validation"])
        keys = session.keys

        def train_epoch(ectx: Context, epoch: int) -> EpochOutcome:
            before = state.w.copy()
            for b, rows in ctx.each_batch(epoch_batches(plan.n_rows, plan.batch_size, plan.seed, epoch),
                                          epoch, plan.epochs):
                bctx = ectx.child("batch", b)
                sb = s[rows] / s[rows].sum()
                if keys is None:
                    g = guest_batch_plaintext(bctx, Xa[rows], y_pm[rows], sb, state.w)
                else:
                    g = guest_batch(bctx, keys, Xa[rows], y_pm[rows], sb, state.w, weighted, widths)
                state.w = state.opt.step(state.w, g, epoch)
            return self._end_epoch(ectx, plan, state, session.history, validator, before, Xv, yv)

        def keep_best(epoch: int) -> None:
            state.best_w = state.w.copy()

        session.run(train_epoch, lambda: {"arrays": state.arrays(), "validation": validator.state()},
                    f"hetero LR [{plan.mode}]", keep_best)
        history = session.history

        if plan.early_stopping and validator.best_epoch_ is not None:
            state.w = state.best_w
        self.coef_, self.intercept_ = state.w[:-1].copy(), float(state.w[-1])
        self.n_iter_ = len(history)
        self.history_ = history
        self.best_epoch_ = -1 if validator.best_epoch_ is None else validator.best_epoch_
        self.feature_names_in_ = names
        self.n_features_in_ = Xg.shape[1]
        self.part_ = LRGuestPart(self.coef_, self.intercept_, plan.mode, names)
        return self

    def _end_epoch(
        self, ectx: Context, plan: TrainingPlan, state: _TrainState, history: list[dict[str, Any]],
        validator: EpochValidator, before: np.ndarray, Xv: np.ndarray | None, yv: np.ndarray | None,
    ) -> EpochOutcome:
        """Validation metrics, convergence and early stopping: the epoch's decision."""
        record: dict[str, Any] = {"epoch": len(history) + 1, "mode": plan.mode}
        change = _max_change(before, state.w)
        converged = plan.tol is not None and change < plan.tol
        z_val = None if Xv is None else Xv @ state.w[:-1] + state.w[-1]
        for h in ectx.hosts:
            report = ectx.recv(h, "epoch_end")
            if not isinstance(report, dict) or not isinstance(report.get("converged"), bool):
                raise ProtocolError(f"malformed 'epoch_end' from host '{h}' at step '{ectx.step}'")
            converged = converged and report["converged"]
            if z_val is not None:
                part = report.get("val_z_h")
                if not isinstance(part, np.ndarray) or part.shape != z_val.shape or not np.all(np.isfinite(part)):
                    raise ProtocolError(f"'epoch_end' from host '{h}' lacks valid 'val_z_h' ({z_val.shape})")
                z_val = z_val + part
        best = False
        stop = converged
        if z_val is not None and yv is not None:
            watch_scores(ectx, z_val, f"epoch {record['epoch']}: validation")
            p = sigmoid(z_val)
            scores = validator.update(record["epoch"] - 1, yv, p)
            eps = 1e-15
            record.update(val_auc=scores["auc"], val_ks=scores["ks"], val_loss=float(-np.mean(
                np.where(yv, np.log(p + eps), np.log(1 - p + eps)))))
            _watch_metric(ectx, history, record, validator.metric)
            best = validator.improved_
            stop = stop or validator.should_stop
        record.update(weight_change=change, converged=converged, stop=stop)
        return EpochOutcome(record, stop=stop, best=best)

    # -- inference ------------------------------------------------------------------------
    def decision_function(self, ctx: Context, X: Any) -> np.ndarray:
        """The joint score z = X_g w_g + b + the sum of the hosts' partial scores.

        Every host runs `host_predict` on the same rows meanwhile.

        Parameters
        ----------
        ctx : Context
            The guest's context of a job or simulation with the hosts.
        X : array-like or pandas.DataFrame
            The guest's features of the rows to score.

        Returns
        -------
        numpy.ndarray
            One score per row.

        Raises
        ------
        ConfigError
            The estimator is not fitted.
        DataError
            `X` does not match the training features.
        """
        if not hasattr(self, "part_"):
            raise ConfigError("this HeteroLogisticRegression is not fitted yet: call fit first")
        Xg, _ = _as_matrix(X, "guest features X")
        z = self.part_.decision_function(Xg, contributions.guest_collect(ctx, len(Xg), width=1))
        watch_scores(ctx, z, "predict")
        return z


def watch_scores(ctx: Context, z: np.ndarray, what: str) -> None:
    """Warn when the whole scores the guest sees leave the range where the encrypted
    gradient's Taylor approximation of the logistic loss holds (heavy-tailed raw features)."""
    z = np.asarray(z, dtype=np.float64).ravel()
    wide = float(np.mean(np.abs(z) > SAFE_Z)) if len(z) else 0.0
    if wide > WIDE_SHARE:
        ctx.log.warning(
            f"hetero LR {what}: {wide:.0%} of {len(z)} scores have |z| > {SAFE_Z:g} (max "
            f"{float(np.max(np.abs(z))):.3g}); the Taylor approximation of the logistic loss that "
            f"encrypted training uses is accurate only for small |z|, so training may be unstable: {REMEDY}")


def _watch_metric(ctx: Context, history: list[dict[str, Any]], record: dict[str, Any],
                  metric: str) -> None:
    """Warn when the validation metric falls sharply from one epoch to the next."""
    key = f"val_{metric}"
    previous = next((r[key] for r in reversed(history) if key in r), None)
    if previous is not None and previous - record[key] > METRIC_DROP:
        ctx.log.warning(f"hetero LR epoch {record['epoch']}: validation {metric} fell from "
                        f"{previous:.4f} to {record[key]:.4f}; training may be unstable: {REMEDY}")


def _guest_handshake(ctx: Context, plan: TrainingPlan, replies: dict[str, Any]) -> Keys | None:
    """Refuse batches a host could solve, then exchange the Paillier keys (he mode only)."""
    if plan.mode != HE:
        return None
    _check_batches(plan, {h: reply.n_features for h, reply in replies.items()})
    return guest_keys(ctx, plan.key_bits)


# --- host -----------------------------------------------------------------------------------
def host_fit(
    ctx: Context, X: Any, *, X_val: Any = None, checkpoint_dir: str | Path | None = None,
    policy_allows_insecure: bool = False, init: LRHostPart | None = None,
) -> LRHostPart:
    """The host's role in training: run by the host's service with its own data and policy.

    Validates the guest's plan (refuses `insecure_plaintext` unless the policy allows it),
    trains its own weights and returns them as its serving part.
    """
    Xh, names = _as_matrix(X, f"{ctx.name} features X")
    Xhv = None if X_val is None else _as_matrix(X_val, f"{ctx.name} validation features X_val")[0]

    def accept(plan: TrainingPlan) -> LRReply:
        if Xhv is not None and Xhv.shape[1] != Xh.shape[1]:
            raise DataError("validation features have a different number of columns")
        if plan.mode == HE and smallest_batch(plan.n_rows, plan.batch_size) <= plan.guest_width:
            raise PolicyError(f"mini-batches of {smallest_batch(plan.n_rows, plan.batch_size)} rows would let "
                              f"the guest ({plan.guest_width} weights) solve its gradient for this host's "
                              "partial scores; a larger batch_size is needed")
        if plan.warm_start and (init is None or init.coef_.shape != (Xh.shape[1],)):
            raise ConfigError("warm_start asked but this host has no fitted part of matching width")
        return LRReply(n_features=Xh.shape[1])

    session = host_start(ctx, TrainingPlan, HostPolicy(allow_insecure=policy_allows_insecure), len(Xh),
                         0 if Xhv is None else len(Xhv), checkpoint_dir, accept,
                         handshake=lambda c, p: host_keys(c, p.key_bits) if p.mode == HE else None)
    plan, keys = session.plan, session.keys
    w0 = init.coef_.astype(np.float64) if plan.warm_start and init is not None else np.zeros(Xh.shape[1])
    state = _TrainState(w0, w0.copy(), Optimizer(plan.optimizer, Xh.shape[1]))
    best_epoch = -1
    if session.state is not None:
        state.load(session.state["arrays"])
        best_epoch = session.state["best_epoch"]

    def train_epoch(ectx: Context, epoch: int) -> EpochOutcome:
        before = state.w.copy()
        for b, rows in ctx.each_batch(epoch_batches(plan.n_rows, plan.batch_size, plan.seed, epoch),
                                      epoch, plan.epochs):
            bctx = ectx.child("batch", b)
            if keys is None:
                g = host_batch_plaintext(bctx, Xh[rows], state.w)
            else:
                g = host_batch(bctx, keys, Xh[rows], state.w, plan.weighted, plan.guest_width)
            state.w = state.opt.step(state.w, g, epoch)
        converged = plan.tol is not None and _max_change(before, state.w) < plan.tol
        report: dict[str, Any] = {"converged": converged}
        if Xhv is not None:
            report["val_z_h"] = Xhv @ state.w
        ectx.send(ctx.guest, "epoch_end", report)
        return EpochOutcome({"mode": plan.mode, "converged": converged}, stop=False)

    def keep_best(epoch: int) -> None:
        nonlocal best_epoch
        state.best_w, best_epoch = state.w.copy(), epoch

    session.run(train_epoch, lambda: {"arrays": state.arrays(), "best_epoch": best_epoch},
                f"hetero LR host [{plan.mode}]", keep_best)
    if plan.early_stopping and best_epoch >= 0:
        state.w = state.best_w
    return LRHostPart(state.w.copy(), plan.mode, names)


def host_predict(ctx: Context, X: Any, part: LRHostPart) -> None:
    """Answer one `predict` request of the guest with this host's partial scores X_h w_h."""
    Xh, _ = _as_matrix(X, f"{ctx.name} features X")
    contributions.host_contribute(ctx, Xh, part)
