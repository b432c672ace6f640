import datetime as dt
import hashlib
import json

import pytest

from components.contract import ModelCard
from components.store import model_registry as registry

pytestmark = pytest.mark.integration


@pytest.fixture()
def model_dir(tmp_path):
    root = tmp_path / "model"
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"graph")
    (root / "variables" / "variables.index").write_bytes(b"weights")
    return root


NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_publish_writes_files_then_card(store, bucket, model_dir):
    version = registry.publish_model(store, model_dir, ModelCard("m", {}, None, metrics={"mae": 1.0}), bucket, now=NOW)
    assert version == "20260102030405"
    keys = store.list_keys(bucket, "m/")
    assert f"m/{version}/saved_model.pb" in keys and f"m/{version}/variables/variables.index" in keys
    card = registry.read_card(store, "m", version, bucket)
    assert card.metrics == {"mae": 1.0} and card.storage_uri == f"s3://{bucket}/m/{version}"
    assert card.artifact_digest == registry.directory_digest(model_dir)


def test_republishing_the_same_model_is_a_no_op(store, bucket, model_dir):
    first = registry.publish_model(store, model_dir, ModelCard("m", {}, None), bucket, now=NOW)
    again = registry.publish_model(store, model_dir, ModelCard("m", {}, None), bucket, now=NOW + dt.timedelta(hours=1))
    assert again == first
    assert registry.complete_versions(store, "m", bucket) == [first]


def test_a_new_model_in_the_same_second_gets_the_next_version(store, bucket, model_dir):
    first = registry.publish_model(store, model_dir, ModelCard("m", {}, None), bucket, now=NOW)
    (model_dir / "saved_model.pb").write_bytes(b"other graph")
    second = registry.publish_model(store, model_dir, ModelCard("m", {}, None), bucket, now=NOW)
    assert int(second) == int(first) + 1


def test_incomplete_upload_is_invisible(store, bucket, model_dir):
    store.put_bytes(bucket, "m/20990101000000/saved_model.pb", b"half")  # no card: a killed upload
    assert registry.complete_versions(store, "m", bucket) == []
    with pytest.raises(LookupError, match="no complete version"):
        registry.download_model(store, "m", "20990101000000", model_dir.parent / "cache", bucket)
    with pytest.raises(LookupError):
        registry.set_serving_version(store, "m", "20990101000000", bucket)


def test_serving_record_and_download(store, bucket, model_dir, tmp_path):
    assert registry.serving_version(store, "m", bucket) is None
    version = registry.publish_model(store, model_dir, ModelCard("m", {}, None), bucket, now=NOW)
    registry.set_serving_version(store, "m", version, bucket)
    assert registry.serving_version(store, "m", bucket) == version
    path = registry.download_model(store, "m", version, tmp_path / "cache", bucket)
    assert (path / "variables" / "variables.index").read_bytes() == b"weights"
    assert json.loads((path / registry.CARD_FILE).read_text())["version"] == version


def test_publish_refuses_a_folder_without_saved_model(store, bucket, tmp_path):
    with pytest.raises(ValueError, match="not a SavedModel"):
        registry.publish_model(store, tmp_path, ModelCard("m", {}, None), bucket)


def test_a_file_digest_read_in_chunks_is_the_sha256_of_its_bytes(tmp_path):
    path = tmp_path / "rows.npz"
    path.write_bytes(bytes(range(256)) * 5000)  # several of file_digest's reads
    assert registry.file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
