"""Which version the serving record names after a KServe rollout, against a real object store.

No cluster here: the rollout's answer (`_roll_out_on_kserve`: None when the new spec serves,
the restored spec's version after a rollback) is given; the store, publishing and the record are real.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from components.deploy import deploy as deploy_module
from components.deploy.repository_client import DeployError
from components.store.model_registry import serving_version
from components.store.object_store import ObjectStore, StoreConfig


@pytest.fixture(scope="module")
def own_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """A store of this module's own: its records must not move another test's serving model."""
    from conftest import StoreProcess, _store_port

    root = tmp_path_factory.mktemp("record-store")
    config = StoreConfig(f"127.0.0.1:{_store_port()}", f"rec-{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    process = StoreProcess(config, root / "data", root / "weed.log")
    process.start()
    yield ObjectStore(config)
    process.stop()


@pytest.mark.integration
def test_the_record_is_written_after_the_rollout_and_follows_a_rollback(own_store, tmp_path, monkeypatch) -> None:
    from components.serving.tests.conftest import tiny_sum_card, train_tiny_sum_model

    seen_during_rollout: list[str | None] = []
    # the new spec serves, serves, then is rolled back to the spec of the first version
    outcomes = iter([lambda: None, lambda: None, lambda: versions[0]])

    def roll_out(name: str, version: str, canary_percent: int) -> str | None:
        seen_during_rollout.append(serving_version(own_store, name))
        return next(outcomes)()

    monkeypatch.setattr(deploy_module, "_roll_out_on_kserve", roll_out)
    versions = []
    for seed in (1, 2):
        model = train_tiny_sum_model(tmp_path / str(seed), seed=seed)
        versions.append(deploy_module.deploy(own_store, model, tiny_sum_card(), "kserve", ""))
    # the record moved only once each rollout had succeeded
    assert seen_during_rollout == [None, versions[0]]
    assert serving_version(own_store, "sum") == versions[1]

    with pytest.raises(DeployError, match=f"rolled back to {versions[0]}"):
        deploy_module.deploy(own_store, train_tiny_sum_model(tmp_path / "3", seed=3), tiny_sum_card(), "kserve", "")
    assert serving_version(own_store, "sum") == versions[0], "the record follows the restored spec"
