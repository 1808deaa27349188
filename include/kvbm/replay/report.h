// ReplayReport: what one `kvbm replay` run measured, and its text and JSON forms.
//
// Hit rates are computed from the counters on demand, so a report is plain data that can be copied,
// compared in tests and summed up by a sweep. Tier hits say where each hit block was found (G1, G2, G3 or
// G4 at match time), in both modes. Every size in a report is of the real block of `model` (data mode may
// store fewer bytes of each block: stored_bytes_per_block). docs/report.md explains every line and field.
#pragma once

#include <absl/strings/string_view.h>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kvbm/offload/offload_manager.h"
#include "kvbm/pool/block_pool.h"
#include "kvbm/replay/bandwidth.h"
#include "kvbm/replay/model_spec.h"
#include "kvbm/transfer/transfer_engine.h"

namespace kvbm {

struct TierReport {
  bool enabled = false;
  std::uint64_t capacity_blocks = 0;
  std::uint64_t capacity_bytes = 0;  // capacity_blocks × the real bytes per block, in both modes
  std::string eviction;              // the tier's eviction policy ("" for G4)
  std::uint64_t hits = 0;            // blocks of requests' cached prefixes found in this tier
  PoolStatus final_status;           // at the end of the run
  // Victims a user eviction policy named that the pool overruled (docs/custom_eviction.md); 0 for built-ins.
  std::uint64_t policy_violations = 0;
};

struct ReplayReport {
  bool data = false;                  // real bytes, or identities only (--no-data): the same tiers either way
  std::string trace;                  // what was replayed: a path or "generated:<preset>"
  std::string eviction;               // G1 eviction policy name
  ModelSpec model;                    // the model planned for
  std::uint64_t bytes_per_block = 0;  // the real block's bytes (model.bytes_per_block()), in both modes
  // Data mode: bytes stored of each block (less than bytes_per_block when the tiers hold a smaller copy;
  // no hit changes). 0 with --no-data.
  std::uint64_t stored_bytes_per_block = 0;
  std::uint32_t block_tokens = 0;
  OffloadConfig settings;  // the offload settings replayed (modes, frequency filter, backlog)

  std::uint64_t requests = 0;
  std::uint64_t requests_with_blocks = 0;  // the denominator of mean_request_hit_rate
  std::uint64_t blocks_total = 0;          // block references: sum of the requests' full blocks
  std::uint64_t blocks_hit = 0;            // blocks served from cache (the cached prefix of each request)
  std::uint64_t input_tokens = 0;          // sum of the requests' prompt lengths
  std::uint64_t hit_tokens = 0;            // prefill tokens saved: min(hits × block_tokens, input_tokens)
  double sum_request_hit_rate = 0;         // Σ hits/blocks over requests with blocks
  std::uint64_t blocks_uncached = 0;       // misses not cached because every G1 slot was held
  std::uint64_t onboard_truncated = 0;     // matched below G1 but not made resident (G1 full, I/O error)

  std::array<TierReport, kNumCacheLevels> tiers;  // G1, G2, G3, G4

  // Both modes: real bytes per second of trace time between each pair of tiers (kvbm/replay/bandwidth.h);
  // not measured when every request has the same timestamp, and for the offline optimum.
  BandwidthReport bandwidth;

  // Data mode.
  OffloadStats offload;
  TransferStats transfers;
  std::uint64_t onboards = 0;  // requests whose prefix needed blocks from G2/G3
  double onboard_p50_ms = 0, onboard_p99_ms = 0, onboard_max_ms = 0;
  std::uint64_t verified_blocks = 0;        // onboarded blocks whose bytes were checked
  std::uint64_t verification_failures = 0;  // of those, the ones whose bytes were not their hash's (must be 0)

  // Events (--events): sent and dropped by the event manager; zero when events are off.
  bool events_enabled = false;
  std::uint64_t events_sent = 0, events_dropped = 0;

  double seconds = 0;        // wall time of the replay loop (not of any pre-pass)
  double trace_seconds = 0;  // of which reading (parsing or generating) the trace
  double paced_seconds = 0;  // of which waiting for arrival times (--timing trace)

  // Blocks copied down (into G2, G3, G4, staging included) and up (onboarded into G1), and their real bytes.
  [[nodiscard]] std::uint64_t blocks_moved_down() const {
    std::uint64_t n = 0;
    for (const LinkStats& l : offload.links) n += l.written + l.staged;
    return n;
  }
  [[nodiscard]] std::uint64_t blocks_moved_up() const { return offload.g2_to_g1 + offload.g3_to_g1 + offload.g4_to_g1; }
  [[nodiscard]] std::uint64_t bytes_moved_down() const { return blocks_moved_down() * bytes_per_block; }
  [[nodiscard]] std::uint64_t bytes_moved_up() const { return blocks_moved_up() * bytes_per_block; }

  [[nodiscard]] double hit_rate() const { return ratio(blocks_hit, blocks_total); }
  [[nodiscard]] double token_hit_rate() const { return ratio(hit_tokens, input_tokens); }
  [[nodiscard]] double mean_request_hit_rate() const {
    return requests_with_blocks == 0 ? 0.0 : sum_request_hit_rate / static_cast<double>(requests_with_blocks);
  }
  [[nodiscard]] double requests_per_second() const { return seconds > 0 ? static_cast<double>(requests) / seconds : 0; }
  [[nodiscard]] double blocks_per_second() const {
    return seconds > 0 ? static_cast<double>(blocks_total) / seconds : 0;
  }
  // Block references per second of the cache alone (the loop's time less reading the trace and pacing).
  [[nodiscard]] double cache_blocks_per_second() const {
    const double busy = seconds - trace_seconds - paced_seconds;
    return busy > 0 ? static_cast<double>(blocks_total) / busy : 0;
  }

 private:
  static double ratio(std::uint64_t a, std::uint64_t b) {
    return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
  }
};

// The widest line (in characters) of every text report replay prints: report, sweep and comparison tables.
inline constexpr std::size_t kReportColumns = 100;

// The readable report (several lines of at most kReportColumns characters, ending in a newline).
[[nodiscard]] std::string format_report_text(const ReplayReport& report);
// What a report header leaves out or adds: a sweep's or comparison's tier (-1: none) is not "fixed", and a
// comparison's G1 eviction policy is its variable.
struct ReportHeaderOptions {
  int swept_tier = -1;
  bool eviction_varies = false;
};
// The lines every text report opens with: the title, then the trace, mode (and the bytes stored of each
// block), model and its bytes-per-block formula, tokens per block, eviction per tier, the capacities of the
// tiers other than the swept one (sweeps and comparisons only), offload modes and backlog, and the G3
// frequency filter with its value.
[[nodiscard]] std::string format_report_header(const ReplayReport& report, absl::string_view title,
                                               const ReportHeaderOptions& options);
// `"model":{...},"bytes_per_block":N,"stored_bytes_per_block":N,"settings":{...}` (no braces around):
// the part of format_report_json that a sweep or comparison states once.
[[nodiscard]] std::string format_settings_json(const ReplayReport& report);
// One JSON object on one line (every field: docs/report.md): mode, trace, model {name, dims},
// bytes_per_block (real), stored_bytes_per_block, settings {eviction per tier, offload, filter}, requests,
// blocks_total, blocks_hit, hit_rate, token_hit_rate, mean_request_hit_rate, prefill_tokens_saved, tiers {g1, g2, g3:
// {enabled, capacity_blocks, hits, ...}}, bytes moved, onboard latency, rates, verification and event counters.
[[nodiscard]] std::string format_report_json(const ReplayReport& report);

// The q-quantile (0..1) of `samples` by nearest rank; 0 when empty. Sorts `samples`.
[[nodiscard]] double quantile(std::vector<double>& samples, double q);

}  // namespace kvbm
