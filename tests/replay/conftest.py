"""pytest options for the kvbm replay tests."""

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--kvbm", action="store", default=os.environ.get("KVBM_BIN"),
                     help="path to the kvbm executable (or set KVBM_BIN)")


@pytest.fixture(scope="session")
def kvbm_bin(request):
    path = request.config.getoption("--kvbm")
    if not path:
        pytest.fail("pass --kvbm=/path/to/kvbm (or set KVBM_BIN)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"--kvbm={path} is not an executable file")
    return path
