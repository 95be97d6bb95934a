"""A job's configuration: its parties, their datasets and the steps of the pipeline.

Read with the same rules as a party's YAML (`vfl.parties.config`): errors name the file and
the field, and string values may name environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from vfl.errors import VflError
from vfl.names import SafeName
from vfl.parties.config import NAME_PATTERN, Strict, parse, read_yaml, resolve, resolve_uri

# --- job configuration -------------------------------------------------------------------


class PsiStep(Strict):
    cardinality_only: bool = False
    warn_ratio: float = Field(
        0.5, ge=0, le=1, description="warn when the intersection is below this share of the "
        "smaller party's ids (id spellings may differ); 0: never")


class SplitStep(Strict):
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    stratify: bool = True


class PreprocessStep(Strict):
    """Each party applies the pipeline from its own party config; nothing to set here."""


class TrainStep(Strict):
    algorithm: str = Field("hetero_lr", description="a registered algorithm (vfl.algorithms.registry)")
    params: dict[str, Any] = {}

    @field_validator("algorithm")
    @classmethod
    def _registered(cls, algorithm: str) -> str:
        from vfl.algorithms import registry

        try:
            registry.get(algorithm)
        except VflError as exc:
            raise ValueError(str(exc)) from None
        return algorithm

    @field_validator("params")
    @classmethod
    def _params_fit_the_algorithm(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from vfl.algorithms import registry  # the algorithms' own schemas

        if "algorithm" in info.data:
            try:
                registry.get(info.data["algorithm"]).check_params(params)
            except VflError as exc:
                raise ValueError(str(exc)) from None
        return params


class EvaluateStep(Strict):
    out_dir: Path = Path("runs")
    threshold: float = Field(0.5, gt=0, lt=1)
    iv: bool = Field(True, description="each party's IV on the training rows (hosts' via encrypted labels)")
    bootstrap: int = Field(200, ge=0, description="resamples for the AUC and KS confidence intervals (0: none)")


class ExportStep(Strict):
    model_id: SafeName
    promote: bool = Field(True, description="serve this version right away (else it is staged)")


class ScoreStep(Strict):
    source: str = Field(description="connector URI of the ids (and guest features) to score")
    sink: str = Field(description="connector URI to write id + score to")
    chunk_rows: int = Field(50_000, ge=1)


class JobSteps(Strict):
    """The pipeline, always run in this order; leave a step out to skip it
    (preprocessing excepted: it is skipped by `preprocess: false`; left out, it runs)."""

    psi: PsiStep | None = PsiStep()
    split: SplitStep | None = SplitStep()
    preprocess: PreprocessStep | Literal[False] = Field(
        PreprocessStep(), description="each party runs its configured preprocessing unless false")
    train: TrainStep = TrainStep()
    evaluate: EvaluateStep | None = EvaluateStep()
    export: ExportStep | None = None
    score: ScoreStep | None = None


class JobConfig(Strict):
    """A job (``job.yaml``, the guest's); see the README's configuration reference. Load it with
    `load_job_config`.

    Attributes
    ----------
    job_id : str or None
        The job's id (None: one is made when it runs).
    guest : str
        The party that holds the labels and drives.
    hosts : list of str
        The partners.
    datasets : dict of str to str
        Each party's dataset, by its name in that party's config.
    parties : dict of str to Path
        Each party's config file, for a simulation.
    steps : JobSteps
        The pipeline's steps (psi, split, preprocess, train, evaluate, export, score).
    """

    job_id: SafeName | None = None
    guest: str = Field(pattern=NAME_PATTERN)
    hosts: list[str] = Field(min_length=1)
    datasets: dict[str, SafeName] = Field(description="party name -> that party's dataset name")
    parties: dict[str, Path] = Field(
        {}, description="party name -> party config file, for local simulation (`vfl run --simulate`)"
    )
    steps: JobSteps = JobSteps()

    @field_validator("steps", mode="before")
    @classmethod
    def _preprocess_unless_false(cls, steps: Any) -> Any:
        """``preprocess: {}``, ``true``, a bare key or none at all: every party preprocesses."""
        if isinstance(steps, dict) and steps.get("preprocess", False) in (None, True):
            steps = {**steps, "preprocess": {}}
        return steps

    @field_validator("hosts")
    @classmethod
    def _unique_hosts(cls, hosts: list[str]) -> list[str]:
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"hosts must be unique, got {hosts}")
        return hosts

    @model_validator(mode="after")
    def _every_party_has_data(self) -> JobConfig:
        parties = {self.guest, *self.hosts}
        if self.guest in self.hosts:
            raise ValueError(f"'{self.guest}' cannot be both guest and host")
        missing = parties - set(self.datasets)
        if missing:
            raise ValueError(f"datasets: no dataset named for {sorted(missing)}")
        extra = set(self.datasets) - parties
        if extra:
            raise ValueError(f"datasets: {sorted(extra)} are not parties of this job")
        return self

    @property
    def roles(self) -> dict[str, str]:
        return {self.guest: "guest", **dict.fromkeys(self.hosts, "host")}



def load_job_config(path: str | Path) -> JobConfig:
    """Load and validate a job (``job.yaml``, the guest's).

    Paths in it (party configs, the evaluation folder, the score step's source and sink) are
    resolved against the file's folder; the training params are checked against the
    algorithm's own parameters.

    Parameters
    ----------
    path : str or Path
        The YAML file.

    Returns
    -------
    JobConfig
        The validated job.

    Raises
    ------
    ConfigError
        The file is missing or invalid; the message names the file and the field.
    """
    path = Path(path)
    job = parse(JobConfig, read_yaml(path), str(path))
    base = path.resolve().parent
    job.parties = {name: resolve(base, p) for name, p in job.parties.items()}
    if job.steps.evaluate is not None:
        job.steps.evaluate.out_dir = resolve(base, job.steps.evaluate.out_dir)
    if job.steps.score is not None:
        job.steps.score.source = resolve_uri(base, job.steps.score.source)
        job.steps.score.sink = resolve_uri(base, job.steps.score.sink)
    return job
