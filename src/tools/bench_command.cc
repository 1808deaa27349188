// `kvbm bench ...`: benchmark programs that print figures beside issue 2's targets and the machine they
// ran on. `bench` is a group; each benchmark is a sub-subcommand (`pool` now, `tiers` etc. later).
// Figures are printed, never asserted: the exit code is non-zero only when a workload fails outright.
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/core/size.h"
#include "pool_workloads.h"
#include "tiers_bench.h"
#include "tools/commands.h"

namespace kvbm::tools {
namespace {

struct PoolBenchOptions {
  double seconds = 0.3;
  bool json = false;
};

struct Row {
  const bench::WorkloadInfo* info;
  bench::Measurement m;
  std::string summary;
};

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, absl::StrFormat("\\u%04x", static_cast<unsigned char>(c)));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

const Row* find_row(const std::vector<Row>& rows, bench::WorkloadKind kind) {
  for (const Row& r : rows) {
    if (r.info->kind == kind) return &r;
  }
  return nullptr;
}

bool is_hashing(bench::WorkloadKind kind) {
  return kind == bench::WorkloadKind::kHashSequence || kind == bench::WorkloadKind::kHashXxh3OneCall ||
         kind == bench::WorkloadKind::kHashXxh3PerBlock || kind == bench::WorkloadKind::kHashXxh3Chained;
}

constexpr double kHashTargetRatio = 0.8;
// Issue 3/8: pool operations with the ZMQ publisher attached cost at most this much more than without.
constexpr double kEventsTargetRatio = 1.2;

void print_table(const PoolBenchOptions& options, const std::vector<Row>& rows) {
  std::printf("kvbm bench pool: one thread, %.2f s per workload, page size 16\n", options.seconds);
  std::printf("machine: %s\n\n", bench::machine_description().c_str());
  std::printf("%-32s %10s %8s %10s  %s\n", "workload", "ns/block", "target", "vLLM ref", "release path");
  for (const Row& r : rows) {
    if (is_hashing(r.info->kind)) continue;
    std::string target = "-";
    std::string verdict;
    if (r.info->target_ns_per_block) {
      target = absl::StrFormat("<= %.0f", *r.info->target_ns_per_block);
      verdict = r.m.ns_per_block <= *r.info->target_ns_per_block ? "" : "  (MISSES TARGET)";
    }
    const std::string vllm = r.info->vllm_ref.empty() ? "-" : std::string(r.info->vllm_ref);
    std::printf("%-32s %10.1f %8s %10s  %s%s\n", std::string(r.info->name).c_str(), r.m.ns_per_block, target.c_str(),
                vllm.c_str(), std::string(r.info->release_path).c_str(), verdict.c_str());
  }
  if (const Row* cycle = find_row(rows, bench::WorkloadKind::kRequestCycle); cycle && !cycle->summary.empty()) {
    std::printf("  request cycle: %s\n", cycle->summary.c_str());
  }
  std::printf("  match miss: match stops at the first unregistered hash; one call per 16 hashes\n");
  const Row* cycle_plain = find_row(rows, bench::WorkloadKind::kRequestCycle);
  const Row* cycle_zmq = find_row(rows, bench::WorkloadKind::kRequestCycleZmq);
  if (cycle_plain != nullptr && cycle_zmq != nullptr) {
    std::printf(
        "  events: request cycle with EventManager + ZMQ publisher = %.2fx the cycle without events "
        "(target <= %.1fx)\n",
        cycle_zmq->m.ns_per_block / cycle_plain->m.ns_per_block, kEventsTargetRatio);
  }

  const Row* seq = find_row(rows, bench::WorkloadKind::kHashSequence);
  const Row* one = find_row(rows, bench::WorkloadKind::kHashXxh3OneCall);
  const Row* per_block = find_row(rows, bench::WorkloadKind::kHashXxh3PerBlock);
  if (seq == nullptr || one == nullptr || per_block == nullptr) return;
  std::printf("\nhashing 4096 tokens (16 KiB), page 16 (target: TokenBlockSequence >= %.1fx raw XXH3)\n",
              kHashTargetRatio);
  std::printf("  %-44s %7.2f GB/s  %6.1f ns/block\n", "TokenBlockSequence (block + sequence hashes)", seq->m.gb_per_s,
              seq->m.ns_per_block);
  std::printf("  %-44s %7.2f GB/s  %6.1f ns/block  ratio %.2fx\n", "raw XXH3, one call over 16 KiB", one->m.gb_per_s,
              one->m.ns_per_block, seq->m.gb_per_s / one->m.gb_per_s);
  std::printf("  %-44s %7.2f GB/s  %6.1f ns/block  ratio %.2fx\n", "raw XXH3, one call per block (no chaining)",
              per_block->m.gb_per_s, per_block->m.ns_per_block, seq->m.gb_per_s / per_block->m.gb_per_s);
  if (const Row* chained = find_row(rows, bench::WorkloadKind::kHashXxh3Chained); chained != nullptr) {
    std::printf("  %-44s %7.2f GB/s  %6.1f ns/block  ratio %.2fx  (bound: the work Dynamo hashing needs)\n",
                "raw XXH3, per block + 16-byte chain hash", chained->m.gb_per_s, chained->m.ns_per_block,
                seq->m.gb_per_s / chained->m.gb_per_s);
  }
}

void print_json(const PoolBenchOptions& options, const std::vector<Row>& rows) {
  std::string out = absl::StrFormat(R"({"benchmark":"pool","seconds_per_workload":%g,"page_size":16,"machine":%s,)",
                                    options.seconds, json_string(bench::machine_description()));
  absl::StrAppend(&out, R"("workloads":[)");
  bool first = true;
  for (const Row& r : rows) {
    if (!first) out.push_back(',');
    first = false;
    absl::StrAppend(&out, "{\"key\":", json_string(r.info->key), ",\"name\":", json_string(r.info->name),
                    absl::StrFormat(",\"ns_per_block\":%.3f,\"steps\":%d", r.m.ns_per_block, r.m.steps));
    if (r.m.gb_per_s > 0) absl::StrAppend(&out, absl::StrFormat(",\"gb_per_s\":%.3f", r.m.gb_per_s));
    if (r.info->target_ns_per_block) {
      absl::StrAppend(&out,
                      absl::StrFormat(",\"target_ns_per_block\":%g,\"meets_target\":%s", *r.info->target_ns_per_block,
                                      r.m.ns_per_block <= *r.info->target_ns_per_block ? "true" : "false"));
    }
    if (!r.info->vllm_ref.empty()) absl::StrAppend(&out, ",\"vllm_ref_ns_per_block\":", json_string(r.info->vllm_ref));
    if (!is_hashing(r.info->kind)) absl::StrAppend(&out, ",\"release_path\":", json_string(r.info->release_path));
    if (!r.summary.empty() && !is_hashing(r.info->kind)) {
      absl::StrAppend(&out, ",\"summary\":", json_string(r.summary));
    }
    out.push_back('}');
  }
  out.push_back(']');
  const Row* seq = find_row(rows, bench::WorkloadKind::kHashSequence);
  const Row* one = find_row(rows, bench::WorkloadKind::kHashXxh3OneCall);
  const Row* per_block = find_row(rows, bench::WorkloadKind::kHashXxh3PerBlock);
  const Row* chained = find_row(rows, bench::WorkloadKind::kHashXxh3Chained);
  if (seq != nullptr && one != nullptr && per_block != nullptr && chained != nullptr) {
    absl::StrAppend(
        &out, absl::StrFormat(R"(,"hashing":{"tokens":4096,"bytes":16384,"token_block_sequence_gb_per_s":%.3f,)"
                              R"("xxh3_one_call_gb_per_s":%.3f,"xxh3_per_block_gb_per_s":%.3f,)"
                              R"("xxh3_chained_gb_per_s":%.3f,"ratio_vs_one_call":%.3f,"ratio_vs_per_block":%.3f,)"
                              R"("ratio_vs_chained":%.3f,"target_ratio":%.1f})",
                              seq->m.gb_per_s, one->m.gb_per_s, per_block->m.gb_per_s, chained->m.gb_per_s,
                              seq->m.gb_per_s / one->m.gb_per_s, seq->m.gb_per_s / per_block->m.gb_per_s,
                              seq->m.gb_per_s / chained->m.gb_per_s, kHashTargetRatio));
  }
  out.push_back('}');
  std::printf("%s\n", out.c_str());
}

int run_pool_bench(const PoolBenchOptions& options) {
  std::vector<Row> rows;
  for (const bench::WorkloadInfo& info : bench::all_workloads()) {
    // One workload (and its pool) alive at a time.
    auto workload = bench::make_workload(info.kind);
    if (!workload.ok()) {
      std::fprintf(stderr, "kvbm bench pool: %s: set-up failed: %s\n", std::string(info.name).c_str(),
                   workload.status().ToString().c_str());
      return 1;
    }
    auto m = bench::measure(**workload, options.seconds);
    if (!m.ok()) {
      std::fprintf(stderr, "kvbm bench pool: %s: %s\n", std::string(info.name).c_str(), m.status().ToString().c_str());
      return 1;
    }
    rows.push_back(Row{&info, *m, (*workload)->summary()});
  }
  if (options.json) {
    print_json(options, rows);
  } else {
    print_table(options, rows);
  }
  return 0;
}

// `kvbm bench tiers` (bench/tiers_bench.h): tier-to-tier throughput beside the machine's limits.
struct TiersCliOptions {
  double seconds = bench::TiersOptions{}.seconds;
  std::string dir;
  std::string total_bytes = "1GiB";
  bool json = false;
};

void print_tiers_table(const bench::TiersOptions& options, const bench::TiersReport& report) {
  std::printf("kvbm bench tiers: %.2f s per figure, working set %s per tier, disk dir %s (%s, %s)\n", options.seconds,
              format_size(report.total_bytes).c_str(), report.dir.c_str(), report.io_backend.c_str(),
              report.direct_io ? "O_DIRECT" : "buffered: the file system refused O_DIRECT");
  std::printf("machine: %s\n\n", bench::machine_description().c_str());
  std::printf(
      "limits (best of the rows; each row's own limit is measured in slices alternating with it):\n"
      "  memcpy of one large buffer, one thread: %.2f GB/s\n"
      "  disk probe, O_DIRECT sequential, 16 I/Os in flight, block-sized I/Os: write %.2f GB/s, read %.2f GB/s\n",
      report.limits.memcpy_gbps, report.limits.disk_write_gbps, report.limits.disk_read_gbps);
  std::printf("\n%-8s %-18s %8s %8s %8s %7s %7s\n", "path", "layout", "block", "GB/s", "limit", "ratio", "target");
  for (const bench::TiersRow& r : report.rows) {
    std::printf("%-8s %-18s %8s %8.2f %8.2f %7.2f %7.2f%s\n", r.path.c_str(), r.layout.c_str(),
                format_size(r.block_bytes).c_str(), r.gbps, r.limit_gbps, r.ratio, r.target,
                r.ratio >= r.target ? "" : "  (MISSES TARGET)");
  }
  std::printf(
      "\nhost<->host is compared with memcpy, g2->g3 with the probe's write and g3->g2 with its read at the "
      "same block size; layer_separate has 32 layers (K and V chunks per layer). %.1f s in all.\n",
      report.wall_seconds);
}

void print_tiers_json(const bench::TiersReport& report) {
  std::string out =
      absl::StrFormat(R"({"limits":{"memcpy_gbps":%.4f,"disk_write_gbps":%.4f,"disk_read_gbps":%.4f},)",
                      report.limits.memcpy_gbps, report.limits.disk_write_gbps, report.limits.disk_read_gbps);
  absl::StrAppend(&out, R"("results":[)");
  for (std::size_t i = 0; i < report.rows.size(); ++i) {
    const bench::TiersRow& r = report.rows[i];
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, absl::StrFormat(R"({"path":%s,"layout":%s,"block_bytes":%d,"gbps":%.4f,"limit_gbps":%.4f,)"
                                          R"("ratio":%.4f})",
                                          json_string(r.path), json_string(r.layout), r.block_bytes, r.gbps,
                                          r.limit_gbps, r.ratio));
  }
  absl::StrAppend(&out, "]}");
  std::printf("%s\n", out.c_str());
}

int run_tiers_command(const TiersCliOptions& cli) {
  bench::TiersOptions options;
  options.seconds = cli.seconds;
  options.dir = cli.dir;
  absl::StatusOr<std::uint64_t> total = parse_size(cli.total_bytes);
  if (!total.ok()) {
    std::fprintf(stderr, "kvbm bench tiers: --total-bytes: %s\n", total.status().ToString().c_str());
    return 2;
  }
  options.total_bytes = *total;
  absl::StatusOr<bench::TiersReport> report = bench::run_tiers_bench(options);
  if (!report.ok()) {
    std::fprintf(stderr, "kvbm bench tiers: %s\n", report.status().ToString().c_str());
    return 1;
  }
  if (cli.json) {
    print_tiers_json(*report);
  } else {
    print_tiers_table(options, *report);
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int* exit_code) {
  CLI::App* bench = app.add_subcommand("bench", "Run a benchmark and print its figures beside kvbm's targets");
  bench->require_subcommand(1);

  auto options = std::make_shared<PoolBenchOptions>();
  CLI::App* pool = bench->add_subcommand(
      "pool",
      "Block pool and hashing, one thread: ns per block for allocate+free, register, match, the request "
      "cycle; hashing GB/s next to raw XXH3");
  pool->add_option("--seconds", options->seconds, "Measured seconds per workload (e.g. 0.05 for a quick run)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  pool->add_flag("--json", options->json, "Print one JSON object instead of the table");
  pool->callback([options, exit_code] { *exit_code = run_pool_bench(*options); });

  auto tiers_options = std::make_shared<TiersCliOptions>();
  CLI::App* tiers = bench->add_subcommand(
      "tiers",
      "Tier-to-tier throughput (G1<->G2 memcpy, G2<->G3 disk) for fully contiguous and layer-separate layouts, "
      "each beside the machine's memcpy and O_DIRECT disk limits measured in the same run");
  tiers->add_option("--seconds", tiers_options->seconds, "Measured seconds per figure")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  tiers->add_option("--dir", tiers_options->dir, "Directory for the disk tier and probe (default: $TMPDIR or /tmp)");
  tiers
      ->add_option("--total-bytes", tiers_options->total_bytes,
                   "Working set per tier, e.g. 1GiB or 64MiB (capped to free memory and disk)")
      ->capture_default_str();
  tiers->add_flag("--json", tiers_options->json, "Print one JSON object instead of the table");
  tiers->callback([tiers_options, exit_code] { *exit_code = run_tiers_command(*tiers_options); });
}

}  // namespace kvbm::tools
