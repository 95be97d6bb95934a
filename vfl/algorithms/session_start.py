"""How every training session starts and decides its epochs, whatever the algorithm: the plan,
the host's acceptance under its own policy, the resume agreement, the key handshake and the
per-epoch decision, written once.

::

    guest                                       each host
    plan  (the algorithm's TrainingPlan)  --->  validates every field, applies its OWN policy
                                                (insecure mode only if it allows it), checks its
                                                rows and the algorithm's `accept(plan)`, opens
                                                its checkpoints
          <---  plan_ack {ok: true, epochs: [its completed epochs], reply: {the algorithm's}}
                or {ok: false, reason, error} (the guest raises the same error class)
    resume {epoch, end}  --->                   epoch: the newest checkpoint every party holds
                                                (-1: none); every party discards newer ones and
                                                loads it; the run goes on to epoch end - 1
    handshake hook (e.g. the Paillier keys)  <-->
    per epoch e, in the context epoch/e:
      the algorithm's epoch (its batches and validation exchange)
    epoch_decision {best, stop}  --->           every party keeps its best state if `best`,
                                                then checkpoints epoch e with the decision

Epochs count from 0 everywhere: epoch ``e`` runs in ``epoch/e``, seeds its batches with ``e``
and is checkpointed as ``epoch_<e>``; logs and progress show ``e + 1``.

An algorithm plugs in with:

- its plan: a subclass of `TrainingPlan` (pydantic, strict: every field of a received plan is
  type- and range-checked on the host, and `ProtocolError` names the field) with a ``title``
  (``"hetero LR"``), the banner its insecure mode logs, optionally a ``reply`` model
  (`PlanReply` subclass: what each host answers, validated on the guest) and the fields a
  resumed run may change (``resumable``; all others make the `fingerprint`);
- the guest calls ``start = guest_start(ctx, plan, checkpoint_dir, handshake=...)``, each host
  ``start = host_start(ctx, Plan, policy, n_rows, n_val_rows, checkpoint_dir, accept=...,
  handshake=...)``: `accept(plan)` runs the host's own checks (raising a `VflError` refuses
  the plan with that class and reason) and returns its reply; `handshake` runs after the
  resume agreement on both sides (the guest's gets the hosts' replies) and returns the keys;
- then every party builds its model, loads ``start.state`` (its own state of the agreed
  epoch, None for a fresh run) and calls ``start.run(epoch, snapshot, keep_best, label)``:
  ``epoch(ectx, e)`` trains epoch ``e`` with the algorithm's protocol module and returns an
  `EpochOutcome` (on the guest with its ``best`` / ``stop`` decision, which the skeleton sends;
  on a host the skeleton takes both from the guest), ``keep_best(e)`` keeps the party's best
  state, ``snapshot()`` is its state to checkpoint.

SecureBoost, say, is then: a plan of trees, an accept hook checking the host's bins, the
Paillier handshake, and an epoch function growing one tree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vfl.algorithms.session import INSECURE, EpochOutcome, SessionCheckpoints, run_epochs
from vfl.errors import ConfigError, DataError, PolicyError, ProtocolError, VflError

if TYPE_CHECKING:
    from vfl.parties.context import Context

MAX_EPOCHS = 100_000
MAX_ROWS = 1 << 40
REFUSALS: dict[str, type[VflError]] = {e.__name__: e for e in (PolicyError, DataError, ConfigError, ProtocolError)}


def _problems(exc: ValidationError) -> str:
    """Every field pydantic refused, named (``field 'epochs': Input should be ... (got -1)``)."""
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(the message)"
        got = "" if err["type"] == "missing" else f" (got {err['input']!r})"
        out.append(f"field '{where}': {err['msg']}{got}")
    return "; ".join(out)


class PlanReply(BaseModel):
    """What a host answers to an accepted plan (an algorithm subclasses it with its fields)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")


class TrainingPlan(BaseModel):
    """What the guest asks every host to train: the fields every algorithm shares.

    Subclass it with the algorithm's own fields (pydantic constraints are the checks the host
    runs on the received plan) and class variables.

    Parameters
    ----------
    mode : {"he", "insecure_plaintext"}
        Encrypted, or nothing encrypted (a host trains so only when its policy allows it).
    epochs : int
        Epochs of the run (1 to 100000).
    n_rows, n_val_rows : int
        Training and validation rows every party holds (aligned by PSI).
    early_stopping : bool
        Whether the guest stops early on validation and every party keeps its best epoch.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")
    title: ClassVar[str] = "training"
    insecure_banner: ClassVar[str] = "INSECURE PLAINTEXT MODE: nothing is encrypted; for experiments only"
    reply: ClassVar[type[PlanReply]] = PlanReply
    resumable: ClassVar[frozenset[str]] = frozenset({"epochs"})

    mode: Literal["he", "insecure_plaintext"]
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    n_rows: int = Field(ge=1, le=MAX_ROWS)
    n_val_rows: int = Field(ge=0, le=MAX_ROWS)
    early_stopping: bool

    @classmethod
    def make(cls, **values: Any) -> Any:
        """The guest's plan from its settings (ConfigError names a field out of range)."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(f"{cls.title} plan: {_problems(exc)}") from None

    @classmethod
    def from_wire(cls, message: Any) -> Any:
        """A received plan, every field checked (ProtocolError names the field)."""
        if not isinstance(message, dict):
            raise ProtocolError(f"{cls.title} plan must be a mapping, got {type(message).__name__}")
        try:
            return cls.model_validate(message)
        except ValidationError as exc:
            raise ProtocolError(f"{cls.title} plan {_problems(exc)}") from None

    def to_wire(self) -> dict[str, Any]:
        """The plan as sent (plain data)."""
        return self.model_dump()

    def fingerprint(self) -> str:
        """Identifies the run for resuming: every field but the `resumable` ones."""
        body = {k: v for k, v in self.to_wire().items() if k not in self.resumable}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class HostPolicy:
    """What a host's own policy allows a session to do.

    Parameters
    ----------
    allow_insecure : bool, default False
        Whether this host trains in ``insecure_plaintext`` mode.
    """

    allow_insecure: bool = False


@dataclass(frozen=True)
class Decision:
    """The guest's decision at the end of an epoch (tag ``epoch_decision``)."""

    best: bool
    stop: bool

    @classmethod
    def from_wire(cls, message: Any, peer: str, step: str) -> Decision:
        if not (isinstance(message, dict) and set(message) == {"best", "stop"}
                and all(isinstance(v, bool) for v in message.values())):
            raise ProtocolError(f"malformed 'epoch_decision' from '{peer}' at step '{step}': "
                                "must be {best: bool, stop: bool}")
        return cls(message["best"], message["stop"])


P = TypeVar("P", bound=TrainingPlan)


@dataclass
class Session(Generic[P]):
    """A started session of one party: the plan, the agreed resume point, the keys.

    Attributes
    ----------
    plan : TrainingPlan
        The accepted plan.
    last : int
        The newest epoch every party had checkpointed (-1: a fresh run).
    end : int
        The run's epochs are ``last + 1 .. end - 1``.
    state : dict or None
        This party's own state saved at `last` (what its `snapshot` returned), or None.
    history : list of dict
        The records of the epochs run so far (restored on resume).
    replies : dict
        On the guest, each host's validated `PlanReply`.
    keys : Any
        What the handshake hook returned (None without one).
    """

    ctx: Context
    plan: P
    checkpoints: SessionCheckpoints | None
    last: int
    end: int
    state: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, Any] = field(default_factory=dict)
    keys: Any = None

    def run(self, epoch: Callable[[Context, int], EpochOutcome], snapshot: Callable[[], dict[str, Any]],
            label: str, keep_best: Callable[[int], None] | None = None, report: bool = True) -> None:
        """Run epochs ``last + 1 .. end - 1``, deciding each one and checkpointing it.

        Parameters
        ----------
        epoch : callable
            ``epoch(ectx, e)`` trains epoch ``e``; on the guest its outcome's ``best`` and
            ``stop`` are the decision sent to the hosts (tag ``epoch_decision``); on a host they
            are replaced by the guest's.
        snapshot : callable
            This party's state to checkpoint (nested plain data and arrays).
        label : str
            How log lines name the session.
        keep_best : callable or None
            ``keep_best(e)`` keeps the party's state of epoch ``e`` as its best (the decision
            said ``best``).
        report : bool
            Whether this party reports each epoch's progress.
        """
        ctx = self.ctx
        stopped = [False]

        def decided(ectx: Context, e: int) -> EpochOutcome:
            outcome = epoch(ectx, e)
            if ctx.role == "guest":
                ectx.broadcast("epoch_decision", {"best": outcome.best, "stop": outcome.stop})
            else:
                decision = Decision.from_wire(ectx.recv(ctx.guest, "epoch_decision"), ctx.guest, ectx.step)
                outcome.best, outcome.stop = decision.best, decision.stop
            if outcome.best and keep_best is not None:
                keep_best(e)
            stopped[0] = outcome.stop
            return outcome

        def end(e: int, record: dict[str, Any]) -> None:
            self.history.append(record)
            if self.checkpoints is not None:
                self.checkpoints.save(e, {"party": snapshot(), "history": self.history, "stop": stopped[0]})

        run_epochs(ctx, range(self.last + 1, self.end), self.plan.epochs, decided, end, label, report)


def _open(directory: str | Path | None, plan: TrainingPlan) -> SessionCheckpoints | None:
    return None if directory is None else SessionCheckpoints(directory, plan.fingerprint())


def _load(ckpt: SessionCheckpoints | None, last: int) -> dict[str, Any] | None:
    if ckpt is None:
        return None
    ckpt.discard_after(last)
    return ckpt.load(last) if last >= 0 else None


def guest_start(ctx: Context, plan: P, checkpoint_dir: str | Path | None,
                handshake: Callable[[Context, P, dict[str, Any]], Any] | None = None) -> Session[P]:
    """The guest's start of a session: send the plan, read every host's answer, agree on the
    epoch to resume from, run the handshake.

    Parameters
    ----------
    ctx : Context
        The guest's training context.
    plan : TrainingPlan
        The algorithm's plan.
    checkpoint_dir : str or Path or None
        The guest's checkpoint directory (None: no checkpoints, hence no resume).
    handshake : callable or None
        ``handshake(ctx, plan, replies)`` after the resume agreement (e.g. the keys).

    Returns
    -------
    Session
        Ready to `Session.run`.

    Raises
    ------
    ConfigError
        The directory holds another plan's checkpoints; or a host refused with that class.
    PolicyError, DataError, ProtocolError
        A host refused the plan with that class, or answered a malformed ``plan_ack``.
    """
    ckpt = _open(checkpoint_dir, plan)
    if plan.mode == INSECURE:
        ctx.log.warning(plan.insecure_banner)
    ctx.broadcast("plan", plan.to_wire())
    held = set(ckpt.epochs()) if ckpt is not None else set()
    replies: dict[str, Any] = {}
    for h in ctx.hosts:
        ack = ctx.recv(h, "plan_ack")
        if not isinstance(ack, dict) or not isinstance(ack.get("ok"), bool):
            raise ProtocolError(f"malformed 'plan_ack' from host '{h}'")
        if not ack["ok"]:
            error = REFUSALS.get(str(ack.get("error")), ProtocolError)
            raise error(f"host '{h}' refused the {plan.title} plan: {ack.get('reason')}")
        epochs = ack.get("epochs")
        if set(ack) != {"ok", "epochs", "reply"} or not isinstance(epochs, list) or not all(
                isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in epochs):
            raise ProtocolError(f"'plan_ack' from host '{h}' must be {{ok, epochs: [int >= 0], reply}}")
        try:
            replies[h] = plan.reply.model_validate(ack["reply"])
        except ValidationError as exc:
            raise ProtocolError(f"'plan_ack' from host '{h}': reply {_problems(exc)}") from None
        held &= set(epochs)
    last = max((e for e in held if e < plan.epochs), default=-1)
    saved = _load(ckpt, last)
    end = last + 1 if saved is not None and saved["stop"] else plan.epochs
    ctx.broadcast("resume", {"epoch": last, "end": end})
    if saved is not None:
        ctx.log.info(f"resuming {plan.title} after epoch {last + 1} from {checkpoint_dir}")
    session = Session(ctx, plan, ckpt, last, end, None if saved is None else saved["party"],
                      [] if saved is None else saved["history"], replies)
    session.keys = None if handshake is None else handshake(ctx, plan, replies)
    return session


def refuse(ctx: Context, title: str, error: VflError) -> VflError:
    """Tell the guest why this host refuses (so it does not wait for a timeout) and return the
    error for the host to raise: the same class, naming this host and the guest."""
    reason = str(error)
    ctx.send(ctx.guest, "plan_ack", {"ok": False, "reason": reason, "error": type(error).__name__})
    return type(error)(f"{ctx.name}: refused {title} plan from '{ctx.guest}': {reason}")


def host_start(ctx: Context, plan_type: type[P], policy: HostPolicy, n_rows: int, n_val_rows: int,
               checkpoint_dir: str | Path | None, accept: Callable[[P], PlanReply] | None = None,
               handshake: Callable[[Context, P], Any] | None = None) -> Session[P]:
    """A host's start of a session: validate the guest's plan, apply this host's own policy and
    checks, answer, take part in the resume agreement and the handshake.

    Parameters
    ----------
    ctx : Context
        This host's training context.
    plan_type : type
        The algorithm's `TrainingPlan` subclass.
    policy : HostPolicy
        This host's own policy.
    n_rows, n_val_rows : int
        This host's aligned training and validation rows (the plan must match them).
    checkpoint_dir : str or Path or None
        This host's own checkpoint directory.
    accept : callable or None
        ``accept(plan)``: the algorithm's own checks of the plan against this host's data and
        settings; returns the reply (a `PlanReply`), raises a `VflError` to refuse.
    handshake : callable or None
        ``handshake(ctx, plan)`` after the resume agreement.

    Returns
    -------
    Session
        Ready to `Session.run`.

    Raises
    ------
    ProtocolError
        A malformed plan or ``resume`` (the guest is told first, for the plan).
    PolicyError, DataError, ConfigError
        This host refused the plan (the guest is told the reason and the class).
    """
    try:
        plan = plan_type.from_wire(ctx.recv(ctx.guest, "plan"))
        if plan.mode == INSECURE and not policy.allow_insecure:
            raise PolicyError(f"{INSECURE} mode is not allowed by this host's policy (plain mode is not "
                              f"allowed unless it allows insecure modes): {plan.insecure_banner}")
        if plan.n_rows != n_rows:
            raise DataError(f"plan has {plan.n_rows} rows, host has {n_rows} aligned rows")
        if plan.n_val_rows != n_val_rows:
            raise DataError(f"plan has {plan.n_val_rows} validation rows, host has {n_val_rows}")
        reply = plan.reply() if accept is None else accept(plan)
        ckpt = _open(checkpoint_dir, plan)
    except tuple(REFUSALS.values()) as exc:
        raise refuse(ctx, plan_type.title, exc) from exc
    if plan.mode == INSECURE:
        ctx.log.warning(plan.insecure_banner)
    held = [] if ckpt is None else ckpt.epochs()
    ctx.send(ctx.guest, "plan_ack", {"ok": True, "epochs": held, "reply": reply.model_dump()})
    resume = ctx.recv(ctx.guest, "resume")
    if not (isinstance(resume, dict) and set(resume) == {"epoch", "end"}
            and all(isinstance(v, int) and not isinstance(v, bool) for v in resume.values())
            and (resume["epoch"] == -1 or resume["epoch"] in held)
            and resume["epoch"] < resume["end"] <= plan.epochs):
        raise ProtocolError(f"'resume' from '{ctx.guest}' must be {{epoch, end}} with epoch -1 or one of "
                            f"this host's checkpoints {held} and epoch < end <= {plan.epochs}, got {resume!r}")
    saved = _load(ckpt, resume["epoch"])
    session = Session(ctx, plan, ckpt, resume["epoch"], resume["end"],
                      None if saved is None else saved["party"], [] if saved is None else saved["history"])
    session.keys = None if handshake is None else handshake(ctx, plan)
    return session

