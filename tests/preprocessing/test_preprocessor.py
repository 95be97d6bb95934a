"""PartyPreprocessor: transforms against direct computations, schema enforcement, config
validation and exact replay after save/load in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from vfl.errors import ConfigError, DataError
from vfl.preprocessing.preprocessor import (
    META_FILE,
    MODEL_FILE,
    PartyPreprocessor,
    PreprocessingConfig,
)

REPO = Path(__file__).resolve().parents[2]


def raw_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(18, 80, n).astype(np.int64),
        "amount": rng.lognormal(8, 1.5, n),
        "sex": rng.integers(1, 3, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
    })
    df["age"] = df["age"].astype(float)
    df.loc[rng.random(n) < 0.1, "age"] = np.nan
    df.loc[rng.random(n) < 0.1, "city"] = None
    return df


FULL = {
    "numeric": {"columns": ["age", "amount"], "impute": "median", "indicator": True,
                "clip": [0.05, 0.95], "scale": "standard"},
    "categorical": {"columns": ["sex", "city"], "impute": "most_frequent",
                    "handle_unknown": "ignore"},
    "bins": {"kind": "binning", "columns": ["amount"], "n_bins": 4, "strategy": "quantile"},
}


def test_numeric_group_matches_direct_computation_with_training_statistics():
    df = raw_frame()
    train, test = df.iloc[:300], df.iloc[300:]
    prep = PartyPreprocessor(config={"numeric": FULL["numeric"]}).fit(train)
    out = prep.transform(test)

    assert list(out.columns) == ["numeric__age", "numeric__amount",
                                 "numeric_missing__missingindicator_age",
                                 "numeric_missing__missingindicator_amount"]
    assert (out.dtypes == np.float64).all() and out.index.equals(test.index)
    for col in ["age", "amount"]:
        x_tr = train[col].to_numpy(dtype=float)
        lo, hi = np.nanquantile(x_tr, [0.05, 0.95])
        clipped = np.clip(x_tr, lo, hi)
        median = np.nanmedian(clipped)
        filled = np.where(np.isnan(clipped), median, clipped)
        mean, std = filled.mean(), filled.std()
        x_te = np.clip(test[col].to_numpy(dtype=float), lo, hi)
        expected = (np.where(np.isnan(x_te), median, x_te) - mean) / std
        np.testing.assert_allclose(out[f"numeric__{col}"], expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(out[f"numeric_missing__missingindicator_{col}"],
                                      test[col].isna().to_numpy(dtype=float))


@pytest.mark.parametrize("scale", ["minmax", "robust"])
def test_other_scalers(scale):
    df = raw_frame().dropna(subset=["age"])
    out = PartyPreprocessor(config={"numeric": {"columns": ["amount"], "scale": scale}}).fit_transform(df)
    x = df["amount"].to_numpy()
    if scale == "minmax":
        expected = (x - x.min()) / (x.max() - x.min())
    else:
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        expected = (x - med) / (q3 - q1)
    np.testing.assert_allclose(out["numeric__amount"], expected, rtol=1e-12)


def test_categorical_onehot_imputes_and_handles_unknown_values():
    df = raw_frame()
    prep = PartyPreprocessor(config={"categorical": FULL["categorical"]}).fit(df)
    assert prep.schema_["city"].categories == ["lyon", "nice", "paris"]
    assert prep.schema_["sex"].categories == [1.0, 2.0]
    mode = df["city"].mode()[0]
    out = prep.transform(df)
    np.testing.assert_array_equal(out[f"categorical__city_{mode}"],
                                  (df["city"].fillna(mode) == mode).to_numpy(dtype=float))
    new = pd.DataFrame({"age": [30.0], "amount": [1.0], "sex": [3], "city": ["rome"]})
    row = prep.transform(new)  # handle_unknown: ignore -> all-zero one-hot, documented
    assert (row.to_numpy() == 0.0).all()


def test_unknown_category_raises_naming_column_and_value_when_configured():
    df = raw_frame()
    spec = {"categorical": {**FULL["categorical"], "handle_unknown": "error"}}
    prep = PartyPreprocessor(config=spec).fit(df)
    bad = df.iloc[:5].copy()
    bad.loc[bad.index[2], "city"] = "rome"
    with pytest.raises(DataError, match=r"column 'city'.*'rome'"):
        prep.transform(bad)
    bad = df.iloc[:5].copy()
    bad.loc[bad.index[0], "sex"] = 7
    with pytest.raises(DataError, match=r"column 'sex'.*7"):
        prep.transform(bad)


def test_ordinal_encoding_maps_unknown_to_minus_one():
    df = raw_frame()
    spec = {"categorical": {"columns": ["city"], "encode": "ordinal", "impute": "constant",
                            "fill_value": "unknown", "handle_unknown": "ignore"}}
    prep = PartyPreprocessor(config=spec).fit(df)
    out = prep.transform(pd.DataFrame({"city": ["lyon", "nice", "paris", None, "rome"]}))
    # categories sorted: lyon, nice, paris, unknown (the fill value seen at fit)
    assert out["categorical__city"].tolist() == [0.0, 1.0, 2.0, 3.0, -1.0]


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_binning(strategy):
    df = raw_frame(1000)
    spec = {"binning": {"columns": ["amount"], "n_bins": 5, "strategy": strategy}}
    out = PartyPreprocessor(config=spec).fit_transform(df)["binning__amount"].to_numpy()
    x = df["amount"].to_numpy()
    if strategy == "quantile":
        assert np.bincount(out.astype(int)).tolist() == [200] * 5
        assert (np.diff(out[np.argsort(x)]) >= 0).all()  # monotone in x
    else:
        width = (x.max() - x.min()) / 5
        expected = np.minimum(np.floor((x - x.min()) / width), 4)
        np.testing.assert_array_equal(out, expected)


def test_schema_errors_name_the_column():
    df = raw_frame()
    prep = PartyPreprocessor(config=FULL).fit(df)
    with pytest.raises(DataError, match=r"missing column\(s\) \['city'\]"):
        prep.transform(df.drop(columns=["city"]))
    drift = df.assign(amount=df["amount"].astype(str))
    with pytest.raises(DataError, match=r"column 'amount' was float64 \(numeric\).*arrived as"):
        prep.transform(drift)
    with pytest.raises(DataError, match=r"column 'city' was .*\(string\).*arrived as int64"):
        prep.transform(df.assign(city=1))
    with pytest.raises(DataError, match=r"column 'amount' has 1 infinite"):
        prep.transform(df.assign(amount=df["amount"].replace(df["amount"].iloc[0], np.inf)))
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        prep.transform(df.to_numpy())


def test_missing_values_without_an_imputer_are_refused():
    df = raw_frame()
    with pytest.raises(DataError, match=r"column 'age' has \d+ missing value\(s\) but group 'numeric'"):
        PartyPreprocessor(config={"numeric": {"columns": ["age"], "scale": "standard"}}).fit(df)
    complete = df.dropna()
    prep = PartyPreprocessor(config={"numeric": {"columns": ["age"]},
                              "categorical": {"columns": ["city"]}}).fit(complete)
    with pytest.raises(DataError, match=r"column 'city' has 1 missing value"):
        prep.transform(complete.iloc[:3].assign(city=["lyon", None, "nice"]))
    with pytest.raises(DataError, match=r"column 'city' is .*, not numeric; group 'numeric'"):
        PartyPreprocessor(config={"numeric": {"columns": ["city"]}}).fit(df.dropna())


def test_extra_columns_are_ignored_and_order_does_not_matter():
    df = raw_frame()
    prep = PartyPreprocessor(config=FULL).fit(df)
    shuffled = df[["city", "amount", "sex", "age"]].assign(other="x")
    assert np.array_equal(prep.transform(shuffled).to_numpy(), prep.transform(df).to_numpy())


def test_config_validation_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"groups\.numeric\.numeric\.scale"):
        PartyPreprocessor(config={"numeric": {"columns": ["a"], "scale": "zscore"}}).fit(raw_frame())
    with pytest.raises(ConfigError, match=r"groups\.numeric\.numeric\.colums: Extra inputs"):
        PreprocessingConfig.parse({"numeric": {"colums": ["a"]}})
    with pytest.raises(ConfigError, match="indicator: true needs an imputer"):
        PreprocessingConfig.parse({"numeric": {"columns": ["a"], "indicator": True}})
    with pytest.raises(ConfigError, match="clip quantiles"):
        PreprocessingConfig.parse({"numeric": {"columns": ["a"], "clip": [0.9, 0.1]}})
    with pytest.raises(ConfigError, match=r"groups\.mine: Unable to extract tag"):
        PreprocessingConfig.parse({"mine": {"columns": ["a"]}})  # kind needed: not a kind name
    path = tmp_path / "party.yaml"
    path.write_text(textwrap.dedent("""
        preprocessing:
          amounts: {kind: numeric, columns: [amount], impute: mean, scale: robust}
          categorical: {columns: [city], encode: ordinal, impute: most_frequent}
          binning: {columns: [age], n_bins: 0}
    """))
    with pytest.raises(ConfigError, match=r"party\.yaml \[preprocessing\]: groups\.binning\.binning\.n_bins"):
        PreprocessingConfig.from_yaml(path, key="preprocessing")
    path.write_text(path.read_text().replace("n_bins: 0", "n_bins: 3, impute: median"))
    cfg = PreprocessingConfig.from_yaml(path, key="preprocessing")
    assert [g.kind for g in cfg.groups.values()] == ["numeric", "categorical", "binning"]
    assert cfg.columns == ["amount", "city", "age"]
    out = PartyPreprocessor(config=cfg).fit_transform(raw_frame())
    assert out.columns.tolist() == ["amounts__amount", "categorical__city", "binning__age"]


def test_usable_as_a_step_of_a_sklearn_pipeline():
    df = raw_frame()
    y = (df["amount"] > df["amount"].median()).astype(int)
    model = Pipeline([("prep", PartyPreprocessor(config=FULL)), ("lr", LogisticRegression())])
    assert model.fit(df, y).score(df, y) > 0.9


def test_saved_preprocessor_replays_bit_identically_in_a_fresh_process(tmp_path):
    df = raw_frame(600)
    train, serve = df.iloc[:500], df.iloc[400:]  # overlapping and unseen rows
    prep = PartyPreprocessor(config=FULL).fit(train)
    expected = prep.transform(serve)
    prep.save(tmp_path / "model")
    serve.to_parquet(tmp_path / "rows.parquet")
    code = textwrap.dedent(f"""
        import numpy as np, pandas as pd
        from vfl.preprocessing.preprocessor import PartyPreprocessor
        prep = PartyPreprocessor.load({str(tmp_path / "model")!r})
        out = prep.transform(pd.read_parquet({str(tmp_path / "rows.parquet")!r}))
        np.save({str(tmp_path / "out.npy")!r}, out.to_numpy())
        print(",".join(out.columns))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split(",") == list(expected.columns)
    replayed = np.load(tmp_path / "out.npy")
    assert replayed.dtype == np.float64
    assert replayed.tobytes() == expected.to_numpy().tobytes()
    meta = json.loads((tmp_path / "model" / META_FILE).read_text())
    assert meta["schema"]["columns"][3]["categories"] == ["lyon", "nice", "paris"]


def test_load_refuses_tampered_or_foreign_files(tmp_path):
    prep = PartyPreprocessor(config=FULL).fit(raw_frame())
    prep.save(tmp_path)
    loaded = PartyPreprocessor.load(tmp_path)
    assert loaded.schema_ == prep.schema_ and loaded.feature_names_out_ == prep.feature_names_out_
    blob = (tmp_path / MODEL_FILE).read_bytes()
    (tmp_path / MODEL_FILE).write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(DataError, match="SHA-256 digest does not match"):
        PartyPreprocessor.load(tmp_path)
    (tmp_path / MODEL_FILE).write_bytes(blob)
    meta = json.loads((tmp_path / META_FILE).read_text())
    (tmp_path / META_FILE).write_text(json.dumps({**meta, "format": "pickle"}))
    with pytest.raises(DataError, match="format 'pickle'"):
        PartyPreprocessor.load(tmp_path)
    with pytest.raises(DataError, match="cannot read a saved preprocessor"):
        PartyPreprocessor.load(tmp_path / "nowhere")


def test_the_preprocessors_follow_the_scikit_learn_api():
    from sklearn.base import clone

    from vfl.preprocessing.preprocessor import QuantileClipper

    prep = PartyPreprocessor(config=FULL)
    assert prep.get_params() == {"config": FULL}
    twin = clone(prep)
    assert twin.config == FULL and twin.config is not FULL
    fitted = prep.fit(raw_frame())
    assert hasattr(fitted, "transformer_") and not hasattr(clone(fitted), "transformer_")
    pd.testing.assert_frame_equal(clone(fitted).fit(raw_frame()).transform(raw_frame()),
                                  fitted.transform(raw_frame()))
    only_amount = {"numeric": {"columns": ["amount"]}}
    assert twin.set_params(config=only_amount).fit(raw_frame()).feature_names_out_ == ["numeric__amount"]
    with pytest.raises(TypeError):
        PartyPreprocessor(FULL)  # keyword-only

    clipper = QuantileClipper(low=0.1, high=0.8)
    assert clone(clipper).get_params() == {"low": 0.1, "high": 0.8}
    assert clipper.set_params(high=0.9).high == 0.9
    # the clipper nested in a fitted pipeline is reachable through deep params
    nested = {k: v for k, v in fitted.transformer_.get_params().items() if k.endswith("clip__low")}
    assert nested == {"numeric__clip__low": 0.05}
    with pytest.raises(TypeError):
        QuantileClipper(0.1, 0.9)  # keyword-only
