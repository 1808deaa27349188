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
