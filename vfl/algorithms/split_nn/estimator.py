"""Split neural network for vertical FL (torch): bottom models per party, an interactive layer
between the host bottoms and the guest, a top model on the guest.

    z = bottom_g(X_g) + sum_h bottom_h(X_h) W_h        p = sigmoid(top(z))

The guest runs `SplitNNClassifier.fit`; each host runs `SplitNNHost.fit` with its own bottom
model (from its own code or config, never sent). The guest sends only a `TrainingPlan`. In
`he` mode (default) the interactive layer runs under Paillier (`interactive_layer`): the guest
sees only ``A W``, the hosts see only ``dL/dA`` and a noisy weight gradient. `plain` mode is
faster and much less private (hosts must allow it). After training the guest hands its share
``U_h`` to each host, whose serving part computes ``bottom_h(X_h) (U_h + V_h)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

from vfl.algorithms import contributions
from vfl.algorithms.session import (
    HE,
    EpochOutcome,
    early_stopping,
    training_mode,
)
from vfl.algorithms.session_start import HostPolicy, guest_start, host_start, refuse
from vfl.algorithms.split_nn import interactive_layer as il
from vfl.algorithms.split_nn.nn_spec import config_module, optimizer_class
from vfl.algorithms.split_nn.parts import (
    SplitNNGuestPart,
    SplitNNHostPart,
    as_float_matrix,
    run_module,
)
from vfl.algorithms.split_nn.plan import SplitNNReply, TrainingPlan, batches
from vfl.algorithms.validation import EpochValidator
from vfl.crypto import PaillierPrivateKey, PaillierPublicKey, generate_keypair
from vfl.errors import ConfigError, DataError, ProtocolError
from vfl.parties.context import Context

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def _set_threads(n: int | None) -> None:
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _new_optimizer(factory: OptimizerFactory, kwargs: dict[str, Any] | None,
                   modules: list[nn.Module], who: str) -> torch.optim.Optimizer | None:
    params = [p for m in modules for p in m.parameters()]
    if not params:
        return None
    try:
        return factory(params, **(kwargs or {}))
    except TypeError as exc:
        raise ConfigError(f"{who} optimizer: {exc}") from exc


def _share_state(s: il.Share) -> dict[str, torch.Tensor]:
    return {"value": torch.from_numpy(s.value.copy()), "velocity": torch.from_numpy(s.velocity.copy())}


def _load_share(s: il.Share, d: dict[str, torch.Tensor]) -> None:
    s.value, s.velocity = d["value"].numpy().copy(), d["velocity"].numpy().copy()


def _as_numpy(state: Any) -> Any:
    """A training state with every tensor as an array, for the checkpoint format."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu().numpy()
    if isinstance(state, dict):
        return {k: _as_numpy(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return [_as_numpy(v) for v in state]
    return state


def _as_torch(state: Any) -> Any:
    """A checkpointed state with its arrays as tensors again (every array of it was one)."""
    if isinstance(state, np.ndarray):
        return torch.from_numpy(np.array(state))
    if isinstance(state, dict):
        return {k: _as_torch(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_as_torch(v) for v in state]
    return state


def plain_initial_weights(seed: int, host_index: int, k: int, d: int) -> np.ndarray:
    """Initial W of the `host_index`-th host in plain mode (the guest holds all of it there)."""
    return il.init_share(np.random.default_rng([seed, 7, host_index]), k, d, 1)


class SplitNNClassifier(BaseEstimator):
    """The guest's split NN estimator (binary classification, a scikit-learn estimator).

    Every hyper-parameter is keyword-only; docs/split_nn.md explains each one.

    Parameters
    ----------
    guest_bottom : torch.nn.Module or None
        Module X_g -> `interactive_width` features, or None (the top model then sees only
        the hosts' ``A W``).
    top : torch.nn.Module
        Module `interactive_width` -> 1 logit.
    interactive_width : int, default 8
        Width of the interactive layer's output.
    mode : {"he", "insecure_plaintext"}, default "he"
        Paillier-encrypted interactive layer, or clear-text ``A`` and ``dL/dA`` (faster, less
        private; hosts must allow it). The old spelling ``"plain"`` still works and warns.
    epochs : int, default 10
        Passes over the training rows.
    batch_size : int, default 512
        Rows per mini-batch.
    optimizer : callable, default torch.optim.Adam
        Any torch optimizer class (or factory taking the parameters first) for the guest's
        bottom and top.
    optimizer_kwargs : dict or None, default None
        Keyword arguments of `optimizer`.
    interactive_lr : float, default 0.1
        Learning rate of the interactive layer (SGD with momentum; its weights are split
        between the parties).
    interactive_momentum : float, default 0.9
        Momentum of the interactive layer.
    noise_scale : float, default 0.0
        In insecure_plaintext mode, Gaussian noise added to ``dL/dA`` against label leakage.
    early_stopping : {None, "auc", "ks"}, default None
        Watch this metric on ``(X_val, y_val)``; stop after `patience` epochs without
        improvement and restore the best epoch on every party.
    patience : int, default 3
        Epochs without improvement before early stopping stops.
    key_bits : int, default 2048
        Size of the guest's Paillier key.
    random_state : int, default 0
        Batch order (shared with the hosts) and, in insecure_plaintext mode, the initial W.
    checkpoint_dir : str or Path or None, default None
        Per-epoch checkpoints; a new fit with the same plan resumes from them.
    torch_threads : int or None, default 1
        Torch intra-op threads (1 suits two parties sharing a small machine).
    share_seed : int or None, default None
        Seed of the guest's secret share U in he mode; None draws from OS entropy. Set it
        only for reproducible experiments: it must not be the plan's seed.

    Attributes
    ----------
    part_ : SplitNNGuestPart
        The guest's model part, as exported and served.
    history_ : list of dict
        Per-epoch loss and validation metric.
    best_epoch_ : int
        The epoch whose weights were kept.
    """

    part_: SplitNNGuestPart
    history_: list[dict[str, float]]
    best_epoch_: int
    shares_: dict[str, il.Share]

    def __init__(
        self,
        *,
        guest_bottom: nn.Module | None,
        top: nn.Module,
        interactive_width: int = 8,
        mode: str = HE,
        epochs: int = 10,
        batch_size: int = 512,
        optimizer: OptimizerFactory = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        interactive_lr: float = 0.1,
        interactive_momentum: float = 0.9,
        noise_scale: float = 0.0,
        early_stopping: str | None = None,
        patience: int = 3,
        key_bits: int = 2048,
        random_state: int = 0,
        checkpoint_dir: str | Path | None = None,
        torch_threads: int | None = 1,
        share_seed: int | None = None,
    ) -> None:
        self.guest_bottom = guest_bottom
        self.top = top
        self.interactive_width = interactive_width
        self.mode = mode
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.interactive_lr = interactive_lr
        self.interactive_momentum = interactive_momentum
        self.noise_scale = noise_scale
        self.early_stopping = early_stopping
        self.patience = patience
        self.key_bits = key_bits
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.torch_threads = torch_threads
        self.share_seed = share_seed

    @classmethod
    def from_params(cls, params: dict[str, Any], n_features: int, where: str = "steps.train.params",
                    **kwargs: Any) -> SplitNNClassifier:
        """The estimator a job spec asks for: modules as MLP mappings whose sizes the data fixes
        (`guest_bottom`: n_features -> interactive_width, null for none; `top`:
        interactive_width -> 1), the optimizer by name, `init_seed` (default `random_state`)
        for the initial weights; every other key is an `__init__` parameter."""
        p = dict(params)
        d = p.get("interactive_width", 8)
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ConfigError(f"{where}.interactive_width: must be a positive int, got {d!r}")
        seed = p.pop("init_seed", p.get("random_state", 0))
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ConfigError(f"{where}.init_seed: must be None or an int >= 0, got {seed!r}")
        bottom_spec = p.pop("guest_bottom", {"hidden": [16]})
        guest_bottom = None if bottom_spec is None else config_module(
            bottom_spec, n_features, d, f"{where}.guest_bottom", seed)
        top = config_module(p.pop("top", {"hidden": [8]}), d, 1, f"{where}.top",
                            None if seed is None else seed + 1)
        optimizer = optimizer_class(p.pop("optimizer", "adam"), f"{where}.optimizer")
        try:
            return cls(guest_bottom=guest_bottom, top=top, optimizer=optimizer, **p, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    # -- checks -----------------------------------------------------------------------------
    def check_params(self) -> None:
        """The settings' values, without data: a job checks its params with this before any
        party does work (whether validation data exists is known only at `fit`)."""
        self._check_params(has_val=True)

    def _check_params(self, has_val: bool) -> None:
        mode = training_mode(self.mode)
        if early_stopping(self.early_stopping) and not has_val:
            raise ConfigError("early_stopping needs validation data: pass X_val and y_val to fit")
        if mode == HE and self.noise_scale:
            raise ConfigError("noise_scale is the plain-mode defense; he mode does not use it")
        if not (isinstance(self.patience, int) and self.patience >= 1):
            raise ConfigError(f"patience must be a positive int, got {self.patience!r}")

    @staticmethod
    def _labels(y: Any, n: int, what: str) -> np.ndarray:
        arr = np.asarray(y).ravel()
        if arr.shape != (n,):
            raise DataError(f"{what} has {arr.size} labels for {n} rows")
        if not np.isin(arr, (0, 1)).all():
            raise DataError(f"{what} must be 0/1 labels, got values {np.unique(arr)[:5].tolist()}")
        return arr.astype(np.float32)

    # -- training ---------------------------------------------------------------------------
    def fit(self, ctx: Context, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> SplitNNClassifier:
        _set_threads(self.torch_threads)
        self._check_params(X_val is not None)
        Xg = as_float_matrix(X, f"{ctx.name} features X")
        yv = self._labels(y, len(Xg), "y")
        Xv = None if X_val is None else as_float_matrix(X_val, f"{ctx.name} validation features X_val")
        yvv = None if Xv is None else self._labels(y_val, len(Xv), "y_val")
        if not ctx.hosts:
            raise ConfigError(f"split NN needs at least one host; job '{ctx.job_id}' has none")
        d = self.interactive_width
        stop_on = early_stopping(self.early_stopping)
        self.guest_bottom_ = copy.deepcopy(self.guest_bottom)
        self.top_ = copy.deepcopy(self.top)
        modules = [m for m in (self.guest_bottom_, self.top_) if m is not None]
        opt = _new_optimizer(self.optimizer, self.optimizer_kwargs, modules, "guest")
        plan = TrainingPlan.make(
            mode=training_mode(self.mode), epochs=int(self.epochs), batch_size=int(self.batch_size),
            seed=int(self.random_state), interactive_width=int(d),
            interactive_lr=float(self.interactive_lr),
            interactive_momentum=float(self.interactive_momentum),
            noise_scale=float(self.noise_scale), n_rows=len(Xg),
            n_val_rows=0 if Xv is None else len(Xv), early_stopping=stop_on is not None,
        )
        session = guest_start(ctx, plan, self.checkpoint_dir, handshake=self._handshake)
        keys, layouts = session.keys
        widths = {h: reply.bottom_width for h, reply in session.replies.items()}
        # he: U is a secret share (OS entropy); plain: the guest holds all of W (reproducible)
        rng = np.random.default_rng(self.share_seed)
        self.shares_ = {
            h: il.Share(il.init_share(rng, k, d, 2) if plan.mode == HE
                        else plain_initial_weights(plan.seed, i, k, d))
            for i, (h, k) in enumerate(widths.items())
        }
        mask_rng = np.random.default_rng()
        best: dict[str, Any] | None = None
        validator = EpochValidator(stop_on or "auc", self.patience if stop_on else None)
        if session.state is not None:
            state = _as_torch(session.state)
            self._load_state(state, opt)
            best = state["best"]
            validator.load_state(state["validation"])

        def train_epoch(ectx: Context, epoch: int) -> EpochOutcome:
            losses = []
            rows_list = batches(len(Xg), plan.batch_size, plan.seed, epoch)
            for b, rows in ctx.each_batch(rows_list, epoch, plan.epochs):
                losses.append(self._train_batch(ectx.child("batch", b), plan, Xg[rows], yv[rows],
                                                opt, keys, layouts, widths, mask_rng))
            record = {"epoch": float(epoch + 1), "loss": float(np.mean(losses))}
            if Xv is not None and yvv is not None:
                p = self._proba(ectx.child("val"), plan, Xv, keys, layouts, widths)
                scores = validator.update(epoch, yvv, p)
                record.update(val_auc=scores["auc"], val_ks=scores["ks"])
            if stop_on is None:
                return EpochOutcome(record, stop=False)
            return EpochOutcome(record, stop=validator.should_stop, best=validator.improved_)

        def keep_best(epoch: int) -> None:
            nonlocal best
            best = self._snapshot()

        session.run(train_epoch, lambda: _as_numpy({**self._state(opt), "best": best, "validation": validator.state()}),
                    f"split NN [{plan.mode}]", keep_best)
        history = session.history
        if best is not None:
            self._restore(best)
        found = validator.best_epoch_
        self.best_epoch_ = -1 if stop_on is None or found is None else found
        # export: each host's serving part becomes bottom_h(X_h) (U_h + V_h)
        for h, share in self.shares_.items():
            ctx.child("export").send(h, "U_share", share.value)
        self.history_ = history
        self.part_ = SplitNNGuestPart(self.top_, self.guest_bottom_)
        return self

    def _handshake(self, ctx: Context, plan: TrainingPlan, replies: dict[str, SplitNNReply],
                   ) -> tuple[dict[str, il.HeKeys], dict[str, il.Layouts]]:
        """he mode: send the guest's public key, pair it with each host's (from its reply)."""
        keys: dict[str, il.HeKeys] = {}
        layouts: dict[str, il.Layouts] = {}
        if plan.mode != HE:
            return keys, layouts
        pub, priv = generate_keypair(self.key_bits)
        ctx.broadcast("guest_key", pub.to_wire())
        for h, reply in replies.items():
            if reply.key is None:
                raise ProtocolError(f"'plan_ack' from '{h}': he mode needs the host's public key")
            host_pub = PaillierPublicKey.from_wire(reply.key)
            keys[h] = il.HeKeys(pub, priv, host_pub, ctx.executor)
            layouts[h] = il.Layouts.build(reply.bottom_width, plan.interactive_width, plan.batch_size,
                                          pub.n_bits, host_pub.n_bits)
        return keys, layouts

    def _train_batch(self, bctx: Context, plan: TrainingPlan, Xb: np.ndarray, yb: np.ndarray,
                     opt: torch.optim.Optimizer | None, keys: dict[str, il.HeKeys],
                     layouts: dict[str, il.Layouts], widths: dict[str, int],
                     mask_rng: np.random.Generator) -> float:
        n = len(Xb)
        A_plain: dict[str, np.ndarray] = {}
        hw = np.zeros((n, plan.interactive_width))
        for h in widths:  # forward: A W from every host
            if plan.mode == HE:
                hw += il.guest_forward(bctx, h, self.shares_[h].value, n, keys[h], layouts[h])
            else:
                A_plain[h] = il.guest_forward_plain(bctx, h, n, widths[h])
                hw += A_plain[h] @ self.shares_[h].value
        hw_t = torch.tensor(hw, dtype=torch.float32, requires_grad=True)
        loss = self._loss(Xb, yb, hw_t, train=True)
        if opt is not None:
            opt.zero_grad()
        loss.backward()
        assert hw_t.grad is not None
        G = hw_t.grad.double().numpy()
        for h, share in self.shares_.items():  # backward through the interactive layer
            if plan.mode == HE:
                g = il.guest_backward(bctx, h, G, share.value, keys[h], layouts[h], mask_rng)
            else:
                g = il.guest_backward_plain(bctx, h, A_plain[h], G, share.value,
                                            plan.noise_scale, mask_rng)
            share.step(g, plan.interactive_lr, plan.interactive_momentum)
        if opt is not None:
            opt.step()
        return float(loss.detach())

    def _loss(self, Xb: np.ndarray, yb: np.ndarray, hw: torch.Tensor, train: bool) -> torch.Tensor:
        z = hw
        if self.guest_bottom_ is not None:
            self.guest_bottom_.train(train)
            z = z + self.guest_bottom_(torch.from_numpy(Xb))
        self.top_.train(train)
        logits = self.top_(z).reshape(len(Xb), -1)[:, 0]
        return nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(yb))

    def _proba(self, vctx: Context, plan: TrainingPlan, Xv: np.ndarray, keys: dict[str, il.HeKeys],
               layouts: dict[str, il.Layouts], widths: dict[str, int]) -> np.ndarray:
        """Validation scores during training (W still split): forward pass only."""
        out = []
        for c, start in enumerate(range(0, len(Xv), plan.batch_size)):
            cctx = vctx.child("chunk", c)
            Xc = Xv[start : start + plan.batch_size]
            contribs = []
            for h in widths:
                if plan.mode == HE:
                    contribs.append(il.guest_forward(cctx, h, self.shares_[h].value, len(Xc),
                                                     keys[h], layouts[h]))
                else:
                    contribs.append(il.guest_forward_plain(cctx, h, len(Xc), widths[h])
                                    @ self.shares_[h].value)
            out.append(SplitNNGuestPart(self.top_, self.guest_bottom_).predict_proba(Xc, contribs))
        return np.concatenate(out)

    # -- state for checkpoints and early stopping ----------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        return copy.deepcopy({
            "guest_bottom": None if self.guest_bottom_ is None else self.guest_bottom_.state_dict(),
            "top": self.top_.state_dict(),
            "shares": {h: _share_state(s) for h, s in self.shares_.items()},
        })

    def _restore(self, snap: dict[str, Any]) -> None:
        if self.guest_bottom_ is not None:
            self.guest_bottom_.load_state_dict(snap["guest_bottom"])
        self.top_.load_state_dict(snap["top"])
        for h, s in self.shares_.items():
            _load_share(s, snap["shares"][h])

    def _state(self, opt: torch.optim.Optimizer | None) -> dict[str, Any]:
        return {**self._snapshot(), "optimizer": None if opt is None else opt.state_dict()}

    def _load_state(self, state: dict[str, Any], opt: torch.optim.Optimizer | None) -> None:
        if set(state["shares"]) != set(self.shares_):
            raise ConfigError(f"checkpoint in {self.checkpoint_dir} is for hosts "
                              f"{sorted(state['shares'])}, this job has {sorted(self.shares_)}")
        self._restore(state)
        if opt is not None and state["optimizer"] is not None:
            opt.load_state_dict(state["optimizer"])

    # -- inference ----------------------------------------------------------------------------
    def predict_proba(self, ctx: Context, X: Any) -> np.ndarray:
        """Class probabilities; every host sends ``bottom_h(X_h) W_h`` for the same rows.

        Parameters
        ----------
        ctx : Context
            The guest's context of a job or simulation with the hosts (each runs
            `SplitNNHost.predict` or `host_predict`).
        X : array-like
            The guest's features of the rows to score.

        Returns
        -------
        numpy.ndarray
            (n, 2) probabilities of classes 0 and 1.

        Raises
        ------
        ConfigError
            The estimator is not fitted.
        """
        if not hasattr(self, "part_"):
            raise ConfigError("SplitNNClassifier is not fitted: call fit first")
        Xg = as_float_matrix(X, f"{ctx.name} features X")
        p = self.part_.predict_proba(Xg, contributions.guest_collect(ctx, len(Xg), self.interactive_width))
        return np.column_stack([1.0 - p, p])

    def predict(self, ctx: Context, X: Any, threshold: float = 0.5) -> np.ndarray:
        """Class labels (0/1) from `predict_proba`.

        Parameters
        ----------
        ctx : Context
            As in `predict_proba`.
        X : array-like
            The guest's features of the rows to score.
        threshold : float, default 0.5
            Probability of class 1 from which a row is labelled 1.

        Returns
        -------
        numpy.ndarray
            One label per row.
        """
        return (self.predict_proba(ctx, X)[:, 1] >= threshold).astype(np.int64)

    def export_part(self) -> SplitNNGuestPart:
        """The guest's model part, as stored and served.

        Returns
        -------
        SplitNNGuestPart
            The fitted bottom and top models with their specs.
        """
        return self.part_


class SplitNNHost(BaseEstimator):
    """A host's side of split NN: its own bottom model, optimizer and policy.

    Every hyper-parameter is keyword-only; docs/split_nn.md explains each one.

    Parameters
    ----------
    bottom : torch.nn.Module
        Module X_h -> k features (the host's choice; only k is told to the guest).
    optimizer : callable, default torch.optim.Adam
        Any torch optimizer class (or factory taking the parameters first) for the bottom.
    optimizer_kwargs : dict or None, default None
        Keyword arguments of `optimizer`.
    allow_plain : bool, default False
        This host's policy on plain mode (refused by default).
    key_bits : int, default 2048
        Size of this host's Paillier key (protects its activations A).
    checkpoint_dir : str or Path or None, default None
        Per-epoch checkpoints; a new fit with the same plan resumes from them.
    random_state : int or None, default None
        Seed of the host's secret share V (None: OS entropy, the right choice outside tests).
    torch_threads : int or None, default 1
        Torch intra-op threads.

    Attributes
    ----------
    part_ : SplitNNHostPart
        The host's model part, as exported and served.
    """

    part_: SplitNNHostPart

    def __init__(
        self,
        *,
        bottom: nn.Module,
        optimizer: OptimizerFactory = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        allow_plain: bool = False,
        key_bits: int = 2048,
        checkpoint_dir: str | Path | None = None,
        random_state: int | None = None,
        torch_threads: int | None = 1,
    ) -> None:
        self.bottom = bottom
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.allow_plain = allow_plain
        self.key_bits = key_bits
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.torch_threads = torch_threads

    @classmethod
    def from_config(cls, settings: dict[str, Any] | None, n_features: int, where: str,
                    **kwargs: Any) -> SplitNNHost:
        """The host's estimator from its OWN party config (`models.split_nn`): `bottom` is an
        MLP mapping (n_features -> its `out`, the host's choice), the optimizer by name,
        `init_seed` for the initial weights; every other key is an `__init__` parameter."""
        s = dict(settings or {})
        if "bottom" not in s:
            raise ConfigError(f"{where}.bottom: this host's own bottom model is required, "
                              "e.g. {hidden: [16], out: 8}")
        seed = s.pop("init_seed", None)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ConfigError(f"{where}.init_seed: must be None or an int >= 0, got {seed!r}")
        bottom = config_module(s.pop("bottom"), n_features, None, f"{where}.bottom", seed)
        optimizer = optimizer_class(s.pop("optimizer", "adam"), f"{where}.optimizer")
        try:
            return cls(bottom=bottom, optimizer=optimizer, **s, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def _width(self, n_features: int) -> int:
        with torch.no_grad():
            out = self.bottom_(torch.zeros(2, n_features))
        if out.ndim != 2:
            raise ConfigError(f"host bottom model must output (n, k), got shape {tuple(out.shape)}")
        return int(out.shape[1])

    def fit(self, ctx: Context, X: Any, X_val: Any = None) -> SplitNNHost:
        _set_threads(self.torch_threads)
        Xh = as_float_matrix(X, f"{ctx.name} features X")
        Xv = None if X_val is None else as_float_matrix(X_val, f"{ctx.name} validation features X_val")
        self.bottom_ = copy.deepcopy(self.bottom)
        try:
            k = self._width(Xh.shape[1])
            opt = _new_optimizer(self.optimizer, self.optimizer_kwargs, [self.bottom_], "host")
        except ConfigError as exc:
            raise refuse(ctx, TrainingPlan.title, exc) from exc
        keypair: list[tuple[PaillierPublicKey, PaillierPrivateKey]] = []

        def accept(plan: TrainingPlan) -> SplitNNReply:
            if plan.mode == HE:
                keypair.append(generate_keypair(self.key_bits))
            return SplitNNReply(bottom_width=k, key=keypair[0][0].to_wire() if keypair else None)

        def handshake(hctx: Context, plan: TrainingPlan) -> tuple[il.HeKeys, il.Layouts] | None:
            """he mode: the guest's public key, paired with this host's."""
            if not keypair:
                return None
            pub, priv = keypair[0]
            guest_pub = PaillierPublicKey.from_wire(hctx.recv(hctx.guest, "guest_key"))
            return (il.HeKeys(pub, priv, guest_pub, hctx.executor),
                    il.Layouts.build(k, plan.interactive_width, plan.batch_size, guest_pub.n_bits, pub.n_bits))

        session = host_start(ctx, TrainingPlan, HostPolicy(allow_insecure=self.allow_plain), len(Xh),
                             0 if Xv is None else len(Xv), self.checkpoint_dir, accept, handshake)
        plan = session.plan
        keys, lay = session.keys if session.keys is not None else (None, None)
        # he: the host's secret share V; plain: the guest holds W, V stays zero
        rng = np.random.default_rng(self.random_state)
        d = plan.interactive_width
        self.share_ = il.Share(il.init_share(rng, k, d, 2) if plan.mode == HE else np.zeros((k, d)))
        best: dict[str, Any] | None = None
        if session.state is not None:
            state = _as_torch(session.state)
            self.bottom_.load_state_dict(state["bottom"])
            _load_share(self.share_, state["share"])
            if opt is not None and state["optimizer"] is not None:
                opt.load_state_dict(state["optimizer"])
            best = state["best"]

        def train_epoch(ectx: Context, epoch: int) -> EpochOutcome:
            self.bottom_.train(True)
            for b, rows in ctx.each_batch(batches(len(Xh), plan.batch_size, plan.seed, epoch),
                                          epoch, plan.epochs):
                bctx = ectx.child("batch", b)
                A_t = self.bottom_(torch.from_numpy(Xh[rows]))
                A = A_t.detach().double().numpy()
                if keys is not None and lay is not None:
                    il.host_forward(bctx, A, self.share_.value, keys, lay, training=True)
                    dA, g_V = il.host_backward(bctx, self.share_.value, len(rows), keys, lay)
                    self.share_.step(g_V, plan.interactive_lr, plan.interactive_momentum)
                else:
                    il.host_forward_plain(bctx, A)
                    dA = il.host_backward_plain(bctx, len(rows), k)
                if opt is not None:
                    opt.zero_grad()
                    A_t.backward(torch.from_numpy(dA).to(A_t.dtype))
                    opt.step()
            if Xv is not None:
                self._validation(ectx.child("val"), plan, Xv, keys, lay)
            return EpochOutcome({"mode": plan.mode}, stop=False)

        def keep_best(epoch: int) -> None:
            nonlocal best
            best = copy.deepcopy({"bottom": self.bottom_.state_dict(), "share": _share_state(self.share_)})

        def snapshot() -> dict[str, Any]:
            return dict(_as_numpy({"bottom": self.bottom_.state_dict(), "share": _share_state(self.share_),
                                   "optimizer": None if opt is None else opt.state_dict(), "best": best}))

        session.run(train_epoch, snapshot, f"split NN host [{plan.mode}]", keep_best, report=False)
        if best is not None:
            self.bottom_.load_state_dict(best["bottom"])
            _load_share(self.share_, best["share"])
        U = il.recv_array(ctx.child("export"), ctx.guest, "U_share", (k, d))
        self.part_ = SplitNNHostPart(self.bottom_, U + self.share_.value)
        return self

    @torch.no_grad()
    def _validation(self, vctx: Context, plan: TrainingPlan, Xv: np.ndarray,
                    keys: il.HeKeys | None, lay: il.Layouts | None) -> None:
        for c, start in enumerate(range(0, len(Xv), plan.batch_size)):
            cctx = vctx.child("chunk", c)
            A = run_module(self.bottom_, Xv[start : start + plan.batch_size])
            if keys is not None and lay is not None:
                il.host_forward(cctx, A, self.share_.value, keys, lay, training=False)
            else:
                il.host_forward_plain(cctx, A)

    def predict(self, ctx: Context, X: Any) -> None:
        """Answer the guest's predict request with ``bottom_h(X_h) W`` for the same rows.

        Parameters
        ----------
        ctx : Context
            This host's context of the job or simulation.
        X : array-like
            This host's features of the rows the guest scores.

        Raises
        ------
        ConfigError
            The estimator is not fitted.
        """
        if not hasattr(self, "part_"):
            raise ConfigError("SplitNNHost is not fitted: call fit first")
        host_predict(ctx, X, self.part_)

    def export_part(self) -> SplitNNHostPart:
        """This host's model part, as stored and served.

        Returns
        -------
        SplitNNHostPart
            The fitted bottom model and this host's interactive weights.
        """
        return self.part_


def host_fit(ctx: Context, X: Any, settings: dict[str, Any] | None, where: str,
             **kwargs: Any) -> SplitNNHostPart:
    """The host's role in a job: its estimator from its own settings, trained, as a serving part.

    Bad settings are refused to the guest at once (so it does not wait for a timeout), with no
    detail of the host's model; the host raises the full ConfigError."""
    Xh = as_float_matrix(X, f"{ctx.name} features X")
    try:
        host = SplitNNHost.from_config(settings, Xh.shape[1], where, **kwargs)
    except ConfigError:
        refuse(ctx, TrainingPlan.title, ConfigError(
            "the host's split NN settings are invalid (its party config; details in its log)"))
        raise
    return host.fit(ctx, Xh).part_


def host_predict(ctx: Context, X: Any, part: SplitNNHostPart) -> None:
    """Answer one `predict` request of the guest with bottom_h(X_h) W for the same rows."""
    contributions.host_contribute(ctx, as_float_matrix(X, f"{ctx.name} features X"), part)
