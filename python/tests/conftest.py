"""A real quiver server over the quickstart, for the whole test session.

The binary is $QUIVER_BIN, or built from this checkout with Go. Without Go
the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import ssl
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


def scaffold(quiver_bin: str, base: Path, serve_yaml: str) -> Path:
    """The quickstart in base/rides with serve_yaml (indented keys) added
    to its serve block, applied and materialized."""
    run_cli(quiver_bin, base, "init", "rides")
    repo = base / "rides"
    cfg = repo / "quiver.yaml"
    text, n = re.subn(r"^serve:\n", "serve:\n" + serve_yaml, cfg.read_text(), flags=re.M)
    assert n == 1, "quiver.yaml of the quickstart has no serve block"
    cfg.write_text(text)
    run_cli(quiver_bin, repo, "apply", "--author", "pytest")
    run_cli(quiver_bin, repo, "materialize", "--incremental")
    return repo


@contextlib.contextmanager
def serving(quiver_bin: str, repo: Path, scheme: str = "http", context: ssl.SSLContext | None = None):
    """`quiver serve` in repo on free loopback ports until the block ends:
    yields (flight address, http address) as host:port."""
    http, fl = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    log_path = repo / f"serve-{fl.rsplit(':', 1)[1]}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([quiver_bin, "serve", "--grpc", "off", "--http", http, "--flight", fl],
                            cwd=repo, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"quiver serve exited {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{scheme}://{http}/readyz", timeout=1, context=context) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"quiver serve not ready in 30s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield fl, http
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def repo(quiver_bin, tmp_path_factory) -> Path:
    """The quickstart with a token, applied and materialized, with a saved
    training set in data/sets/train.arrow and the CLI's training set in
    cli.arrow."""
    repo = scaffold(quiver_bin, tmp_path_factory.mktemp("quickstart"), f"  auth_token: {TOKEN}\n")
    run_cli(quiver_bin, repo, "training-set", "--entities", "data/driver_labels.parquet",
            "--features", ",".join(FEATURES), "--out", "cli.arrow")
    run_cli(quiver_bin, repo, "training-set", "--entities", "data/driver_labels.parquet",
            "--features", ",".join(FEATURES), "--out", "data/sets/train.arrow")
    return repo


@pytest.fixture(scope="session")
def server(quiver_bin, repo):
    """`quiver serve` over repo: (flight location, http URL)."""
    with serving(quiver_bin, repo) as (fl, http):
        yield f"grpc://{fl}", f"http://{http}"


@pytest.fixture(scope="session")
def tls_server(quiver_bin, tmp_path_factory):
    """`quiver serve` over TLS with a self-signed certificate for
    127.0.0.1, in a quickstart of its own: (flight location, http URL,
    certificate PEM path)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        _unavailable("openssl is not installed: cannot make a test certificate")
    base = tmp_path_factory.mktemp("tls")
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    repo = scaffold(quiver_bin, base, f"  tls: {{cert_file: {cert}, key_file: {key}}}\n")
    context = ssl.create_default_context(cafile=str(cert))
    with serving(quiver_bin, repo, "https", context) as (fl, http):
        yield f"grpc+tls://{fl}", f"https://{http}", cert
@pytest.fixture(scope="session")
def client(server):
    fl, http = server
    with quiver.Client(flight=fl, http=http, token=TOKEN) as c:
        yield c
