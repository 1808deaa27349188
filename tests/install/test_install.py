"""The installed package (issue 25): `cmake --install` of this build into a fresh prefix, then

- test_cxx_*: examples/quick_start.cc built outside the tree against that prefix only, with
  find_package(kvbm CONFIG REQUIRED) + kvbm::kvbm and with `pkg-config kvbm`, and run;
- test_python_*: the Python package installed into a virtual environment and into a plain prefix, imported
  from there, and mypy (PEP 561: py.typed) run on python/examples/*.py against it.

Run by ctest (install_package_test: -k cxx, in every build; install_python_package_test: -k python, where the
module is built), which sets KVBM_BUILD_DIR, KVBM_CXX, KVBM_CXX_LAUNCHER, KVBM_SAN_FLAGS and KVBM_WITH_CUDA.
Work goes to <build>/install-test/, recreated by each test: the same paths on every run let ccache reuse the
consumer's objects.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
QUICK_START = REPO / "examples" / "quick_start.cc"
QUICK_START_OUTPUT = "request 1: 6 of 6 blocks reused"
BUILD = pathlib.Path(os.environ.get("KVBM_BUILD_DIR", REPO / "build"))
WORK = BUILD / "install-test"
CXX = os.environ.get("KVBM_CXX", "c++")
LAUNCHER = os.environ.get("KVBM_CXX_LAUNCHER", "")
SAN_FLAGS = os.environ.get("KVBM_SAN_FLAGS", "").split()
WITH_CUDA = os.environ.get("KVBM_WITH_CUDA", "OFF").upper() in ("ON", "1", "TRUE", "YES")
PYTHON_LIB = f"lib/python{sys.version_info.major}.{sys.version_info.minor}"


def run(cmd, **kwargs):
    """Runs cmd; on failure, fails the test with its output."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} -> rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def install(prefix):
    run(["cmake", "--install", BUILD, "--prefix", prefix])
    return prefix


def env_without_pythonpath():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def cxx_prefix():
    return install(fresh(WORK / "cxx") / "prefix")


def test_cxx_find_package_builds_and_runs_quick_start(cxx_prefix):
    build = WORK / "cxx" / "consumer"
    configure = ["cmake", "-S", REPO / "tests" / "install" / "consumer", "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                 f"-DCMAKE_PREFIX_PATH={cxx_prefix}", f"-DCMAKE_CXX_COMPILER={CXX}"]
    if LAUNCHER:
        configure.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={LAUNCHER}")
    if SAN_FLAGS:  # the libraries are instrumented: so must be the program that links them
        configure += [f"-DCMAKE_CXX_FLAGS={' '.join(SAN_FLAGS)}", f"-DCMAKE_EXE_LINKER_FLAGS={' '.join(SAN_FLAGS)}"]
    out = run(configure)
    # Found in the prefix (not in this tree), and it says whether kvbm was built with CUDA.
    assert f"from {cxx_prefix}/" in out, out
    assert f"kvbm_WITH_CUDA={'ON' if WITH_CUDA else 'OFF'}" in out, out
    run(["cmake", "--build", build, "-j2"])
    assert QUICK_START_OUTPUT in run([build / "app"])  # kvbm::kvbm
    assert QUICK_START_OUTPUT in run([build / "app_manager"])  # kvbm::manager


def test_cxx_pkg_config_builds_and_runs_quick_start(cxx_prefix):
    (pc,) = cxx_prefix.rglob("kvbm.pc")
    env = dict(os.environ, PKG_CONFIG_PATH=str(pc.parent))
    assert run(["pkg-config", "--variable=with_cuda", "kvbm"], env=env).strip() == ("1" if WITH_CUDA else "0")
    flags = run(["pkg-config", "--cflags", "--libs", "kvbm"], env=env).split()
    includes = {pathlib.Path(f[2:]).resolve() for f in flags if f.startswith("-I")}
    assert cxx_prefix / "include" in includes, flags  # relocatable: found from the .pc file's own folder
    app = WORK / "cxx" / "app_pkg_config"
    run([*LAUNCHER.split(), CXX, "-std=c++20", "-O1", *SAN_FLAGS, QUICK_START, "-o", app, *flags])
    assert QUICK_START_OUTPUT in run([app])


def test_cxx_find_package_names_a_missing_dependency(cxx_prefix):
    """Without pkg-config's modules, configuring a user's project fails in one line that names the module."""
    build = WORK / "cxx" / "consumer_no_deps"
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(fresh(WORK / "cxx" / "empty")), PKG_CONFIG_PATH="")
    proc = subprocess.run(["cmake", "-S", REPO / "tests" / "install" / "consumer", "-B", build,
                           f"-DCMAKE_PREFIX_PATH={cxx_prefix}", f"-DCMAKE_CXX_COMPILER={CXX}"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "kvbm needs the pkg-config module liburing, not found" in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def venv():
    """A virtual environment (with the system's numpy) that kvbm is installed into."""
    venv = fresh(WORK / "python") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv])
    return install(venv)


def test_python_venv_imports_the_installed_package(venv):
    site = venv / PYTHON_LIB / "site-packages"
    for name in ("__init__.py", "__init__.pyi", "py.typed"):
        assert (site / "kvbm" / name).is_file(), name
    out = run([venv / "bin" / "python", "-c",
               "import importlib.metadata as md, kvbm; "
               "print(kvbm.__origin__, kvbm.__file__, md.packages_distributions()['kvbm'], md.version('kvbm-cpp'))"],
              cwd=WORK, env=env_without_pythonpath())
    assert out.split() == ["kvbm-cpp", str(site / "kvbm" / "__init__.py"), "['kvbm-cpp']", "0.1.0"], out


def test_python_plain_prefix_gets_the_interpreters_site_folder():
    """Outside a venv the package goes where /usr/bin/python3 reads under a prefix (Debian: dist-packages)."""
    prefix = install(fresh(WORK / "python_plain") / "prefix")
    leaf = "dist-packages" if "dist-packages" in "".join(sys.path) else "site-packages"
    site = prefix / PYTHON_LIB / leaf
    out = run([sys.executable, "-c", "import kvbm; print(kvbm.__file__)"], cwd=WORK,
              env=dict(env_without_pythonpath(), PYTHONPATH=str(site)))
    assert out.strip() == str(site / "kvbm" / "__init__.py")


def mypy(venv, *files):
    return subprocess.run([sys.executable, "-m", "mypy", "--python-executable", venv / "bin" / "python",
                           "--cache-dir", WORK / "mypy-cache", *files],
                          capture_output=True, text=True, cwd=WORK, env=env_without_pythonpath())


def test_python_mypy_checks_the_examples_against_the_installed_package(venv):
    examples = sorted((REPO / "python" / "examples").glob("*.py"))
    assert examples
    proc = mypy(venv, *examples)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Success: no issues found in {len(examples)} source file" in proc.stdout


def test_python_mypy_uses_the_stubs(venv, tmp_path):
    """The installed stubs type the API: a wrong argument is an error, not Any."""
    bad = tmp_path / "misuse.py"
    bad.write_text("import kvbm\n"
                   "m = kvbm.KvBlockManager({})\n"
                   "m.allocate('3')\n"
                   "origin: int = kvbm.__origin__\n")
    proc = mypy(venv, bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'Argument 1 to "allocate" of "KvBlockManager" has incompatible type "str"' in proc.stdout, proc.stdout
    assert 'Incompatible types in assignment (expression has type "Literal[\'kvbm-cpp\']"' in proc.stdout, proc.stdout
