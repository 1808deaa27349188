#!/usr/bin/env bash
# THE main-job command: installs deps, builds Release, runs kvbm's main job on its built-in
# default workload. Extra arguments are passed through to the kvbm command.
#
#   bash scripts/run.sh              # build/bin/kvbm replay (generated workload, G1+G2+G3, real bytes)
#   bash scripts/run.sh --help       # build/bin/kvbm replay --help
#   bash scripts/run.sh --trace FILE --no-data --g1-blocks 16000   # a Mooncake trace, metadata only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install_deps.sh
bash scripts/build.sh release

# The main job: replay a request trace through kvbm's tiers (default: the built-in generated workload).
exec build/bin/kvbm replay "$@"
