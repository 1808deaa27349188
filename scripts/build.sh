#!/usr/bin/env bash
# Configures and builds one preset of CMakePresets.json with clang + Ninja.
#
#   scripts/build.sh [release|debug|asan|tsan] [extra args for `cmake --build`...]
#
# Presets and their build directories:
#   release  build/        Release, the CLI lands at build/bin/kvbm
#   debug    build-debug/  Debug (debug-only checks on)
#   asan     build-asan/   -DKVBM_SANITIZE=asan (ASan + UBSan), -O1 -g
#   tsan     build-tsan/   -DKVBM_SANITIZE=tsan (ThreadSanitizer), -O1 -g
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

preset="${1:-release}"
shift || true
case "$preset" in
  release | debug | asan | tsan) ;;
  *)
    echo "usage: scripts/build.sh [release|debug|asan|tsan]" >&2
    exit 2
    ;;
esac

# ccache as the compiler launcher, with paths relative to the checkout: a fresh clone in another folder of
# the same machine reuses the objects of an earlier build and recompiles only what changed.
launcher=()
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR="$PWD"
  export CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

cmake --preset "$preset" "${launcher[@]}"
cmake --build --preset "$preset" -j "$(nproc)" "$@"
