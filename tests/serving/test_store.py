import os
import shutil

import pytest

from vfl.errors import DataError
from vfl.serving.store import ModelStore


def writer(text):
    def write(directory):
        (directory / "weights.json").write_text(text)
        (directory / "sub").mkdir()
        (directory / "sub" / "x.txt").write_text("x")
    return write


def test_versions_promote_rollback_delete(tmp_path):
    store = ModelStore("bank", tmp_path)
    store.save("credit", "job-1", role="guest", kind="hetero_lr", write=writer("1"), peers=["partner"],
               metrics={"auc": 0.7})
    store.save("credit", "job-2", role="guest", kind="hetero_lr", write=writer("2"), peers=["partner"])
    with pytest.raises(DataError, match=r"has no production version of model 'credit' \(versions here: "
                                        r"\['job-1', 'job-2'\]; promote one\)"):
        store.get("credit")
    store.promote("credit", "job-1")
    store.promote("credit", "job-2")
    assert store.get("credit").version == "job-2"
    assert [r.stage for r in store.list("credit")] == ["archived", "production"]
    assert store.rollback("credit").version == "job-1"
    assert store.get("credit").version == "job-1"
    with pytest.raises(DataError, match="in production"):
        store.delete("credit", "job-1")
    store.delete("credit", "job-2")
    assert [r.version for r in store.list()] == ["job-1"]
    assert (store.open(store.get("credit")) / "weights.json").read_text() == "1"
    with pytest.raises(DataError, match="already exists"):
        store.save("credit", "job-1", role="guest", kind="hetero_lr", write=writer("x"), peers=[])


def test_records_survive_a_new_store_object_and_tampering_is_detected(tmp_path):
    ModelStore("bank", tmp_path).save("m", "v1", role="host", kind="k", write=writer("w"), peers=["bank"])
    store = ModelStore("bank", tmp_path)
    record = store.get("m", "v1")
    assert record.peers == ["bank"] and record.role == "host"
    path = store.open(record)
    (path / "weights.json").write_text("evil")
    with pytest.raises(DataError, match="do not match their digest"):
        store.open(record)


def test_unknown_version_lists_what_exists(tmp_path):
    store = ModelStore("partner", tmp_path)
    store.save("m", "v1", role="host", kind="k", write=writer("w"), peers=[])
    with pytest.raises(DataError, match=r"no model 'm' version 'v9' \(versions here: \['v1'\]\)"):
        store.get("m", "v9")


def test_artifacts_on_hdfs_are_fetched_back_and_checked(tmp_path, webhdfs):
    """A party whose local cache is gone (new machine) gets its part back from HDFS."""
    artifacts = f"{webhdfs.url}/vfl/models?user=bank"
    store = ModelStore("bank", tmp_path / "a", artifacts=artifacts)
    store.save("credit", "job-1", role="guest", kind="hetero_lr", write=writer("w1"), peers=["partner"])
    assert os.path.exists(webhdfs.local("/vfl/models/credit/job-1/sub/x.txt"))  # uploaded
    shutil.rmtree(tmp_path / "a" / "cache")
    record = store.get("credit", "job-1")
    path = store.open(record)
    assert (path / "weights.json").read_text() == "w1" and (path / "sub" / "x.txt").read_text() == "x"

    with open(webhdfs.local("/vfl/models/credit/job-1/weights.json"), "w") as f:
        f.write("tampered")
    shutil.rmtree(tmp_path / "a" / "cache")
    with pytest.raises(DataError, match="do not match their digest"):
        store.open(record)


def test_a_party_config_puts_artifacts_on_hdfs(tmp_path, webhdfs):
    from vfl.config import load_party_config
    from vfl.parties.runtime import PartyRuntime

    (tmp_path / "bank.yaml").write_text(
        "name: bank\ninsecure: true\n"
        f"store: {{path: store, artifacts: '{webhdfs.url}/party/models?user=bank'}}\n")
    store = PartyRuntime(load_party_config(tmp_path / "bank.yaml")).model_store()
    store.save("credit", "job-9", role="guest", kind="hetero_lr", write=writer("w9"), peers=["partner"])
    assert os.path.exists(webhdfs.local("/party/models/credit/job-9/weights.json"))
