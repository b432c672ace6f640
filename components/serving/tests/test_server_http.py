"""The real model server over HTTP: V1, V2, metadata, errors and version switches."""

import json
import subprocess
import sys
import threading
import urllib.request

import pytest

from components.deploy.deploy import deploy
from components.deploy.repository_client import served_version
from components.serving.client import infer_v2, post_json, predict_v1
from components.serving.tests.conftest import tiny_sum_card, train_tiny_sum_model
from components.store.object_store import ObjectStore

pytestmark = pytest.mark.integration


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_v1_predict_names_the_version(model_server, deployed_sum):
    body = predict_v1(model_server, "sum", [[1, 2], [3, 4]])
    assert len(body["predictions"]) == 2 and body["model_version"] == deployed_sum


def test_the_deployed_versions_are_served_by_their_litert_conversion(
    model_server, deployed_sum, deployed_three_body, model_server_log
):
    # Checked against the SavedModel when loaded (components/serving/lite.py): a conversion that
    # fell back to TensorFlow would serve correctly, only slower, so only the log shows it.
    log = model_server_log.read_text()
    assert f"model sum: serving version {deployed_sum} (LiteRT)" in log
    assert f"model three-body: serving version {deployed_three_body} (LiteRT)" in log


def test_the_server_runs_on_uvloop(model_server, model_server_log):
    # A server on asyncio's own loop answers correctly, only slower: only the log shows it.
    assert "event loop: uvloop" in model_server_log.read_text()


def test_v2_infer_and_metadata(model_server, deployed_sum):
    body = infer_v2(model_server, "sum", "pairs", [[1, 2], [3, 4], [5, 6]])
    assert body["model_name"] == "sum" and body["model_version"] == deployed_sum
    assert body["outputs"][0]["name"] == "sum" and body["outputs"][0]["shape"] == [3]
    meta = get(f"{model_server}/v2/models/sum")
    assert meta["versions"] == [deployed_sum]
    assert meta["inputs"] == [{"name": "pairs", "datatype": "FP32", "shape": [-1, 2]}]
    assert meta["outputs"] == [
        {"name": "sum", "datatype": "FP64", "shape": [-1]},
        {"name": "out_of_envelope", "datatype": "BOOL", "shape": [-1]},
    ]
    assert get(f"{model_server}/v2/models/sum/ready")["ready"] is True
    assert get(f"{model_server}/v1/models/sum")["ready"] is True


def test_requests_outside_the_training_envelope_are_answered_but_flagged(model_server, deployed_sum):
    def outside_count():
        with urllib.request.urlopen(f"{model_server}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()
        return sum(
            float(line.split()[-1])
            for line in lines
            if line.startswith("fuseml_out_of_envelope_rows_total") and 'model="sum"' in line
        )

    before = outside_count()
    body = predict_v1(model_server, "sum", [[2000, 3000], [1_000_000, 4], [-1, 5]])
    assert body["out_of_envelope"] == [False, True, True] and len(body["predictions"]) == 3
    v2 = infer_v2(model_server, "sum", "pairs", [[1_000_000, 4]])
    flag = v2["outputs"][1]
    assert (flag["name"], flag["datatype"], flag["shape"], flag["data"]) == ("out_of_envelope", "BOOL", [1], [True])
    assert outside_count() - before == 3


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/v1/models/sum:predict", {"instances": [[1, "x"]]}, "not a number"),
        ("/v1/models/sum:predict", {"instances": []}, "empty"),
        ("/v1/models/sum:predict", {"rows": [[1, 2]]}, "instances"),
        (
            "/v2/models/sum/infer",
            {"inputs": [{"name": "pairs", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
            "shape",
        ),
        (
            "/v2/models/sum/infer",
            {"inputs": [{"name": "pairs", "shape": [2, 2], "datatype": "FP64", "data": [1, 2]}]},
            "values but shape",
        ),
    ],
)
def test_bad_input_gets_a_400_naming_the_problem(model_server, deployed_sum, path, body, message):
    status, answer = post_json(model_server + path, body)
    assert status == 400, answer
    assert message in json.dumps(answer)
    assert get(f"{model_server}/v2/models/sum/ready")["ready"] is True


def test_unknown_model_is_a_404(model_server, deployed_sum):
    status, _ = post_json(f"{model_server}/v1/models/nope:predict", {"instances": [[1, 2]]})
    assert status == 404


def test_new_version_switch_fails_no_request(model_server, deployed_sum, store_config, tmp_path):
    """Deploy a new version while clients hammer the server: no errors, versions only move forward.

    Forward for each client, whose requests follow one another: between clients, the order in
    which their threads record answers is not the order the server gave them."""
    seen: list[list[str]] = [[] for _ in range(4)]
    errors, stop = [], threading.Event()

    def client(answers: list[str]):
        while not stop.is_set():
            status, body = post_json(f"{model_server}/v1/models/sum:predict", {"instances": [[1, 2]]})
            (answers.append(body["model_version"]) if status == 200 else errors.append((status, body)))

    threads = [threading.Thread(target=client, args=(answers,)) for answers in seen]
    for thread in threads:
        thread.start()
    try:
        new = deploy(
            ObjectStore(store_config),
            train_tiny_sum_model(tmp_path / "m", seed=5),
            tiny_sum_card(),
            "local",
            model_server,
        )
        predict_v1(model_server, "sum", [[1, 2]])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors
    assert new != deployed_sum and served_version(model_server, "sum") == new
    assert all(set(answers) <= {deployed_sum, new} for answers in seen) and any(new in a for a in seen)
    for answers in seen:
        assert set(answers[answers.index(new) :] if new in answers else []) <= {new}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model-threads", "0"], "--model-threads must be positive"),
        (["--max-body-bytes", "0"], "--max-body-bytes must be positive"),
        (["--models", "sum,nope"], "unknown model(s) nope"),
        (["--grpc-port", "8080"], "--grpc-port must be a port number other than --http-port"),
        (["--models", "sum", "--model-version", "sum"], "--model-version takes NAME=VERSION"),
        (["--model-version", "sum=1", "--model-version", "sum=2"], "once per model"),
        (["--models", "sum", "--model-version", "three-body=3"], "names model(s) not served: three-body"),
    ],
)
def test_bad_server_options_are_refused_before_anything_starts(args, message):
    done = subprocess.run(
        [sys.executable, "-m", "components.serving", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )  # no store settings: it must not get that far
    assert done.returncode == 2 and message in done.stderr, done.stderr
