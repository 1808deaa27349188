// Text and JSON forms of a ReplayReport.
#include "kvbm/replay/report.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kvbm/core/json_escape.h"
#include "kvbm/core/size.h"

namespace kvbm {
namespace {

constexpr const char* kTierNames[kNumCacheLevels] = {"g1", "g2", "g3", "g4"};

std::string pct(double x) { return absl::StrFormat("%.2f%%", x * 100); }

}  // namespace

double quantile(std::vector<double>& samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const double rank = std::ceil(q * static_cast<double>(samples.size()));
  const std::size_t i = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return samples[std::min(i, samples.size() - 1)];
}

std::string format_report_text(const ReplayReport& r) {
  std::string out;
  absl::StrAppend(&out, "kvbm replay: ", r.trace.empty() ? std::string("trace") : r.trace, " (",
                  r.data ? "data" : "identities only", ", eviction ", r.eviction, ", ", r.block_tokens,
                  " tokens per block", r.data ? absl::StrCat(", ", format_size(r.bytes_per_block), " per block") : "",
                  ")\n");
  absl::StrAppend(&out, absl::StrFormat("  requests            %d (%.0f/s)\n", r.requests, r.requests_per_second()));
  absl::StrAppend(&out, absl::StrFormat("  blocks              %d referenced, %d hit (%.0f blocks/s)\n", r.blocks_total,
                                        r.blocks_hit, r.blocks_per_second()));
  absl::StrAppend(&out, "  hit rate            ", pct(r.hit_rate()), " of blocks, ", pct(r.token_hit_rate()),
                  " of tokens, ", pct(r.mean_request_hit_rate()), " mean per request\n");
  absl::StrAppend(&out,
                  absl::StrFormat("  prefill saved       %d of %d prompt tokens\n", r.hit_tokens, r.input_tokens));
  for (int t = 0; t < kNumCacheLevels; ++t) {
    const TierReport& tr = r.tiers[t];
    if (!tr.enabled) continue;
    absl::StrAppend(
        &out, absl::StrFormat("  %s  %9d blocks%s  hits %d (%s of blocks)  at end: %d active, %d inactive, %d free\n",
                              kTierNames[t], tr.capacity_blocks,
                              tr.capacity_bytes ? absl::StrCat(" (", format_size(tr.capacity_bytes), ")") : "", tr.hits,
                              pct(r.blocks_total ? static_cast<double>(tr.hits) / r.blocks_total : 0),
                              tr.final_status.active, tr.final_status.inactive, tr.final_status.free));
  }
  if (r.blocks_uncached)
    absl::StrAppend(&out, "  uncached            ", r.blocks_uncached, " misses (every G1 slot held)\n");
  if (r.tiers[1].enabled) {
    const OffloadStats& o = r.offload;
    const auto bytes = [&](std::uint64_t n) { return r.data ? absl::StrCat(format_size(n), " ") : std::string(); };
    absl::StrAppend(&out, absl::StrFormat("  moved down          %s(G1→G2 %d blocks, G2→G3 %d, G2→G4 %d)\n",
                                          bytes(o.bytes_down), o.g1_to_g2, o.g2_to_g3, o.links[3].written));
    absl::StrAppend(&out,
                    absl::StrFormat("  moved up            %s(G2→G1 %d, G3→G1 %d, G4→G1 %d blocks; %d staged into "
                                    "G2 on their way up)\n",
                                    bytes(o.bytes_up), o.g2_to_g1, o.g3_to_g1, o.g4_to_g1, o.g3_to_g2));
  }
  if (r.data) {
    absl::StrAppend(
        &out, absl::StrFormat("  onboarding          %d requests, latency p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
                              r.onboards, r.onboard_p50_ms, r.onboard_p99_ms, r.onboard_max_ms));
    absl::StrAppend(&out, absl::StrFormat("  verification        %d onboarded blocks checked, %d failures\n",
                                          r.verified_blocks, r.verification_failures));
  }
  if (r.tiers[1].enabled) {
    const OffloadStats& o = r.offload;
    absl::StrAppend(
        &out, absl::StrFormat("  offload             kept off G3 by the frequency filter %d; already below (touched "
                              "instead) %d; lost %d (backlog = drop: %d at a full queue, %d evicted first)\n",
                              o.filtered_frequency, o.skipped_present, o.dropped_queue_full + o.skipped_evicted,
                              o.dropped_queue_full, o.skipped_evicted));
    if (o.transfer_failures || o.checksum_failures || r.onboard_truncated) {
      absl::StrAppend(&out, absl::StrFormat("  errors              %d transfer failures, %d checksum failures, %d "
                                            "blocks lost to truncated onboarding\n",
                                            o.transfer_failures, o.checksum_failures, r.onboard_truncated));
    }
  }
  absl::StrAppend(&out, "  events              ",
                  r.events_enabled ? absl::StrCat(r.events_sent, " sent, ", r.events_dropped, " dropped") : "off",
                  "\n");
  absl::StrAppend(
      &out, absl::StrFormat("  time                %.3f s (reading the trace %.3f s, waiting for arrivals %.3f s; "
                            "cache alone %.0f blocks/s)\n",
                            r.seconds, r.trace_seconds, r.paced_seconds, r.cache_blocks_per_second()));
  return out;
}

std::string format_report_json(const ReplayReport& r) {
  std::string out = "{";
  absl::StrAppend(&out, "\"mode\":", json_string(r.data ? "data" : "metadata"), ",\"trace\":", json_string(r.trace),
                  ",\"eviction\":", json_string(r.eviction), ",\"block_tokens\":", r.block_tokens,
                  ",\"bytes_per_block\":", r.bytes_per_block);
  absl::StrAppend(&out, ",\"requests\":", r.requests, ",\"blocks_total\":", r.blocks_total,
                  ",\"blocks_hit\":", r.blocks_hit, absl::StrFormat(",\"hit_rate\":%.9g", r.hit_rate()),
                  absl::StrFormat(",\"token_hit_rate\":%.9g", r.token_hit_rate()),
                  absl::StrFormat(",\"mean_request_hit_rate\":%.9g", r.mean_request_hit_rate()),
                  ",\"input_tokens\":", r.input_tokens, ",\"prefill_tokens_saved\":", r.hit_tokens,
                  ",\"blocks_uncached\":", r.blocks_uncached);
  absl::StrAppend(&out, ",\"tiers\":{");
  for (int t = 0; t < kNumCacheLevels; ++t) {
    const TierReport& tr = r.tiers[t];
    absl::StrAppend(
        &out, t ? "," : "", "\"", kTierNames[t], "\":{\"enabled\":", tr.enabled ? "true" : "false",
        ",\"capacity_blocks\":", tr.capacity_blocks, ",\"capacity_bytes\":", tr.capacity_bytes, ",\"hits\":", tr.hits,
        absl::StrFormat(",\"hit_rate\":%.9g", r.blocks_total ? static_cast<double>(tr.hits) / r.blocks_total : 0.0),
        ",\"active\":", tr.final_status.active, ",\"inactive\":", tr.final_status.inactive,
        ",\"free\":", tr.final_status.free, "}");
  }
  absl::StrAppend(&out, "}");
  const OffloadStats& o = r.offload;
  absl::StrAppend(&out, ",\"bytes_moved\":{\"down\":", o.bytes_down, ",\"up\":", o.bytes_up, "}",
                  ",\"blocks_moved\":{\"g1_to_g2\":", o.g1_to_g2, ",\"g2_to_g3\":", o.g2_to_g3,
                  ",\"g2_to_g4\":", o.links[3].written, ",\"g2_to_g1\":", o.g2_to_g1, ",\"g3_to_g1\":", o.g3_to_g1,
                  ",\"g3_to_g2\":", o.g3_to_g2, "}");
  absl::StrAppend(&out, ",\"offload\":{\"queue_peak_g1_g2\":", o.queue_peak_g1_g2,
                  ",\"queue_peak_g2_g3\":", o.queue_peak_g2_g3, ",\"dropped_queue_full\":", o.dropped_queue_full,
                  ",\"filtered_frequency\":", o.filtered_frequency, ",\"no_space\":", o.no_space,
                  ",\"skipped_present\":", o.skipped_present, ",\"skipped_evicted\":", o.skipped_evicted,
                  ",\"write_back_blocks\":", o.write_back_blocks, ",\"copied_at_eviction\":", o.copied_at_eviction,
                  ",\"copied_by_producer\":", o.copied_by_producer, ",\"transfer_failures\":", o.transfer_failures,
                  ",\"checksum_failures\":", o.checksum_failures, "}");
  absl::StrAppend(&out, ",\"onboard\":{\"count\":", r.onboards,
                  absl::StrFormat(",\"p50_ms\":%.6g,\"p99_ms\":%.6g,\"max_ms\":%.6g", r.onboard_p50_ms,
                                  r.onboard_p99_ms, r.onboard_max_ms),
                  ",\"truncated_blocks\":", r.onboard_truncated, "}");
  absl::StrAppend(&out, ",\"verified_blocks\":", r.verified_blocks,
                  ",\"verification_failures\":", r.verification_failures);
  absl::StrAppend(&out, ",\"events\":{\"enabled\":", r.events_enabled ? "true" : "false", ",\"sent\":", r.events_sent,
                  ",\"dropped\":", r.events_dropped, "}");
  absl::StrAppend(
      &out,
      absl::StrFormat(",\"seconds\":%.6g,\"trace_seconds\":%.6g,\"paced_seconds\":%.6g,\"requests_per_second\":%.6g,"
                      "\"blocks_per_second\":%.6g,\"cache_blocks_per_second\":%.6g",
                      r.seconds, r.trace_seconds, r.paced_seconds, r.requests_per_second(), r.blocks_per_second(),
                      r.cache_blocks_per_second()));
  absl::StrAppend(&out, "}");
  return out;
}

}  // namespace kvbm
