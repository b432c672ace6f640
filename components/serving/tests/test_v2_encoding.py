"""V2 `infer` routed with its response model answers exactly what KServe's own route answers."""

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve import Model
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints

from components.serving import v2_encoding


class Adder(Model):
    def __init__(self) -> None:
        super().__init__("adder")
        self.ready = True

    async def predict(self, payload: InferRequest, headers=None) -> InferResponse:
        rows = np.asarray(payload.inputs[0].data, dtype=np.float64).reshape(payload.inputs[0].shape)
        total = rows.sum(axis=1)
        return InferResponse(response_id="r-1", model_name=self.name, model_version="7", parameters={"note": "n"},
                             infer_outputs=[InferOutput("sum", [len(total)], "FP64", total.tolist()),
                                            InferOutput("big", [len(total)], "BOOL", (total > 5).tolist())])


class HeaderSettingDataPlane(DataPlane):
    async def infer(self, *args, **kwargs):
        response, headers = await super().infer(*args, **kwargs)
        return response, {**headers, "x-answered-by": "adder"}


def client(ours: bool) -> TestClient:
    repository = ModelRepository()
    repository.update(Adder())
    dataplane = HeaderSettingDataPlane(model_registry=repository)
    app = FastAPI()
    if ours:
        v2_encoding.install(app, dataplane, None)
    register_v2_endpoints(app, dataplane, None)  # what KServe adds at start, after ours
    return TestClient(app)


@pytest.mark.parametrize("body", [
    {"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP64", "data": [1, 2, 3, 4.5, 1e20, -1]}]},
    {"id": "q", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [[0.1, 0.2]]}],
     "outputs": [{"name": "big"}]},
])
def test_the_same_answer_as_kserves_route(body):
    kserve_answer = client(ours=False).post("/v2/models/adder/infer", json=body)
    ours = client(ours=True).post("/v2/models/adder/infer", json=body)
    assert ours.status_code == kserve_answer.status_code == 200
    assert ours.json() == kserve_answer.json()
    for header in ("content-type", "x-answered-by"):
        assert ours.headers[header] == kserve_answer.headers[header]
