"""pytest options shared by every Python test of kvbm: where the built executables are."""

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--kvbm", action="store", default=os.environ.get("KVBM_BIN"),
                     help="path to the kvbm executable (or set KVBM_BIN)")
    parser.addoption("--fixture", action="store", default=os.environ.get("KVBM_ZMQ_FIXTURE"),
                     help="path to the kvbm_zmq_fixture executable (or set KVBM_ZMQ_FIXTURE)")


def _executable(request, option):
    path = request.config.getoption(option)
    if not path:
        pytest.fail(f"pass {option}=/path (or set the environment variable)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{option}={path} is not an executable file")
    return path


@pytest.fixture(scope="session")
def kvbm_bin(request):
    return _executable(request, "--kvbm")


@pytest.fixture(scope="session")
def kvbm_cli(request):
    return _executable(request, "--kvbm")


@pytest.fixture(scope="session")
def fixture_bin(request):
    return _executable(request, "--fixture")


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server (G4) on a free 127.0.0.1 port, answering PING: yields (port, Popen). Killed after
    the test, continued first for a test that stopped it with SIGSTOP."""
    import shutil
    import signal
    import socket
    import subprocess
    import time
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):  # until it answers PING (a start-up wait, not an assertion)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            time.sleep(0.01)
        yield port, proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()
