#!/usr/bin/env bash
# Installs every Debian package kvbm needs to build, test and run.
#
# Target: Debian 12 (bookworm), run as root (or as a user with sudo).
# Idempotent: packages already installed are detected with dpkg-query first; when nothing is
# missing the script runs neither `apt-get update` nor `apt-get install`, so a second run is fast.
set -euo pipefail

# The one list of packages. Every name was checked against bookworm with `apt-cache policy`.
PACKAGES=(
  # Toolchain: clang is the project compiler (-Wthread-safety, sanitizers); gcc comes with
  # build-essential. libclang-rt-14-dev carries the ASan/UBSan/TSan runtimes for clang 14.
  build-essential cmake ninja-build clang libclang-rt-14-dev
  # Compiler cache (scripts/build.sh makes it CMake's launcher): rebuilds of a fresh clone recompile only
  # what changed.
  ccache
  # Formatting and lint (.clang-format, .clang-tidy, scripts/format.sh).
  clang-format clang-tidy
  git pkg-config
  # Libraries: Status/StatusOr + thread-safety annotations, hashing (XXH3), tests, benchmarks.
  libabsl-dev libxxhash-dev libgtest-dev libgmock-dev libbenchmark-dev
  # CLI parsing, TOML config, JSON traces (Mooncake JSONL), disk tier, logging.
  libcli11-dev libtomlplusplus-dev libsimdjson-dev liburing-dev libspdlog-dev libfmt-dev
  # Events: ZMQ PUB/ROUTER in vLLM's msgpack wire format.
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  # Events for Dynamo-style deployments: the NATS C client, and the server its tests start.
  libnats-dev nats-server
  # G4 remote tier (issue 7/8): Redis through hiredis, and the redis-server its tests start; UCX for
  # peer-to-peer block transfer, with ucx_perftest (ucx-utils) as the benchmark baseline; redis-tools
  # carries redis-benchmark, the G4 benchmark baseline.
  libhiredis-dev redis-server redis-tools libucx-dev ucx-utils
  # Prometheus metrics endpoint (issue 8/8); the Python client's parser checks the scrape independently.
  libcpp-httplib-dev python3-prometheus-client
  # Python bindings (pybind11 module built by CMake).
  pybind11-dev
  # Python: bindings and tests that check hashes/events independently of the C++ code.
  python3 python3-dev python3-pytest python3-numpy python3-xxhash python3-zmq python3-msgpack
  # mypy checks python/examples against the installed, typed package (tests/install/test_install.py).
  python3-mypy
  # The Python bindings' DLPack test (torch.from_dlpack on kvbm block memory).
  python3-torch
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install_deps: not root and sudo is not available; missing: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install_deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
echo "install_deps: done"
