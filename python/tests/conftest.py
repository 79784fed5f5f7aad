"""A real quiver server over the quickstart, for the whole test session.

The binary is $QUIVER_BIN, or built from this checkout with Go. Without Go
the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import quiver

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "python-test-token"
FEATURES = ["driver_hourly:conv_rate", "driver_hourly:acc_rate", "driver_hourly:embedding"]


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI=true: the Python integration tests must run)")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def quiver_bin(tmp_path_factory) -> str:
    path = os.environ.get("QUIVER_BIN")
    if path:
        if not os.access(path, os.X_OK):
            _unavailable(f"QUIVER_BIN={path} is not an executable")
        return path
    go = shutil.which("go")
    if go is None:
        _unavailable("go is not installed and QUIVER_BIN is not set: cannot build quiver")
    out = tmp_path_factory.mktemp("bin") / "quiver"
    subprocess.run([go, "build", "-tags", "duckdb_arrow", "-o", str(out), "./cmd/quiver"], cwd=ROOT, check=True)
    return str(out)


def run_cli(quiver_bin: str, repo: Path, *args: str) -> str:
    proc = subprocess.run([quiver_bin, *args], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"quiver {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="session")
def repo(quiver_bin, tmp_path_factory) -> Path:
    """The quickstart scaffolded, applied and materialized, with a saved
    training set in data/sets/train.arrow and the CLI's training set in
    cli.arrow."""
    base = tmp_path_factory.mktemp("quickstart")
    run_cli(quiver_bin, base, "init", "rides")
    repo = base / "rides"
    cfg = repo / "quiver.yaml"
    text = cfg.read_text()
    text, n = re.subn(r"^serve:\n", f"serve:\n  auth_token: {TOKEN}\n", text, flags=re.M)
    assert n == 1, "quiver.yaml of the quickstart has no serve block"
    cfg.write_text(text)
    run_cli(quiver_bin, repo, "apply", "--author", "pytest")
    run_cli(quiver_bin, repo, "materialize", "--incremental")
    run_cli(quiver_bin, repo, "training-set", "--entities", "data/driver_labels.parquet",
            "--features", ",".join(FEATURES), "--out", "cli.arrow")
    run_cli(quiver_bin, repo, "training-set", "--entities", "data/driver_labels.parquet",
            "--features", ",".join(FEATURES), "--out", "data/sets/train.arrow")
    return repo


@pytest.fixture(scope="session")
def server(quiver_bin, repo):
    """`quiver serve` on free loopback ports: (flight location, http URL)."""
    http, fl = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    log = open(repo / "serve.log", "wb")
    proc = subprocess.Popen([quiver_bin, "serve", "--grpc", "off", "--http", http, "--flight", fl],
                            cwd=repo, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"quiver serve exited {proc.returncode}:\n{(repo / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://{http}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"quiver serve not ready in 30s:\n{(repo / 'serve.log').read_text()}")
            time.sleep(0.1)
        yield f"grpc://{fl}", f"http://{http}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def client(server):
    fl, http = server
    with quiver.Client(flight=fl, http=http, token=TOKEN) as c:
        yield c
