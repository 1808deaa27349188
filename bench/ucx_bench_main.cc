// kvbm_bench_ucx: UcxAgent pull bandwidth between two processes vs ucx_perftest ucp_get, same run, for
// each transport given. Usage:
//   kvbm_bench_ucx [--tls UCX_TLS]... [--block-bytes N] [--blocks N] [--batch N] [--total-bytes N] [--json]
// Each --tls is one run with that UCX_TLS value (e.g. --tls tcp --tls sm --tls cma,posix); default tcp and sm.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tools/bench/remote_ucx_bench.h"

// UCX 1.13's transport modules keep a few small allocations until exit (libuct, not kvbm): not leaks of ours.
extern "C" const char* __lsan_default_suppressions() { return "leak:libuct.so\nleak:libucs.so\nleak:libucp.so\n"; }

int main(int argc, char** argv) {
  kvbm::UcxPullBenchOptions base;
  std::vector<std::string> tls_list;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--tls") {
      tls_list.emplace_back(value());
    } else if (arg == "--block-bytes") {
      base.block_bytes = std::strtoull(value(), nullptr, 10);
    } else if (arg == "--blocks") {
      base.blocks = static_cast<std::uint32_t>(std::strtoul(value(), nullptr, 10));
    } else if (arg == "--batch") {
      base.batch = static_cast<std::uint32_t>(std::strtoul(value(), nullptr, 10));
    } else if (arg == "--total-bytes") {
      base.total_bytes = std::strtoull(value(), nullptr, 10);
    } else if (arg == "--perftest") {
      base.perftest = value();
    } else if (arg == "--json") {
      json = true;
    } else {
      std::fprintf(stderr,
                   "usage: kvbm_bench_ucx [--tls UCX_TLS]... [--block-bytes N] [--blocks N] [--batch N] "
                   "[--total-bytes N] [--perftest PATH] [--json]\n");
      return 2;
    }
  }
  if (tls_list.empty()) tls_list = {"tcp", "sm"};
  int rc = 0;
  for (const std::string& tls : tls_list) {
    kvbm::UcxPullBenchOptions o = base;
    o.tls = tls;
    auto r = kvbm::run_ucx_pull_bench(o);
    if (!r.ok()) {
      std::fprintf(stderr, "UCX_TLS=%s: %s\n", o.tls.c_str(), std::string(r.status().message()).c_str());
      rc = 1;
      continue;
    }
    if (json) {
      std::printf("%s\n", kvbm::ucx_pull_bench_json(*r).c_str());
    } else {
      std::printf(
          "UCX_TLS=%-4s block %llu B x %u blocks, batch %u, %s: pull %.3f GB/s (%llu gets, %.3f s, verified), "
          "ucx_perftest ucp_get %.3f GB/s (%llu iters) -> ratio %.3f%s%s\n",
          r->tls.c_str(), static_cast<unsigned long long>(r->block_bytes), r->blocks, r->batch, r->mode.c_str(),
          r->pull_gbps, static_cast<unsigned long long>(r->operations), r->seconds, r->perftest_gbps,
          static_cast<unsigned long long>(r->perftest_iters), r->ratio,
          r->perftest_error.empty() ? "" : "; perftest: ", r->perftest_error.c_str());
    }
  }
  return rc;
}
