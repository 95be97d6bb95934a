import os
import shutil
import stat

import pytest

from vfl.errors import DataError, UnsafeNameError
from vfl.store.models import ModelStore


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
    from vfl.parties.config import load_party_config
    from vfl.parties.runtime import PartyRuntime

    (tmp_path / "bank.yaml").write_text(
        "name: bank\ninsecure: true\n"
        f"store: {{path: store, artifacts: '{webhdfs.url}/party/models?user=bank'}}\n")
    store = PartyRuntime(load_party_config(tmp_path / "bank.yaml")).model_store()
    store.save("credit", "job-9", role="guest", kind="hetero_lr", write=writer("w9"), peers=["partner"])
    assert os.path.exists(webhdfs.local("/party/models/credit/job-9/weights.json"))


@pytest.mark.parametrize("model_id, version", [("..", "v1"), ("m", ".."), ("m", "."), ("m", "a\x00b"),
                                               ("/tmp", "v1"), ("ｍ", "v1"), ("m", "../../x")])
def test_unsafe_model_ids_and_versions_are_refused_before_any_file_is_touched(tmp_path, model_id, version):
    store = ModelStore("bank", tmp_path / "store")
    store.save("m", "keep", role="guest", kind="k", write=writer("w"), peers=[])
    before = sorted(p for p in tmp_path.rglob("*") if "models.db" not in p.name)
    with pytest.raises(UnsafeNameError, match="model_id|version"):
        store.save(model_id, version, role="guest", kind="k", write=writer("x"), peers=[])
    for action in (lambda: store.get(model_id, version), lambda: store.delete(model_id, version),
                   lambda: store.promote(model_id, version)):
        with pytest.raises(UnsafeNameError):
            action()
    assert sorted(p for p in tmp_path.rglob("*") if "models.db" not in p.name) == before
    assert (store.open(store.get("m", "keep")) / "weights.json").read_text() == "w"


def test_the_store_writes_and_deletes_nothing_outside_its_root(tmp_path):
    """Depth two: even a link planted inside the store cannot lead a write or delete out of it."""
    outside = tmp_path / "elsewhere"
    (outside / "v1").mkdir(parents=True)
    (outside / "v1" / "precious.txt").write_text("keep me")
    store = ModelStore("bank", tmp_path / "store")
    (tmp_path / "store" / "cache").mkdir(exist_ok=True)
    (tmp_path / "store" / "cache" / "m").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeNameError, match="is outside"):
        store.save("m", "v1", role="guest", kind="k", write=writer("x"), peers=[])
    assert (outside / "v1" / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in outside.rglob("*")) == ["precious.txt", "v1"]


def test_store_folders_are_0700_and_files_0600_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = ModelStore("bank", tmp_path / "store")
        store.save("m", "v1", role="guest", kind="k", write=writer("w"), peers=[])
    finally:
        os.umask(old)
    for path in [tmp_path / "store", *(tmp_path / "store").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"
