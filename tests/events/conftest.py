"""pytest options for the event wire-format tests."""

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--fixture", action="store", default=os.environ.get("KVBM_ZMQ_FIXTURE"),
                     help="path to the kvbm_zmq_fixture executable (or set KVBM_ZMQ_FIXTURE)")
    try:  # tests/tools/conftest.py defines it too when both folders are collected together
        parser.addoption("--kvbm", action="store", default=os.environ.get("KVBM_BIN"),
                         help="path to the kvbm executable (or set KVBM_BIN)")
    except ValueError:
        pass


def _executable(request, option):
    path = request.config.getoption(option)
    if not path:
        pytest.fail(f"pass {option}=/path (or set the environment variable)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{option}={path} is not an executable file")
    return path


@pytest.fixture(scope="session")
def fixture_bin(request):
    return _executable(request, "--fixture")


@pytest.fixture(scope="session")
def kvbm_cli(request):
    return _executable(request, "--kvbm")
