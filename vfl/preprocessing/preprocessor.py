"""Per-party feature preprocessing: fitted on the party's own aligned training rows, saved
with its model part, replayed exactly at evaluation, serving and batch scoring.

Each party declares column groups (in YAML or Python)::

    numeric:     {columns: [AGE, LIMIT_BAL], impute: median, indicator: true,
                  clip: [0.01, 0.99], scale: standard}
    categorical: {columns: [SEX, EDUCATION], encode: onehot, impute: most_frequent,
                  handle_unknown: ignore}
    binned:      {kind: binning, columns: [AGE], n_bins: 10, strategy: quantile}

and `PartyPreprocessor(config=config)` turns them into one scikit-learn `ColumnTransformer`. The
schema seen at fit (`schema_`) is enforced on every later batch, so drifted input raises a
`DataError` naming the column instead of producing a silently wrong score. Nothing here ever
leaves the party: it is saved locally (skops, a format that refuses unexpected types, plus a
SHA-256 digest) next to the party's model part.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import sklearn
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from vfl.errors import ConfigError, DataError
from vfl.preprocessing.schema import NUMERIC, STRING, Schema

# ---------------------------------------------------------------------------------------------
# configuration


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_columns(self) -> _Group:
        dup = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if dup:
            raise ValueError(f"columns listed twice: {dup}")
        return self


class NumericGroup(_Group):
    """Impute -> clip outliers at learned quantiles -> scale; optional 0/1 missing indicators."""

    kind: Literal["numeric"] = "numeric"
    impute: Literal["mean", "median", "constant"] | None = None
    fill_value: float = 0.0
    indicator: bool = False
    clip: tuple[float, float] | None = None
    scale: Literal["standard", "minmax", "robust"] | None = None

    @model_validator(mode="after")
    def _check(self) -> NumericGroup:
        if self.indicator and self.impute is None:
            raise ValueError("indicator: true needs an imputer (impute: mean|median|constant)")
        if self.clip is not None and not 0.0 <= self.clip[0] < self.clip[1] <= 1.0:
            raise ValueError(f"clip quantiles must satisfy 0 <= low < high <= 1, got {self.clip}")
        return self


class CategoricalGroup(_Group):
    """Impute -> one-hot or ordinal code; unseen values raise or map to zeros / -1."""

    kind: Literal["categorical"] = "categorical"
    encode: Literal["onehot", "ordinal"] = "onehot"
    impute: Literal["most_frequent", "constant"] | None = None
    fill_value: str | float | None = None
    handle_unknown: Literal["error", "ignore"] = "error"

    @model_validator(mode="after")
    def _check(self) -> CategoricalGroup:
        if self.impute == "constant" and self.fill_value is None:
            raise ValueError("impute: constant needs a fill_value")
        return self


class BinningGroup(_Group):
    """Impute -> quantile or equal-width bins, as bin index or one-hot."""

    kind: Literal["binning"] = "binning"
    n_bins: int = Field(10, ge=2, le=1000)
    strategy: Literal["quantile", "uniform"] = "quantile"
    encode: Literal["ordinal", "onehot"] = "ordinal"
    impute: Literal["mean", "median", "constant"] | None = None
    fill_value: float = 0.0


Group = Annotated[NumericGroup | CategoricalGroup | BinningGroup, Field(discriminator="kind")]
KINDS = ("numeric", "categorical", "binning")


class PreprocessingConfig(BaseModel):
    """A party's preprocessing: named column groups (docs/preprocessing.md).

    Parameters
    ----------
    groups : dict of str to group
        Each group's settings; a group's `kind` ("numeric", "categorical", "binning")
        defaults to its name when that is a kind. The bare ``{name: group}`` form is accepted.

    Raises
    ------
    pydantic.ValidationError
        An invalid config (`parse` and `from_yaml` turn it into a `ConfigError` naming the
        source and the field).
    """

    model_config = ConfigDict(extra="forbid")
    groups: dict[str, Group] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: Any) -> Any:
        if isinstance(data, dict) and "groups" not in data:
            data = {"groups": data}  # the bare {name: group} form
        if isinstance(data, dict) and isinstance(data.get("groups"), dict):
            groups = {}
            for name, g in data["groups"].items():
                if isinstance(g, dict) and "kind" not in g and name in KINDS:
                    g = {**g, "kind": name}
                groups[name] = g
            data = {**data, "groups": groups}
        return data

    @model_validator(mode="after")
    def _names(self) -> PreprocessingConfig:
        for name in self.groups:
            if not name.isidentifier() or "__" in name or name.endswith("_missing"):
                raise ValueError(
                    f"group name {name!r} must be an identifier without '__' or a '_missing' suffix"
                )
        return self

    @property
    def columns(self) -> list[str]:
        """Every input column, in first-declared order."""
        return list(dict.fromkeys(c for g in self.groups.values() for c in g.columns))

    @classmethod
    def parse(cls, spec: Any, *, source: str = "preprocessing config") -> PreprocessingConfig:
        """Validate a dict (or a config).

        Parameters
        ----------
        spec : PreprocessingConfig or dict
            The column groups (docs/preprocessing.md).
        source : str, default "preprocessing config"
            What the errors name as the config's origin.

        Returns
        -------
        PreprocessingConfig
            The validated config (`spec` itself when it is one).

        Raises
        ------
        ConfigError
            The spec is invalid; the message names the source and the field.
        """
        if isinstance(spec, cls):
            return spec
        try:
            return cls.model_validate(spec)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"{source}: {problems}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, key: str | None = None) -> PreprocessingConfig:
        """Read the config from a YAML file.

        Parameters
        ----------
        path : str or Path
            The YAML file.
        key : str or None, default None
            A top-level field holding the config (e.g. "preprocessing" in a party config).

        Returns
        -------
        PreprocessingConfig
            The validated config.

        Raises
        ------
        ConfigError
            The file cannot be read, has no field `key`, or the config is invalid.
        """
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read preprocessing config: {exc}") from exc
        if key is not None:
            if not isinstance(data, dict) or key not in data:
                raise ConfigError(f"{path}: no top-level field '{key}'")
            data = data[key]
        return cls.parse(data, source=f"{path}" + (f" [{key}]" if key else ""))


# ---------------------------------------------------------------------------------------------
# the one transformer scikit-learn does not have


class QuantileClipper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Clip each column to its [low, high] quantiles learned at fit (NaN passes through).

    Parameters
    ----------
    low, high : float, default 0.01 and 0.99
        The quantiles (in [0, 1]) each column is clipped to.
    """

    def __init__(self, *, low: float = 0.01, high: float = 0.99) -> None:
        self.low = low
        self.high = high

    def fit(self, X: Any, y: Any = None) -> QuantileClipper:
        values = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        bounds = np.nanquantile(values, [self.low, self.high], axis=0)
        self.lower_, self.upper_ = bounds[0], bounds[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "lower_")
        values = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        return np.clip(values, self.lower_, self.upper_)


# ---------------------------------------------------------------------------------------------
# the party's preprocessor

_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
FORMAT = "vfl-preprocessor/1"
MODEL_FILE, META_FILE = "preprocessor.skops", "preprocessor.json"
# Types the saved transformer may contain beyond skops' defaults; anything else is refused.
TRUSTED_TYPES = frozenset({"numpy.dtype", f"{__name__}.QuantileClipper"})


def _imputer(strategy: str, fill_value: Any) -> SimpleImputer:
    if strategy == "constant":
        return SimpleImputer(strategy="constant", fill_value=fill_value)
    return SimpleImputer(strategy=strategy)


def _branch(group: NumericGroup | CategoricalGroup | BinningGroup) -> Pipeline | str:
    steps: list[tuple[str, Any]] = []
    if isinstance(group, NumericGroup):
        if group.clip is not None:
            steps.append(("clip", QuantileClipper(low=group.clip[0], high=group.clip[1])))
        if group.impute is not None:
            steps.append(("impute", _imputer(group.impute, group.fill_value)))
        if group.scale is not None:
            steps.append(("scale", _SCALERS[group.scale]()))
    elif isinstance(group, CategoricalGroup):
        if group.impute is not None:
            steps.append(("impute", _imputer(group.impute, group.fill_value)))
        if group.encode == "onehot":
            steps.append(("encode", OneHotEncoder(
                handle_unknown="ignore", sparse_output=False, dtype=np.float64)))
        else:
            steps.append(("encode", OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64)))
    else:
        if group.impute is not None:
            steps.append(("impute", _imputer(group.impute, group.fill_value)))
        steps.append(("bin", KBinsDiscretizer(
            n_bins=group.n_bins, strategy=group.strategy, subsample=None,
            encode="ordinal" if group.encode == "ordinal" else "onehot-dense")))
    return Pipeline(steps) if steps else "passthrough"


def check_input(cfg: PreprocessingConfig, X: pd.DataFrame, where: str) -> Schema:
    """What `fit` needs of its input, checked on any table of the same columns (a job checks
    a party's whole dataset before PSI): every configured column present, with values, of a
    kind its group takes, and missing values only where the group imputes. Returns the
    schema of the configured columns."""
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame, got {type(X).__name__}")
    missing = [c for c in cfg.columns if c not in X.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing} declared in the preprocessing config")
    if len(X) == 0:
        raise DataError(f"{where}: no rows")
    schema = Schema.record(X, cfg.columns)
    schema.check(X, where=where)
    for name, group in cfg.groups.items():
        for col in group.columns:
            cs = schema[col]
            if cs.missing_at_fit == len(X):
                raise DataError(f"{where}: column '{col}' has no values at all")
            if group.kind != "categorical" and cs.kind == STRING:
                raise DataError(
                    f"{where}: column '{col}' is {cs.dtype}, not numeric; group '{name}' "
                    f"({group.kind}) needs numbers (declare it in a categorical group)"
                )
            if (isinstance(group, CategoricalGroup) and group.impute == "constant"
                    and isinstance(group.fill_value, str) != (cs.kind == STRING)):
                raise ConfigError(
                    f"groups.{name}.fill_value: {group.fill_value!r} does not match the "
                    f"{cs.kind} values of column '{col}'"
                )
            if group.impute is None and cs.missing_at_fit:
                raise DataError(
                    f"{where}: column '{col}' has {cs.missing_at_fit} missing value(s) but group "
                    f"'{name}' has no imputer (set impute)"
                )
    return schema


def _json_value(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


class PartyPreprocessor(TransformerMixin, BaseEstimator):
    """One party's feature preprocessing over its own columns (a scikit-learn transformer).

    Parameters
    ----------
    config : PreprocessingConfig or dict or None, default None
        The pipeline: a `PreprocessingConfig`, or the dict form it validates (docs/preprocessing.md).

    Attributes
    ----------
    config_ : PreprocessingConfig
        The validated configuration.
    schema_ : Schema
        Columns, dtypes and categories seen at fit.
    transformer_ : sklearn.compose.ColumnTransformer
        The fitted transformer.
    feature_names_out_ : list of str
        Names of the output columns.
    """

    def __init__(self, *, config: Any = None) -> None:
        self.config = config

    # --- fit / transform --------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> PartyPreprocessor:
        """Learn the pipeline on this party's training rows and record their schema.

        Parameters
        ----------
        X : pandas.DataFrame
            The party's raw columns (at least those the config names).
        y : ignored
            Present for scikit-learn pipelines.

        Returns
        -------
        PartyPreprocessor
            self, fitted.

        Raises
        ------
        ConfigError
            The config is invalid or does not suit the data's column kinds.
        DataError
            A configured column is missing, or has missing values and no imputer.
        """
        cfg = PreprocessingConfig.parse(self.config)
        schema = check_input(cfg, X, "fit")
        self.config_, self.schema_ = cfg, schema
        data = self._prepare(X, "fit")
        ct = ColumnTransformer(self._branches(cfg), remainder="drop", verbose_feature_names_out=True)
        ct.set_output(transform="pandas")
        self.transformer_ = ct.fit(data)
        for name, group in cfg.groups.items():
            if isinstance(group, CategoricalGroup):
                encoder = ct.named_transformers_[name].named_steps["encode"]
                for col, cats in zip(group.columns, encoder.categories_, strict=True):
                    schema[col].categories = [_json_value(v) for v in cats]
        self.feature_names_out_ = [str(c) for c in ct.get_feature_names_out()]
        self.n_features_in_ = len(cfg.columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Apply the fitted pipeline.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows with the columns seen at fit.

        Returns
        -------
        pandas.DataFrame
            float64 features with named columns (`feature_names_out_`) and the input's index.

        Raises
        ------
        DataError
            The input drifted from the schema seen at fit (a column missing or of another
            kind, an unknown category where the config refuses them); the message names the
            column.
        """
        check_is_fitted(self, "transformer_")
        self.schema_.check(X, where="transform")
        data = self._prepare(X, "transform")
        self._check_unknown(data)
        out = self.transformer_.transform(data).astype(np.float64)
        out.index = X.index
        if out.isna().to_numpy().any():  # defensive: must never reach a model
            bad = out.columns[out.isna().any()].tolist()
            raise DataError(f"transform: output features {bad} contain NaN")
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The output column names (scikit-learn's convention).

        Parameters
        ----------
        input_features : ignored
            Present for scikit-learn.

        Returns
        -------
        numpy.ndarray
            `feature_names_out_` as an object array.
        """
        check_is_fitted(self, "transformer_")
        return np.asarray(self.feature_names_out_, dtype=object)

    # --- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _branches(cfg: PreprocessingConfig) -> list[tuple[str, Any, list[str]]]:
        out: list[tuple[str, Any, list[str]]] = []
        for name, group in cfg.groups.items():
            out.append((name, _branch(group), list(group.columns)))
            if isinstance(group, NumericGroup) and group.indicator:
                out.append((f"{name}_missing", MissingIndicator(features="all"), list(group.columns)))
        return out

    def _prepare(self, X: pd.DataFrame, where: str) -> pd.DataFrame:
        """Numbers as float64, strings as object with NaN for missing; NaN needs an imputer."""
        cols: dict[str, Any] = {}
        for cs in self.schema_.columns:
            s = X[cs.name]
            if cs.kind == STRING:
                cols[cs.name] = s.astype(object).where(s.notna(), np.nan).to_numpy()
            else:
                cols[cs.name] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        data = pd.DataFrame(cols, index=X.index)
        for name, group in self.config_.groups.items():
            if group.impute is not None:
                continue
            for col in group.columns:
                n = int(data[col].isna().sum())
                if n:
                    raise DataError(
                        f"{where}: column '{col}' has {n} missing value(s) but group '{name}' "
                        f"has no imputer (set impute)"
                    )
        return data

    def _check_unknown(self, data: pd.DataFrame) -> None:
        for name, group in self.config_.groups.items():
            if not isinstance(group, CategoricalGroup) or group.handle_unknown != "error":
                continue
            for col in group.columns:
                seen = self.schema_[col].categories or []
                values = data[col].dropna()
                if self.schema_[col].kind == NUMERIC:
                    unknown = values[~np.isin(values.to_numpy(dtype=np.float64), seen)]
                else:
                    unknown = values[~values.isin(seen)]
                if len(unknown):
                    raise DataError(
                        f"transform: column '{col}' has {len(unknown)} value(s) not seen at fit, "
                        f"e.g. {sorted(set(unknown.tolist()), key=str)[:5]} (group '{name}' has "
                        f"handle_unknown: error; seen: {seen})"
                    )

    # --- persistence (local only: never sent to a peer) -------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write `preprocessor.skops` and `preprocessor.json` (config, schema, digest).

        Parameters
        ----------
        directory : str or Path
            The folder (created if missing).
        """
        import skops.io as sio  # only where models are saved or loaded: slow to import

        check_is_fitted(self, "transformer_")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        blob = sio.dumps(self.transformer_)
        meta = {
            "format": FORMAT,
            "config": self.config_.model_dump(mode="json"),
            "schema": self.schema_.to_dict(),
            "feature_names_out": self.feature_names_out_,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        }
        (d / MODEL_FILE).write_bytes(blob)
        (d / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> PartyPreprocessor:
        """Read what `save` wrote.

        Parameters
        ----------
        directory : str or Path
            The folder `save` wrote to.

        Returns
        -------
        PartyPreprocessor
            The fitted preprocessor, replaying exactly what was saved.

        Raises
        ------
        DataError
            A file is missing, tampered, foreign (unexpected types) or corrupted, or was saved
            with another scikit-learn version.
        """
        import skops.io as sio

        d = Path(directory)
        try:
            meta = json.loads((d / META_FILE).read_text())
            blob = (d / MODEL_FILE).read_bytes()
        except (OSError, ValueError) as exc:
            raise DataError(f"{d}: cannot read a saved preprocessor: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise DataError(f"{d / META_FILE}: format {meta.get('format')!r}, expected {FORMAT!r}")
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise DataError(f"{d / MODEL_FILE}: SHA-256 digest does not match {META_FILE}")
        if meta["versions"]["scikit-learn"] != sklearn.__version__:
            raise DataError(
                f"{d}: saved with scikit-learn {meta['versions']['scikit-learn']}, running "
                f"{sklearn.__version__}: replay would not be guaranteed identical; refit"
            )
        untrusted = set(sio.get_untrusted_types(data=blob))
        if untrusted - TRUSTED_TYPES:
            raise DataError(f"{d / MODEL_FILE}: refusing unexpected types {sorted(untrusted - TRUSTED_TYPES)}")
        obj = cls(config=PreprocessingConfig.parse(meta["config"], source=str(d / META_FILE)))
        obj.config_ = obj.config
        obj.schema_ = Schema.from_dict(meta["schema"])
        obj.transformer_ = sio.loads(blob, trusted=sorted(untrusted))
        obj.feature_names_out_ = list(meta["feature_names_out"])
        obj.n_features_in_ = len(obj.schema_.columns)
        return obj
