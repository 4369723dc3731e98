"""Load benchmark: a course-style baseline service against `labline serve`, same model, same
load generator, same run.

The baseline is written the way the course does it: a pydantic body, `pd.DataFrame([...])`,
`pipeline.predict`, no logging. labline serves the same artifact with its request log on
(every answer committed before it is sent). Both run in their own uvicorn process on loopback;
a small keep-alive HTTP/1.1 client drives them at concurrency 1, 16 and 64 in alternating
slices (so a change in the shared machine's load hits both alike), then sends 10,000-record batches
from one client and from four, also in alternating slices.

    python benchmarks/serve_load.py [--model-dir DIR] [--seconds 4] [--batch-rows 10000]

Prints both, their ratios, and writes benchmarks/results/serve_load.json.
"""

# No `from __future__ import annotations`: FastAPI reads the baseline's body types from annotations.

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve_load.json"
CONCURRENCY = (1, 16, 64)
BATCH_CONCURRENCY = (1, 4)  # one client waiting for each answer; several keeping the service busy


def baseline_app(model_dir: str):
    """The service as the course writes it."""
    import pandas as pd
    from fastapi import FastAPI
    from pydantic import BaseModel

    from labline.models.artifact import load_model

    pipeline = load_model(model_dir)._model  # the same fitted scikit-learn Pipeline labline serves

    class Flower(BaseModel):
        sepal_length: float
        sepal_width: float
        petal_length: float
        petal_width: float

    class Flowers(BaseModel):
        records: list[Flower]

    app = FastAPI()

    @app.post("/predict")
    def predict(flower: Flower):
        frame = pd.DataFrame([flower.model_dump()])
        return {"prediction": str(pipeline.predict(frame)[0])}

    @app.post("/predict/batch")
    def predict_batch(flowers: Flowers):
        frame = pd.DataFrame([f.model_dump() for f in flowers.records])
        return {"predictions": [str(p) for p in pipeline.predict(frame)]}

    @app.get("/ready")
    def ready():
        return {"status": "ready"}

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{command} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in sock.recv(200):
                    return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{command} did not become ready")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


def _request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def drive(port: int, concurrency: int, seconds: float, bodies: list[bytes]) -> dict:
    """Closed-loop load: `concurrency` keep-alive connections, each sending as fast as answered."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = n
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(_request("/predict", bodies[i % len(bodies)]))
            status, _ = await _read_response(reader)
            latencies.append(time.perf_counter() - start)
            errors += status != 200
            i += concurrency
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
    }


async def drive_batches(port: int, body: bytes, rows: int, seconds: float, concurrency: int = 1) -> dict:
    """`concurrency` keep-alive connections, each sending the batch again as soon as it is answered."""
    stop_at = time.perf_counter() + seconds

    async def worker() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        batches = 0
        while time.perf_counter() < stop_at or batches < 2:
            writer.write(_request("/predict/batch", body))
            status, answer = await _read_response(reader)
            if status != 200:
                raise RuntimeError(f"port {port}: batch answered {status}: {answer[:300]!r}")
            batches += 1
        writer.close()
        return batches

    began = time.perf_counter()
    batches = sum(await asyncio.gather(*(worker() for _ in range(concurrency))))
    elapsed = time.perf_counter() - began
    return {"batches": batches, "rows_per_batch": rows, "rows_per_s": batches * rows / elapsed, "seconds": elapsed}


def merge(runs: list[dict]) -> dict:
    """Combine alternating rounds of one service at one level."""
    total = sum(r["requests"] for r in runs)
    seconds = sum(r["requests"] / r["requests_per_s"] for r in runs if r["requests_per_s"])
    return {
        "requests": total,
        "errors": sum(r["errors"] for r in runs),
        "requests_per_s": total / seconds if seconds else 0.0,
        "p50_ms": sorted(r["p50_ms"] for r in runs)[len(runs) // 2],  # median of rounds
        "p99_ms": max(r["p99_ms"] for r in runs),
    }


def measure(ports: dict[str, int], seconds: float, records: list[dict], batch_rows: int, rounds: int) -> dict:
    """Each level runs in `rounds` alternating slices (baseline, labline, baseline, ...), so a
    change in the machine's load during the run affects both services alike."""
    bodies = [json.dumps(r).encode() for r in records]
    for port in ports.values():
        asyncio.run(drive(port, 4, 1.0, bodies))  # warm-up
    results: dict = {name: {} for name in ports}
    for c in CONCURRENCY:
        runs: dict[str, list] = {name: [] for name in ports}
        for _ in range(rounds):
            for name, port in ports.items():
                runs[name].append(asyncio.run(drive(port, c, seconds / rounds, bodies)))
        for name in ports:
            results[name][f"c{c}"] = merge(runs[name])
    batch = json.dumps({"records": [records[i % len(records)] for i in range(batch_rows)]}).encode()
    for c in BATCH_CONCURRENCY:
        runs = {name: [] for name in ports}
        for _ in range(rounds):
            for name, port in ports.items():
                runs[name].append(asyncio.run(drive_batches(port, batch, batch_rows, seconds / rounds, c)))
        for name in ports:
            batches, elapsed = sum(r["batches"] for r in runs[name]), sum(r["seconds"] for r in runs[name])
            results[name][f"batch_c{c}"] = {
                "batches": batches,
                "rows_per_batch": batch_rows,
                "rows_per_s": batches * batch_rows / elapsed,
            }
    return results


def default_model_dir() -> str:
    runs = sorted((ROOT / "runs").glob("*/train_sklearn/artifacts/model/manifest.json"))
    if not runs:
        sys.exit("no trained model found: run `labline run` first or pass --model-dir")
    return str(runs[-1].parent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--seconds", type=float, default=4.0, help="per concurrency level")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4, help="alternating slices per level")
    parser.add_argument("--synchronous", default="NORMAL", choices=["NORMAL", "FULL"])
    parser.add_argument("--serve-baseline", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    if args.serve_baseline:
        import uvicorn

        uvicorn.run(baseline_app(model_dir), host="127.0.0.1", port=args.serve_baseline, log_level="warning")
        return 0

    from sklearn.datasets import load_iris

    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    records = [dict(zip(names, map(float, row))) for row in load_iris().data]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "requests.db"
        services = {
            "baseline": [sys.executable, __file__, "--model-dir", model_dir, "--serve-baseline"],
            "labline": [
                sys.executable,
                "-m",
                "labline.cli",
                "serve",
                "--model-dir",
                model_dir,
                "--log",
                str(log),
                "--synchronous",
                args.synchronous,
                "--port",
            ],
        }
        ports = {name: free_port() for name in services}
        procs = {}
        try:
            for name, command in services.items():
                procs[name] = start([*command, str(ports[name])], ports[name])
            results = measure(ports, args.seconds, records, args.batch_rows, args.rounds)
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=30)
        for name in services:
            print(
                f"{name}: "
                + ", ".join(
                    f"{k} {v['requests_per_s']:.0f} req/s p50 {v['p50_ms']:.2f} ms p99 {v['p99_ms']:.2f} ms"
                    for k, v in results[name].items()
                    if not k.startswith("batch")
                )
                + "".join(
                    f"; batch at concurrency {c} {results[name][f'batch_c{c}']['rows_per_s']:.0f} rows/s"
                    for c in BATCH_CONCURRENCY
                )
            )
        from labline.serve.request_log import count_requests

        logged = count_requests(log)
    answered = sum(results["labline"][f"c{c}"]["requests"] for c in CONCURRENCY) + sum(
        results["labline"][f"batch_c{c}"]["batches"] * args.batch_rows for c in BATCH_CONCURRENCY
    )
    ratios = {}
    for c in CONCURRENCY:
        base, ours = results["baseline"][f"c{c}"], results["labline"][f"c{c}"]
        ratios[f"c{c}"] = {
            "throughput_labline_over_baseline": ours["requests_per_s"] / base["requests_per_s"],
            "p99_labline_over_baseline": ours["p99_ms"] / base["p99_ms"],
        }
    for c in BATCH_CONCURRENCY:
        ratios[f"batch_c{c}_rows_per_s_labline_over_baseline"] = (
            results["labline"][f"batch_c{c}"]["rows_per_s"] / results["baseline"][f"batch_c{c}"]["rows_per_s"]
        )
    for key, value in ratios.items():
        print(f"ratio {key}: {value if isinstance(value, dict) else round(value, 2)}")
    report = {
        "model_dir": model_dir,
        "seconds_per_level": args.seconds,
        "rounds": args.rounds,
        "request_log_synchronous": args.synchronous,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "results": results,
        "ratios": ratios,
        "labline_log_rows": logged,
        "labline_answers_counted_by_client": answered,  # warm-up requests are logged too
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
