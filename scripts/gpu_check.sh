#!/usr/bin/env bash
# Builds kvbm (Release, CUDA on) on a machine with a GPU, runs the CUDA tests and the GPU benchmark.
#
#   scripts/gpu_check.sh            output to stdout, and to $OUT/gpu_check.txt when $OUT is set
#
# Benchmark targets (issue 2/8): host <-> device >= 0.85x one large pinned cudaMemcpy; the
# LayerSeparate gather/scatter kernel >= 5x one cudaMemcpyAsync per region.
# Also the Python device-memory tests (tests/python/test_device_memory.py: torch.from_dlpack on a device G1
# block), when the Python module builds and PyTorch with CUDA is installed (they skip otherwise).
# Exit status: non-zero when the build, cuda_path_test or the Python device tests fail (benchmark figures are
# not asserted).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

[[ -d /usr/local/cuda/bin ]] && export PATH="/usr/local/cuda/bin:$PATH"
jobs=$(nproc)
build="${KVBM_GPU_BUILD_DIR:-build-gpu}"

main() {

  echo "==== machine"
  nvidia-smi -L 2>&1 || echo "nvidia-smi not available"
  nvcc --version 2>&1 | tail -1 || echo "nvcc not found"

  # Packages: install only when something the build needs is missing (the box may be offline).
  need_deps=0
  for tool in cmake ninja; do command -v "$tool" >/dev/null || need_deps=1; done
  for pkg in libabsl-dev libgtest-dev libgmock-dev liburing-dev libcli11-dev libtomlplusplus-dev libxxhash-dev; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" == "installed" ]] || need_deps=1
  done
  if [[ $need_deps -eq 1 ]]; then
    echo "==== installing missing packages (scripts/install_deps.sh)"
    scripts/install_deps.sh || { echo "gpu_check: install_deps.sh failed"; exit 1; }
  fi

  if command -v clang++ >/dev/null; then
    compilers=(-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang)
  else
    compilers=(-DCMAKE_CXX_COMPILER=g++ -DCMAKE_C_COMPILER=gcc -DKVBM_WERROR=OFF)
  fi

  echo "==== configure + build ($build, Release, CUDA)"
  start=$(date +%s)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVBM_WITH_CUDA=ON -DKVBM_BUILD_BENCH=OFF \
    "${compilers[@]}" || { echo "gpu_check: configure failed"; exit 1; }
  cmake --build "$build" -j "$jobs" --target cuda_path_test kvbm_bench_gpu || { echo "gpu_check: build failed"; exit 1; }
  python_rc=0
  if cmake --build "$build" -j "$jobs" --target kvbm_python; then have_module=1; else have_module=0; fi
  echo "build: $(( $(date +%s) - start )) s"

  echo "==== cuda_path_test"
  "$build/bin/cuda_path_test" --gtest_brief=1
  test_rc=$?
  echo "cuda_path_test exit status: $test_rc"

  echo "==== Python device memory (tests/python/test_device_memory.py)"
  if [[ $have_module -eq 1 ]]; then
    PYTHONPATH="$build/python" /usr/bin/python3 -m pytest -q -rs tests/python/test_device_memory.py
    python_rc=$?
    echo "test_device_memory exit status: $python_rc"
  else
    echo "the Python module (kvbm_python) did not build here: skipped"
  fi

  echo "==== kvbm_bench_gpu"
  "$build/bin/kvbm_bench_gpu" --total-mib "${KVBM_GPU_BENCH_MIB:-512}" --iters "${KVBM_GPU_BENCH_ITERS:-5}"
  bench_rc=$?
  echo "kvbm_bench_gpu exit status: $bench_rc"

  [[ $test_rc -eq 0 && $python_rc -eq 0 && $bench_rc -eq 0 ]]
}

if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  main 2>&1 | tee "$OUT/gpu_check.txt"
  exit "${PIPESTATUS[0]}"
fi
main
