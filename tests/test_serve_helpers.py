"""Shared pieces for the service tests: a real registry holding the Iris run's two models, Iris
records as clients send them, and a real `labline serve` process on a free loopback port."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
LABELS = ["setosa", "versicolor", "virginica"]


def iris_records() -> tuple[list[dict], list[str]]:
    """The 150 Iris flowers as request bodies, and their true species."""
    raw = load_iris()
    records = [dict(zip(FEATURES, map(float, row))) for row in raw.data]
    return records, [LABELS[i] for i in raw.target]


def make_registry(manifest: dict, folder: Path) -> tuple[str, dict[str, int]]:
    """A fresh SQLite registry with the run registered; champion = scikit-learn, challenger = torch."""
    from labline.registry import Registry

    url = f"sqlite:///{folder / 'registry.db'}"
    registry = Registry(url=url)
    versions = {v.step: v.version for v in registry.register_run(copy.deepcopy(manifest))}
    registry.set_alias("champion", versions["train_sklearn"])
    registry.set_alias("challenger", versions["train_torch"])
    return url, versions


@pytest.fixture(scope="session")
def served_registry(iris_run, tmp_path_factory):
    """(url, {step: version}) of a registry shared by tests that do not move aliases."""
    return make_registry(iris_run.manifest, tmp_path_factory.mktemp("serve-registry"))


def copy_registry(served_registry, folder: Path) -> tuple[str, dict[str, int]]:
    """A private copy of the shared registry, for a test that moves aliases."""
    import sqlite3

    url, versions = served_registry
    target = folder / "registry-copy.db"
    source, copy = sqlite3.connect(url[len("sqlite:///"):]), sqlite3.connect(target)
    source.backup(copy)  # consistent even with a write-ahead log beside the file
    source.close()
    copy.close()
    return f"sqlite:///{target}", versions


def model_dir(iris_run, step: str = "train_sklearn") -> Path:
    return Path(iris_run.manifest["steps"][step]["scraps"]["model_dir"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`labline serve ...` in its own process, on 127.0.0.1, stopped by the test."""

    def __init__(self, args: list[str], env: dict | None = None, timeout: float = 90):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "labline.cli", "serve", "--port", str(self.port), *args],
            cwd=root, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"labline serve exited with {self.proc.returncode}: {self.proc.stdout.read().decode()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("labline serve did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing."""
        self.proc.kill()
        self.proc.wait()


def answers_log(path) -> dict[str, dict]:
    """Logged answers by request id (shadow rows left out)."""
    from labline.serve.request_log import read_requests

    return {row["request_id"]: row for row in read_requests(path).to_dict(orient="records")}


def dump(obj) -> str:
    return json.dumps(obj, sort_keys=True)
