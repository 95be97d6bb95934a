"""A party's own configuration (who it is, its peers, its data, its policy, its store), and
the loading rules every vfl YAML follows.

Every validation error names the file and the field (``partner.yaml: policy.min_intersection:
Input should be a valid integer``), so an operator can fix it without reading code.

String values may name environment variables, ``${NAME}`` or ``${NAME:-default}``, so that
secrets (a database password in a URI) and per-machine settings (ports) stay out of the file.
"""

from __future__ import annotations

import os
import re
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
        model_validator,
)

from vfl.connectors import DatasetSpec
from vfl.crypto.tls import TlsFiles
from vfl.errors import ConfigError, did_you_mean
from vfl.names import SafeName

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a YAML key must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


# --- party configuration -----------------------------------------------------------------


class TlsConfig(Strict):
    ca: Path = Field(description="CA certificate (PEM) that signed every party's certificate")
    cert: Path = Field(description="this party's certificate (PEM)")
    key: Path = Field(description="this party's private key (PEM)")

    def files(self) -> TlsFiles:
        """The three PEM files, to read or to open a channel with."""
        return TlsFiles(self.ca, self.cert, self.key)


class PeerConfig(Strict):
    """Where a peer's service is: one address, several (its replicas), or none when the
    peer's replicas are found in a shared registry (``registry.backend: zookeeper``)."""

    address: str | None = Field(None, description="host:port of the peer's party service")
    addresses: list[str] = Field([], description="host:port of each replica of the peer's service")

    @model_validator(mode="after")
    def _one_way(self) -> PeerConfig:
        if self.address is not None and self.addresses:
            raise ValueError("give `address` or `addresses`, not both")
        return self

    def all_addresses(self) -> list[str]:
        """The configured addresses, in order (empty: resolved from the registry)."""
        return [self.address] if self.address is not None else list(self.addresses)


class PolicyRule(Strict):
    """Peers in `peers` may start `protocols` on `datasets` ("*" matches anything)."""

    peers: list[str] = ["*"]
    protocols: list[str] = ["*"]
    datasets: list[str] = ["*"]


class PolicyConfig(Strict):
    """The host's own rules, enforced by its own service. Defaults deny what is risky."""

    allow: list[PolicyRule] = []
    min_intersection: int = Field(100, ge=1)
    allow_insecure: bool = False
    max_concurrent_jobs: int = Field(2, ge=1)


class StoreConfig(Strict):
    path: Path = Path("vfl-store")
    url: str | None = Field(None, description="SQLAlchemy URL for job/model records; default SQLite in path")
    artifacts: str | None = Field(
        None, description="where model parts' files are mirrored: a folder shared by the party's "
                          "replicas or an hdfs:// URI; default: only in <path>/cache")


class TimeoutConfig(Strict):
    message: float = Field(600.0, gt=0, description="seconds to wait for a peer's message")
    connect: float = Field(10.0, gt=0, description="seconds to retry reaching a peer")


class MailboxConfig(Strict):
    """How many undelivered bytes peers may push into one job's mailbox on this party."""

    peer_bytes: int = Field(512 << 20, ge=1 << 16,
                            description="pending bytes of one peer in one job (default 512 MiB)")
    job_bytes: int = Field(1 << 30, ge=1 << 16,
                           description="pending bytes of all peers in one job (default 1 GiB)")


class ServedModel(Strict):
    """Where this party's service reads the features of a served model's ids."""

    dataset: SafeName = Field(description="name of a dataset of this party: its URI is the feature source")
    callable: str | None = Field(None, description="'package.module:function' returning features by id")


class ServingConfig(Strict):
    """Online split inference on this party's service (see vfl.serving.cache and its gRPC and HTTP adapters)."""

    models: dict[SafeName, ServedModel] = Field({}, description="model id -> its feature source")
    http_listen: str | None = Field(None, description="host:port of the guest's HTTP/JSON endpoint")
    http_tls: bool = Field(False, description="serve HTTP over mutual TLS with the party's certificate")
    clients: list[str] = Field(
        [], description="certificate identities allowed to score and read metrics; none by default, "
                        "'*' (explicitly) admits any certificate of the CA, or anyone on plain HTTP")
    audit_log: str | None = Field(None, description="SQLAlchemy URL of the audit table; default SQLite in the store")
    audit: bool = Field(True, description="log every online prediction")
    timeout: float = Field(5.0, gt=0, description="seconds to wait for a host's partial results")
    on_host_error: Literal["error", "missing"] = Field(
        "error", description="a failing host fails the request, or its ids are reported missing")
    max_ids: int = Field(100_000, ge=1, description="largest number of ids in one request")


class MetricsConfig(Strict):
    """The Prometheus metrics port of this party's ``vfl serve`` (off unless `listen` is set)."""

    listen: str | None = Field(None, description="host:port of the metrics endpoint (/metrics, /v1/health, "
                                                 "/v1/ready); off when absent")
    tls: bool = Field(True, description="mutual TLS with the party's certificate; scrapers present a "
                                        "certificate of the federation's CA")
    clients: list[str] = Field(
        [], description="certificate identities allowed to read /metrics and /v1/ready besides the "
                        "party itself; '*' (explicitly) admits any certificate of the CA, or anyone "
                        "on plain HTTP")

    @model_validator(mode="after")
    def _plain_http_is_explicit(self) -> MetricsConfig:
        if self.listen is not None and not self.tls and "*" not in self.clients:
            raise ValueError("tls: false has no certificate identities to check: set clients: ['*'] "
                             "explicitly (and keep the port on loopback or behind a TLS proxy)")
        return self


class RegistryConfig(Strict):
    """Where the replicas of a party are found (see vfl.parties.discovery)."""

    backend: Literal["static", "zookeeper"] = Field(
        "static", description="static: the `peers:` addresses; zookeeper: live replicas in ZooKeeper")
    hosts: str | None = Field(None, description="ZooKeeper ensemble, 'host:port[,host:port...]'")
    root: str = Field("/vfl", pattern=r"^(/[A-Za-z0-9_.-]+)+$", description="ZooKeeper path of the federation")
    session_timeout: float = Field(10.0, ge=1.0, le=60.0,
                                   description="seconds after which a dead replica's node disappears")
    advertise: str | None = Field(None, description="host:port peers reach this replica at; default `listen`")

    @model_validator(mode="after")
    def _hosts_for_zookeeper(self) -> RegistryConfig:
        if self.backend == "zookeeper" and not self.hosts:
            raise ValueError("backend zookeeper needs `hosts` (e.g. zk1:2181,zk2:2181)")
        return self


class ComputeConfig(Strict):
    """Where this party's heavy work (Paillier, PSI, scoring) runs: its own process pool
    (``engine: local``, nothing to start) or its own Dask cluster (``engine: dask``)."""

    engine: Literal["local", "dask"] = Field("local", description="local process pool or a Dask cluster")
    scheduler: str | None = Field(
        None, description="the party's own Dask scheduler, tls://host:port (engine: dask)")
    tls: TlsConfig | None = Field(
        None, description="certificates for the Dask cluster; default: the party's own `tls`")
    retries: int = Field(3, ge=0, description="times a task is retried when it fails on a worker")
    connect_timeout: float = Field(20.0, gt=0, description="seconds to reach the scheduler at start")

    @model_validator(mode="after")
    def _scheduler_matches_engine(self) -> ComputeConfig:
        if self.engine == "dask" and not (self.scheduler or "").startswith("tls://"):
            raise ValueError("engine: dask needs `scheduler: tls://host:port` (TLS only)")
        if self.engine == "local" and (self.scheduler is not None or self.tls is not None):
            raise ValueError("`scheduler` and `tls` apply to engine: dask only")
        return self


class PartyConfig(Strict):
    """One organization's config (``bank.yaml``, ``partner.yaml``); see the README's
    configuration reference for every field. Load it with `load_party_config`.

    Attributes
    ----------
    name : str
        The party's name, the CN of its certificate.
    listen : str
        The address its service listens on.
    tls, peers, datasets, preprocessing, store, policy, timeouts, serving, metrics, registry, compute
        Its certificates, peers' addresses, datasets, preprocessing per dataset, store,
        policy, timeouts, served models, metrics port, where replicas are found and where its
        heavy work runs.
    """

    name: str = Field(pattern=NAME_PATTERN)
    listen: str = "127.0.0.1:50051"
    tls: TlsConfig | None = None
    insecure: bool = Field(False, description="plaintext transport, for local experiments only")
    peers: dict[str, PeerConfig] = {}
    datasets: dict[SafeName, DatasetSpec] = {}
    preprocessing: dict[SafeName, dict[str, Any]] = Field(
        {}, description="per dataset name: this party's own preprocessing pipeline spec"
    )
    models: dict[str, dict[str, Any]] = Field(
        {}, description="per algorithm: this party's own model settings (e.g. its bottom model)"
    )
    store: StoreConfig = StoreConfig()
    policy: PolicyConfig = PolicyConfig()
    timeouts: TimeoutConfig = TimeoutConfig()
    plugins: list[str] = Field([], description="modules to import that register protocols")
    max_message_bytes: int = Field(
        1 << 31, ge=1 << 16, description="largest message accepted from a peer (reassembled size)"
    )
    mailbox: MailboxConfig = MailboxConfig()
    serving: ServingConfig = ServingConfig()
    metrics: MetricsConfig = MetricsConfig()
    registry: RegistryConfig = RegistryConfig()
    compute: ComputeConfig = ComputeConfig()

    def tls_files(self) -> TlsFiles | None:
        """This party's TLS files, or None for plaintext transport."""
        return None if self.tls is None else self.tls.files()

    @model_validator(mode="after")
    def _transport_is_explicit(self) -> PartyConfig:
        if self.tls is None and not self.insecure and self.peers:
            raise ValueError("set `tls` (ca, cert, key) or, for local experiments, `insecure: true`")
        if self.metrics.listen is not None and self.metrics.tls and self.tls is None:
            raise ValueError("metrics.tls needs the party's `tls` section (or metrics.tls: false)")
        if self.registry.backend == "static":
            for peer, entry in self.peers.items():
                if not entry.all_addresses():
                    raise ValueError(f"peers.{peer}: give `address` or `addresses` (only a zookeeper "
                                     "registry finds peers without one)")
        return self


# --- loading -----------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, source: str) -> M:
    """Validate `data`; errors become one ConfigError listing `source: field.path: problem`,
    with a "did you mean" for an unknown key close to a known one."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            loc = tuple(err["loc"])
            if err["type"] == "extra_forbidden" and loc:
                msg = f"{msg} (unknown key{did_you_mean(loc[-1], _keys_at(model, loc[:-1]))})"
            where = ".".join(str(p) for p in loc)
            lines.append(f"{source}: {where}: {msg}" if where else f"{source}: {msg}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the model accepts at `loc` (a path of field names, dict keys, list indexes
    and union member names, as pydantic reports it)."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    models = [t for t in _members(current) if isinstance(t, type) and issubclass(t, BaseModel)]
    return [name for m in models for name in m.model_fields]


def _step(annotation: Any, part: Any) -> Any:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if part in member.model_fields:
                return member.model_fields[part].annotation
            if part == member.__name__:
                return member
        elif get_origin(member) is dict and isinstance(part, str):
            return get_args(member)[1]
        elif get_origin(member) is list and isinstance(part, int):
            return get_args(member)[0]
    return None


def _members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def read_yaml(path: Path, skip: tuple[str, ...] = ()) -> Any:
    """The YAML file's data with ``${NAME}`` expanded; top-level keys in `skip` are left out
    (never expanded, so their environment variables need not be set)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in skip}
    return _expand(data, str(path), "")


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, source: str, where: str) -> Any:
    """``${NAME}`` / ``${NAME:-default}`` in string values, from the environment."""
    if isinstance(value, dict):
        return {k: _expand(v, source, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, source, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def variable(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ConfigError(f"{source}: {where}: environment variable {name} is not set")
        return default

    return _ENV_REFERENCE.sub(variable, value)


def resolve(base: Path, value: Path) -> Path:
    """`value` relative to the config file's folder `base` (absolute paths stay)."""
    return value if value.is_absolute() else (base / value).resolve()


def resolve_uri(base: Path, uri: str) -> str:
    """Plain relative file paths in a config are relative to the config file, not the cwd."""
    if "://" in uri or Path(uri).is_absolute():
        return uri
    return str((base / uri).resolve())


def load_party_config(path: str | Path, *, datasets: bool = True) -> PartyConfig:
    """Load and validate one party's config (``bank.yaml``, ``partner.yaml``).

    Relative paths are resolved against the file's folder and ``${NAME}`` from the environment.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    datasets : bool, default True
        False leaves out `datasets` and `preprocessing` (for commands that only read the store
        or reach peers: no dataset credential is needed).

    Returns
    -------
    PartyConfig
        The validated config.

    Raises
    ------
    ConfigError
        The file is missing or invalid; the message names the file and the field.
    """
    path = Path(path)
    skip = () if datasets else ("datasets", "preprocessing")
    config = parse(PartyConfig, read_yaml(path, skip), str(path))
    base = path.resolve().parent
    if config.tls is not None:
        config.tls = TlsConfig(
            ca=resolve(base, config.tls.ca),
            cert=resolve(base, config.tls.cert),
            key=resolve(base, config.tls.key),
        )
    config.store.path = resolve(base, config.store.path)
    if config.store.artifacts:
        config.store.artifacts = resolve_uri(base, config.store.artifacts)
    for spec in config.datasets.values():
        spec.uri = resolve_uri(base, spec.uri)
    return config
