"""Model server benchmark: the project's server vs a bare KServe server vs the in-process floor.

Run by `make bench` (not by pytest). It starts its own object store and two servers on free
ports of this machine, deploys a small sum model, and measures at the same uvicorn worker
count (1):

  (a) project   `python -m components.serving`: input checks, envelope flags, metrics and
                request logging to the store, all on (micro-batching on, as by default);
      unlogged  the same server with `--no-traffic-log`: the difference from (a) is what
                logging every request to the store costs (the target is judged on (a));
  (b) bare      a `kserve.ModelServer` whose `kserve.Model` only adds the two numbers with
                numpy: the cost of KServe itself;
  (c) floor     the loaded SavedModel predictor (`components.sum.model.load_predictor`) called
                in-process, one call after another

for single-row and batched (100 rows) V1 and V2 requests over HTTP, and Open Inference Protocol
requests over gRPC (raw tensor bytes, as Triton's client sends them), from 32 concurrent
keep-alive clients (one gRPC channel each): tests/loadgen's, or with --grpc-client h2load
nghttp2's h2load, a load generator in C that sends each next request the moment a reply arrives.
Each server runs on one core and the load generator and the store on the others (`--no-pin` to
not pin), so that client work does not compete with the server measured; the project's traffic
log writer, a process of the server's, runs beside the store, as KServe's payload logger runs in
the agent sidecar, a container with CPU of its own (its CPU time counts in the project's). The
servers take turns in alternating rounds, so that load from other processes on a shared machine
falls on both alike. It prints a table, writes JSON with --json PATH, and exits 1 on any failed request
(and, with --require-target, when (a) reaches less than (b)'s throughput, or a worse p99, in any
configuration).

    .venv/bin/python tests/benchmarks/bench_model_server.py [--seconds 24] [--rounds 8] [--protocols v1,v2,grpc]
        [--grpc-client loadgen|h2load] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

TARGET = 1.00  # of bare's throughput, with a p99 no worse than bare's, in every configuration
LOGGED = "project"  # the server the target is judged on, and the only one logging to the store


# ---------------------------------------------------------------- (b) the bare KServe server


def serve_bare(port: int, grpc_port: int) -> None:
    """A kserve.Model that adds the two numbers with numpy, answering V1, V2 and gRPC like the project's."""
    import uuid

    from kserve import Model, ModelServer
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class NumpySum(Model):
        def __init__(self) -> None:
            super().__init__("sum")
            self.ready = True

        async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            if isinstance(payload, InferRequest):
                tensor = payload.inputs[0]
                rows = tensor.as_numpy().astype(np.float64)  # JSON data or gRPC raw bytes
                total = rows.sum(axis=1)
                return InferResponse(
                    response_id=payload.id or str(uuid.uuid4()),
                    model_name=self.name,
                    infer_outputs=[InferOutput("sum", list(total.shape), "FP64", total.tolist())],
                )
            return {"predictions": np.asarray(payload["instances"], dtype=np.float64).sum(axis=1).tolist()}

    ModelServer(http_port=port, grpc_port=grpc_port, enable_grpc=True, workers=1).start([NumpySum()])


# ---------------------------------------------------------------- services


def pin_servers() -> set[int] | None:
    """Give the servers one core and keep this process (the load generator, the store) on the
    others, so that client work never competes with the server being measured; None (no
    pinning) on a single-core machine."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    os.sched_setaffinity(0, set(cores[1:]))
    return {cores[0]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_live(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/live", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server at {url} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def start_server(
    command: list[str], url: str, log: Path, env: dict[str, str], cores: set[int] | None = None
) -> subprocess.Popen:
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
    wait_live(url, process, log)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def train_sum_model(path: Path) -> Path:
    from components.saved_model import export
    from components.sum.data import SumDataSpec, generate
    from components.sum.model import SumTrainingConfig, train

    inputs, targets = generate(SumDataSpec(size=2000, seed=0))
    export(train(inputs, targets, SumTrainingConfig(epochs=2, learning_rate=3e-3, seed=0)), path)
    return path


# ---------------------------------------------------------------- measuring


def bodies(protocol: str, rows: int, count: int = 64, seed: int = 0) -> list[Any]:
    """(path, body) for v1 and v2; a serialized ModelInferRequest with raw tensor bytes for grpc."""
    rng = np.random.default_rng(seed)
    made: list[Any] = []
    for _ in range(count):
        pairs = np.round(rng.uniform(0, 10_000, size=(rows, 2)), 3)
        if protocol == "grpc":
            from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

            made.append(
                pb.ModelInferRequest(
                    model_name="sum",
                    inputs=[{"name": "pairs", "shape": [rows, 2], "datatype": "FP64"}],
                    raw_input_contents=[pairs.tobytes()],
                ).SerializeToString()
            )
        elif protocol == "v1":
            made.append(("/v1/models/sum:predict", json.dumps({"instances": pairs.tolist()}).encode()))
        else:
            made.append(
                (
                    "/v2/models/sum/infer",
                    json.dumps(
                        {
                            "inputs": [
                                {
                                    "name": "pairs",
                                    "shape": [rows, 2],
                                    "datatype": "FP64",
                                    "data": pairs.reshape(-1).tolist(),
                                }
                            ]
                        }
                    ).encode(),
                )
            )
    return made


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its children (the project's traffic log writer),
    all threads (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) or 0.0 for child in child_pids(pid))


def child_pids(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        if parent == pid:
            children.append(int(stat.parent.name))
    return children


def place_log_writer(server_pid: int, cores: set[int]) -> None:
    """Move the server's children (its traffic log writer) to `cores`: see the module docstring."""
    for child in child_pids(server_pid):
        os.sched_setaffinity(child, cores)


def run_h2load(address: str, make: Any, clients: int, seconds: float, warmup: float = 0.0) -> Any:
    """gRPC load from h2load (nghttp2's HTTP/2 load generator, in C) instead of tests/loadgen:
    each client one connection with one call at a time, sending the first request `make` gives
    again and again. A client in C answers each reply at once, where the Python client takes
    its replies one after another: a server whose answers leave in bursts meets its next
    requests in bursts. h2load sees HTTP statuses only, and a gRPC error is a reply without a
    message: a call counts as an error unless every reply carried the message a real gRPC
    client got for the same request. The first `warmup` seconds of calls (by start time) are
    left out of every figure but the errors, as tests/loadgen's `warmup` does; h2load's own
    `--warm-up-time` still logs the warm-up's calls, and counts only some of their replies' bytes.
    """
    from tests.loadgen import GRPC_INFER, LoadResult, run_grpc_load

    request = make(0, 0)
    replies: list[bytes] = []
    probe = run_grpc_load(address, make, clients=1, total=1, check=lambda i, status, body, t: replies.append(body))
    if probe.errors or probe.statuses["OK"] != 1:
        raise RuntimeError(f"gRPC call to {address} failed: {probe.error_samples}")
    with tempfile.TemporaryDirectory() as work:
        body, log = Path(work) / "request", Path(work) / "log"
        body.write_bytes(b"\x00" + len(request).to_bytes(4, "big") + request)  # gRPC's message frame
        report = subprocess.run(
            [
                *("h2load", "--clients", str(clients), "--max-concurrent-streams", "1", "--threads", "1"),
                *("--duration", f"{round((warmup + seconds) * 1000)}ms", "--data", str(body), "--log-file", str(log)),
                *("--header", "content-type: application/grpc", "--header", "te: trailers"),
                f"http://{address}{GRPC_INFER}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        # (start in microseconds since the epoch, HTTP status, microseconds to the reply's end)
        calls = [
            (int(start), status, int(took))
            for start, status, took, *_ in (line.split("\t") for line in log.read_text().splitlines() if line)
        ]
    message_bytes = int(re.search(r"\((\d+)\) data", report).group(1))  # type: ignore[union-attr]
    ok = sum(status == "200" for _, status, _ in calls)
    measure_from = min(start for start, _, _ in calls) + warmup * 1e6
    measured = [(status, took) for start, status, took in calls if start >= measure_from]
    result = LoadResult(
        requests=len(measured), seconds=seconds, latencies=[took / 1e6 for status, took in measured if status == "200"]
    )
    result.errors = len(calls) - ok
    if message_bytes != ok * (5 + len(replies[0])):
        result.errors = max(result.errors, 1)
        result.error_samples.append(f"h2load got {message_bytes} bytes of replies for {ok} calls: some failed")
    return result


def measure_servers(
    urls: dict[str, dict[str, str]],
    pids: dict[str, int],
    protocol: str,
    rows: int,
    clients: int,
    seconds: float,
    rounds: int,
    warmup: float,
    round_warmup: float,
    settle: float,
    grpc_client: str = "loadgen",
) -> dict[str, dict[str, Any]]:
    """Alternate the servers in `rounds` rounds (ABAB...) so that load from other processes on
    the machine falls on both alike; pool each server's requests and latencies over its rounds.
    Each round starts with `round_warmup` seconds of load that is not measured, on the
    connections the round then measures: a server that sat idle while the others ran answers its
    first requests with its code and data evicted from the core's caches (its first request took
    8 ms, not 0.3 ms), and a round's 32 new connections all ask at once. Measured, that burst
    sets the pooled p99 of a server that batches (the first batches are large, and the clients
    answered together keep asking together for a while) and is an artefact of the alternation: a
    server under steady load is not idle every few seconds, nor does it see all its clients
    connect at once. (A warm-up through connections of its own, closed before the measured ones
    opened, left the burst in the measurement.) After each round the project's server gets
    `settle` seconds to finish its background work (the traffic log's flush) before the other
    one is measured; the CPU time it spends on that is counted in its CPU per request, which is
    read from the end of the warm-up."""
    from tests.loadgen import LoadResult, run_grpc_load, run_load

    pool = bodies(protocol, rows)
    make = lambda client, n: pool[n % len(pool)]  # noqa: E731
    load = (run_h2load if grpc_client == "h2load" else run_grpc_load) if protocol == "grpc" else run_load
    target = "grpc" if protocol == "grpc" else "http"
    pooled = {name: LoadResult() for name in urls}
    cpu = {name: 0.0 for name in urls}
    round_p99s: dict[str, list[float]] = {name: [] for name in urls}
    for name, addresses in urls.items():
        load(addresses[target], make, clients=clients, seconds=warmup)
        time.sleep(settle if name == LOGGED else 0)
    for _ in range(rounds):
        for name, addresses in urls.items():
            warm: dict[str, float | None] = {}
            timer = threading.Timer(round_warmup, lambda pid=pids[name]: warm.update(cpu=cpu_seconds(pid)))
            timer.start()
            result = load(addresses[target], make, clients=clients, seconds=seconds / rounds, warmup=round_warmup)
            timer.join()
            time.sleep(settle if name == LOGGED else 0)  # its background work belongs to its round
            cpu_before, cpu_after = warm["cpu"], cpu_seconds(pids[name])
            if cpu_before is not None and cpu_after is not None:
                cpu[name] += cpu_after - cpu_before
            round_p99s[name].append(result.percentile_ms(99))
            total = pooled[name]
            total.requests += result.requests
            total.errors += result.errors
            total.seconds += result.seconds
            total.latencies += result.latencies
            total.error_samples += result.error_samples[:3]
    return {
        name: {
            "requests": r.requests,
            "errors": r.errors,
            "seconds": round(r.seconds, 2),
            "server_cpu_ms_per_request": round(cpu[name] / r.requests * 1000, 3) if r.requests else None,
            "throughput_rps": round(r.throughput, 1),
            "rows_per_s": round(r.throughput * rows, 1),
            "p50_ms": round(r.percentile_ms(50), 2),
            "p99_ms": round(r.percentile_ms(99), 2),
            "round_p99_ms": round(float(np.median(round_p99s[name])), 2),
            "round_p99s_ms": [round(p99, 2) for p99 in round_p99s[name]],
            "error_samples": r.error_samples[:5],
        }
        for name, r in pooled.items()
    }


def measure_floor(predict, rows: int, seconds: float) -> dict[str, Any]:
    """A predictor called in-process back to back: what no server can beat on one core."""
    batch = np.random.default_rng(0).uniform(0, 10_000, size=(rows, 2))
    for _ in range(20):
        predict(batch)
    latencies = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        t = time.perf_counter()
        predict(batch)
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    lat = np.asarray(latencies)
    return {
        "requests": len(lat),
        "errors": 0,
        "seconds": round(elapsed, 2),
        "throughput_rps": round(len(lat) / elapsed, 1),
        "rows_per_s": round(len(lat) * rows / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 3),
        "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=24.0, help="measured time per configuration and server")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds the seconds are split into")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured load before the first round")
    parser.add_argument("--round-warmup", type=float, default=0.5, help="unmeasured load at each round's start")
    parser.add_argument("--settle", type=float, default=2.5, help="pause after each round (traffic log flush)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rows", default="1,100", help="rows per request, comma-separated")
    parser.add_argument("--protocols", default="v1,v2,grpc", help="some of v1,v2,grpc")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the servers to one core and the load generator to the others",
    )
    parser.add_argument(
        "--grpc-client",
        choices=("loadgen", "h2load"),
        default="loadgen",
        help="gRPC load from tests/loadgen (Python) or from h2load (C; Debian's nghttp2-client)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--require-target",
        action="store_true",
        help="exit with 1 when the project's server misses the target (always on request errors)",
    )
    parser.add_argument("--serve-bare", type=int, nargs=2, metavar=("PORT", "GRPC_PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(*args.serve_bare)
        return 0

    from components.deploy.deploy import deploy
    from components.deploy.repository_client import load_version
    from components.serving.tests.conftest import tiny_sum_card
    from components.store.local_store import free_store_port, start_local_store, wait_until_ready
    from components.store.object_store import ObjectStore, StoreConfig, StoreError

    if args.grpc_client == "h2load" and not shutil.which("h2load"):
        parser.error("--grpc-client h2load: h2load is not installed (apt-get install nghttp2-client)")
    row_counts = [int(r) for r in args.rows.split(",")]
    server_cores = pin_servers() if args.pin else None
    protocols = args.protocols.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-model-server-"))
    for attempt in range(3):  # a port of the block may be taken between the check and the start
        # ports below the ephemeral range (32768-) that client connections take, apart from the tests'
        port = free_store_port(16000 + 50 * attempt, 21000)
        config = StoreConfig(f"127.0.0.1:{port}", f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(18))
        store_process = start_local_store(config, work / f"store-{attempt}", work / "weed.log")
        try:
            wait_until_ready(config, timeout=30)
            break
        except StoreError:
            store_process.terminate()
            store_process.wait(timeout=30)
    else:
        raise RuntimeError(f"the benchmark's object store did not start: see {work / 'weed.log'}")
    env = {
        **os.environ,
        "MINIO_ENDPOINT": config.endpoint,
        "MINIO_ACCESS_KEY": config.access_key,
        "MINIO_SECRET_KEY": config.secret_key,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    os.environ.update(env)
    results: list[dict[str, Any]] = []
    processes: list[subprocess.Popen] = []
    try:
        print(f"training a small sum model in {work} ...", flush=True)
        model_dir = train_sum_model(work / "model")

        project = lambda name, port, grpc_port: [  # noqa: E731
            sys.executable,
            "-m",
            "components.serving",
            "--http-port",
            str(port),
            "--grpc-port",
            str(grpc_port),
            "--models",
            "sum",
            "--cache-dir",
            str(work / f"cache-{name}"),
        ]
        commands = {
            LOGGED: lambda port, grpc_port: project(LOGGED, port, grpc_port),
            "unlogged": lambda port, grpc_port: [*project("unlogged", port, grpc_port), "--no-traffic-log"],
            "bare": lambda port, grpc_port: [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-bare",
                str(port),
                str(grpc_port),
            ],
        }
        urls: dict[str, dict[str, str]] = {}
        pids: dict[str, int] = {}
        for name, command in commands.items():
            port, grpc_port = free_port(), free_port()
            urls[name] = {"http": f"http://127.0.0.1:{port}", "grpc": f"127.0.0.1:{grpc_port}"}
            processes.append(
                start_server(command(port, grpc_port), urls[name]["http"], work / f"{name}.log", env, server_cores)
            )
            pids[name] = processes[-1].pid
        if server_cores:
            place_log_writer(pids[LOGGED], os.sched_getaffinity(0))
        version = deploy(ObjectStore(config), model_dir, tiny_sum_card(), "local", urls[LOGGED]["http"])
        load_version(urls["unlogged"]["http"], "sum", version)  # the serving record it follows
        for protocol in protocols:
            for rows in row_counts:
                print(
                    f"  {protocol} {rows:4d} rows/request, {args.clients} clients, {args.seconds:.0f} s per server "
                    f"in {args.rounds} alternating rounds"
                    f"{', load from h2load' if protocol == 'grpc' and args.grpc_client == 'h2load' else ''} ...",
                    flush=True,
                )
                measured = measure_servers(
                    urls,
                    pids,
                    protocol,
                    rows,
                    args.clients,
                    args.seconds,
                    args.rounds,
                    args.warmup,
                    args.round_warmup,
                    args.settle,
                    args.grpc_client,
                )
                for name, row in measured.items():
                    client = args.grpc_client if protocol == "grpc" else "loadgen"
                    head = {"server": name, "protocol": protocol, "rows": rows, "clients": args.clients}
                    results.append({**head, "client": client, **row})
        for process in processes:
            stop(process)
        from components.sum.model import load_predictor

        predict = load_predictor(model_dir)
        for rows in row_counts:
            print(f"  floor    {rows:4d} rows/call, in-process ...", flush=True)
            results.append(
                {
                    "server": "floor",
                    "protocol": "-",
                    "rows": rows,
                    "clients": 1,
                    **measure_floor(predict, rows, min(args.seconds, 5.0)),
                }
            )
    finally:
        for process in processes:
            stop(process)
        store_process.terminate()
        store_process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)  # the store's data and the model: hundreds of MB a run

    print()
    print(
        f"{'server':8s} {'proto':5s} {'rows':>4s} {'clients':>7s} {'req/s':>8s} {'rows/s':>9s} "
        f"{'p50 ms':>7s} {'p99 ms':>7s} {'rnd p99':>7s} {'errors':>6s} {'cpu ms/req':>10s} {'vs bare':>8s} "
        f"{'cpu vs bare':>11s} {'p99 won':>7s}"
    )
    failed = False
    for row in results:
        bare = next(
            (
                r
                for r in results
                if r["server"] == "bare" and r["protocol"] == row["protocol"] and r["rows"] == row["rows"]
            ),
            None,
        )
        ratio = cpu_ratio = won = None
        if bare and row["server"] not in ("bare", "floor"):
            ratio = row["throughput_rps"] / bare["throughput_rps"]
            bare_rounds = bare["round_p99s_ms"]
            won = sum(own <= its for own, its in zip(row["round_p99s_ms"], bare_rounds))
            if row.get("server_cpu_ms_per_request") and bare.get("server_cpu_ms_per_request"):
                cpu_ratio = bare["server_cpu_ms_per_request"] / row["server_cpu_ms_per_request"]
        row["vs_bare"] = round(ratio, 3) if ratio is not None else None
        row["cpu_vs_bare"] = round(cpu_ratio, 3) if cpu_ratio is not None else None
        row["p99_rounds_won"] = won
        if row["server"] == LOGGED and ratio is not None and (ratio < TARGET or row["p99_ms"] > bare["p99_ms"]):
            failed = True
        cpu, rnd = row.get("server_cpu_ms_per_request"), row.get("round_p99_ms")
        print(
            f"{row['server']:8s} {row['protocol']:5s} {row['rows']:4d} {row['clients']:7d} "
            f"{row['throughput_rps']:8.0f} {row['rows_per_s']:9.0f} {row['p50_ms']:7.2f} {row['p99_ms']:7.2f} "
            f"{'' if rnd is None else f'{rnd:7.2f}':>7s} {row['errors']:6d} "
            f"{'' if cpu is None else f'{cpu:10.3f}':>10s} {'' if ratio is None else f'{ratio:7.0%}':>8s} "
            f"{'' if cpu_ratio is None else f'{cpu_ratio:10.0%}':>11s} "
            f"{'' if won is None else f'{won}/{len(bare_rounds)}':>7s}"
        )
    print(
        f"\ntarget: {LOGGED} >= {TARGET:.0%} of bare's throughput and p99 <= bare's at {args.clients} clients: "
        f"{'MISSED' if failed else 'met'}"
    )
    print(
        "cpu ms/req: the server's CPU time (all threads, its traffic log writer's included) per request;\n"
        "'cpu vs bare' is bare's over the project's, the throughput ratio the two would have on equally free\n"
        "cores, steadier than req/s when other processes share the machine. The project's traffic log writer\n"
        "runs beside the store, as KServe's payload logger runs in a sidecar with CPU of its own."
    )
    print(
        "p99 ms: over all rounds' requests (what the target is judged on); rnd p99: the median of the rounds'\n"
        "own p99s, which a round disturbed by another process on the machine does not move; p99 won: in how\n"
        "many rounds the server's p99 was no worse than bare's in the same round (about half when the two are\n"
        "level: one disturbed round can decide the pooled p99, but moves this count by one at most)"
    )
    print("floor: load_predictor(path)(rows) in-process, one call after another")
    if args.json:
        args.json.write_text(json.dumps({"target": TARGET, "cpu_count": os.cpu_count(), "results": results}, indent=2))
        print(f"wrote {args.json}")
    return 1 if (failed and args.require_target) or any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
