"""Least exposure: the server listens on 127.0.0.1 unless told otherwise, and with
--no-repository-api nobody can load or unload versions over REST or gRPC."""

import socket
import urllib.error
import urllib.request

import grpc
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from components.serving.client import predict_v1

pytestmark = pytest.mark.integration


def accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(5)
        return sock.connect_ex((host, port)) == 0


def test_by_default_only_the_loopback_address_is_served(model_server_process, deployed_sum):
    for port in (int(model_server_process.url.rsplit(":", 1)[1]), int(model_server_process.grpc.rsplit(":", 1)[1])):
        assert accepts("127.0.0.1", port)
        assert not accepts("127.0.0.2", port)  # another address of this machine (all of 127/8 is loopback on Linux)


def test_a_cluster_predictor_serves_the_address_asked_and_no_repository_api(new_model_server, deployed_sum):
    server = new_model_server("--no-repository-api", host="127.0.0.2")
    server.start()
    assert not accepts("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    assert predict_v1(server.url, "sum", [[1, 2]])["model_version"] == deployed_sum
    for action in ("load", "unload"):
        request = urllib.request.Request(f"{server.url}/v2/repository/models/sum/{action}", data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 403 and b"--no-repository-api" in caught.value.read()
    with grpc.insecure_channel(server.grpc) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for call, message in (
            (stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="sum")),
            (stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="sum")),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                call(message, timeout=10)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "--no-repository-api" in caught.value.details()
        assert stub.ModelReady(pb.ModelReadyRequest(name="sum")).ready
