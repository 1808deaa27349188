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

cmake --preset "$preset"
cmake --build --preset "$preset" -j "$(nproc)" "$@"
