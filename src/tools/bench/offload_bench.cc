// `kvbm bench offload`: see offload_bench.h.
#include "tools/bench/offload_bench.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <chrono>

#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/replay/replay.h"

namespace kvbm::bench {
namespace {

using Clock = std::chrono::steady_clock;

double nth(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

absl::StatusOr<OffloadBenchRow> run_row(const OffloadBenchOptions& o, const ModelConfig& model, const char* name,
                                        bool with_g2, OffloadBacklog backlog, std::uint32_t queue_capacity) {
  KvbmConfig config;
  config.model = model;
  // Memory pre-faulted (zero_fill), as a serving process has it: first touches would dominate a short run.
  config.g1 = TierConfig{.num_blocks = o.g1_blocks, .eviction = EvictionPolicyKind::kLru, .zero_fill = true};
  if (with_g2) {
    config.g2 = TierConfig{.num_blocks = 4ull * o.g1_blocks, .eviction = EvictionPolicyKind::kLru, .zero_fill = true};
  }
  config.keep_tokens = false;
  config.offload.backlog = backlog;
  config.offload.queue_capacity = queue_capacity;
  config.offload.max_bytes_in_flight =
      std::max<std::uint64_t>(config.offload.max_bytes_in_flight, model.bytes_per_block());
  auto kv = KvBlockManager::create(config);
  if (!kv.ok()) return kv.status();
  KvBlockManager& m = **kv;

  OffloadBenchRow row;
  row.backlog = name;
  std::vector<double> ns;
  std::uint64_t next_hash = 1, blocks = 0;
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  while (Clock::now() < until) {
    const auto t0 = Clock::now();
    auto fresh = m.allocate(o.request_blocks);
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    if (!fresh.ok()) return fresh.status();
    for (std::size_t i = 0; i < fresh->size(); ++i, ++next_hash) {
      BlockIdentity id{BlockHash{next_hash}, SequenceHash{next_hash}, std::nullopt};
      if (i > 0) id.parent = SequenceHash{next_hash - 1};
      if (absl::Status s = (*fresh)[i].apply(id); !s.ok()) return s;
    }
    auto registered = m.register_blocks(*fresh);
    if (!registered.ok()) return registered.status();
    m.release(*std::move(registered));
    blocks += o.request_blocks;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  m.flush();
  row.allocations = ns.size();
  row.alloc_p50_ns = nth(ns, 0.5);
  row.alloc_p99_ns = nth(ns, 0.99);
  row.alloc_max_ns = nth(ns, 1.0);
  row.blocks_per_second = static_cast<double>(blocks) / seconds;
  const LinkStats link = m.offload_stats().links[static_cast<int>(CacheLevel::kG2)];
  row.written = link.written;
  row.at_eviction = link.at_eviction;
  row.producer_runs = link.producer_runs;
  row.dropped = link.dropped_queue_full + link.dropped_evicted;
  return row;
}

}  // namespace

absl::StatusOr<OffloadBenchReport> run_offload_bench(const OffloadBenchOptions& o) {
  if (!(o.seconds > 0) || o.g1_blocks == 0 || o.request_blocks == 0 || o.request_blocks > o.g1_blocks) {
    return absl::InvalidArgumentError("offload bench: needs seconds > 0 and 1 <= request_blocks <= g1_blocks");
  }
  auto preset = model_spec_preset("Llama-3.1-8B", 16);
  if (!preset.ok()) return preset.status();
  auto model = model_with_block_bytes(preset->geometry, o.block_bytes);
  if (!model.ok()) return model.status();
  OffloadBenchReport report;
  report.block_bytes = model->bytes_per_block();
  report.queue_capacity = 2 * o.g1_blocks;  // small enough to fill: both ways of keeping up show
  for (const auto& [name, with_g2, backlog] :
       {std::tuple{"g1 only", false, OffloadBacklog::kWait}, std::tuple{"wait", true, OffloadBacklog::kWait},
        std::tuple{"drop", true, OffloadBacklog::kDrop}}) {
    auto row = run_row(o, *model, name, with_g2, backlog, report.queue_capacity);
    if (!row.ok()) return row.status();
    report.rows.push_back(*std::move(row));
  }
  return report;
}

}  // namespace kvbm::bench
