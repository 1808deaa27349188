// Text and JSON forms of a ReplayReport.
#include "kvbm/replay/report.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_split.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kvbm/core/json_escape.h"
#include "kvbm/core/size.h"
#include "replay/report_text.h"

namespace kvbm {
namespace {

constexpr const char* kTierNames[kNumCacheLevels] = {"g1", "g2", "g3", "g4"};

std::string pct(double x) { return absl::StrFormat("%.2f%%", x * 100); }

std::string offload_mode_name(OffloadMode m) {
  switch (m) {
    case OffloadMode::kWriteThrough:
      return "write_through";
    case OffloadMode::kWriteBack:
      return "write_back";
    case OffloadMode::kNone:
      return "none";
  }
  return "?";
}

std::string backlog_name(OffloadBacklog b) { return b == OffloadBacklog::kWait ? "wait" : "drop"; }

std::string tier_capacity(const TierReport& t) {
  return absl::StrCat(t.capacity_blocks, " blocks (", format_size(t.capacity_bytes), ")");
}

std::string rate(double bytes_per_s) {
  return absl::StrCat(format_size(static_cast<std::uint64_t>(std::llround(bytes_per_s))), "/s");
}

// The `bandwidth` line and a row per pair of tiers that are on: mean, p99 and max over 1 s windows.
std::string bandwidth_lines(const ReplayReport& r) {
  using report_text::labelled;
  const BandwidthReport& b = r.bandwidth;
  if (!b.measured) {
    return labelled("bandwidth", "not measured: every request has the same timestamp (no trace time to divide by)");
  }
  std::string out =
      labelled("bandwidth",
               absl::StrFormat("real bytes per second of trace time, over %d windows of %g s", b.windows, b.window_s));
  const std::string indent(report_text::kLabelColumns, ' ');
  absl::StrAppend(&out, indent, absl::StrFormat("%-5s %13s %13s %13s\n", "", "mean", "p99", "max"));
  for (int p = 0; p < kNumTierPairs; ++p) {
    const TierPairInfo& info = tier_pair_info(static_cast<TierPair>(p));
    if (!r.tiers[static_cast<int>(info.from)].enabled || !r.tiers[static_cast<int>(info.to)].enabled) continue;
    const PairBandwidth& pb = b.pairs[p];
    // The label is 5 columns wide ("→" is one column, three bytes): no printf padding.
    absl::StrAppend(&out, indent, info.label,
                    absl::StrFormat(" %13s %13s %13s\n", rate(pb.mean_bytes_per_s), rate(pb.p99_bytes_per_s),
                                    rate(pb.max_bytes_per_s)));
  }
  return out;
}

std::string bandwidth_json(const BandwidthReport& b) {
  if (!b.measured) return "null";
  std::string out =
      absl::StrFormat("{\"window_s\":%.9g,\"windows\":%d,\"first_ms\":%.15g,\"last_ms\":%.15g,\"pairs\":{", b.window_s,
                      b.windows, b.first_ms, b.last_ms);
  for (int p = 0; p < kNumTierPairs; ++p) {
    const PairBandwidth& pb = b.pairs[p];
    absl::StrAppend(&out, p ? "," : "", "\"", tier_pair_info(static_cast<TierPair>(p)).key, "\":{\"bytes\":", pb.bytes,
                    absl::StrFormat(",\"mean_bytes_per_s\":%.15g,\"p99_bytes_per_s\":%.15g,\"max_bytes_per_s\":%.15g}",
                                    pb.mean_bytes_per_s, pb.p99_bytes_per_s, pb.max_bytes_per_s));
  }
  absl::StrAppend(&out, "}}");
  return out;
}

}  // namespace

double quantile(std::vector<double>& samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const double rank = std::ceil(q * static_cast<double>(samples.size()));
  const std::size_t i = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return samples[std::min(i, samples.size() - 1)];
}

std::string format_report_header(const ReplayReport& r, absl::string_view title, const ReportHeaderOptions& options) {
  using report_text::labelled;
  const int swept_tier = options.swept_tier;
  std::string out = absl::StrCat(title, "\n");
  absl::StrAppend(&out, labelled("trace", report_text::fit(r.trace.empty() ? std::string("trace") : r.trace,
                                                           kReportColumns - report_text::kLabelColumns)));
  if (r.data) {
    const bool fewer = r.stored_bytes_per_block != 0 && r.stored_bytes_per_block < r.bytes_per_block;
    absl::StrAppend(&out, labelled("mode", "data: bytes through every tier, every onboarded block verified"));
    absl::StrAppend(&out,
                    labelled("", fewer ? absl::StrCat("stores ", format_size(r.stored_bytes_per_block), " of each ",
                                                      format_size(r.bytes_per_block), " block (same hits)")
                                       : std::string("stores whole blocks")));
  } else {
    absl::StrAppend(&out, labelled("mode", "identities only (--no-data): every tier a pool of block ids, no bytes"));
  }
  absl::StrAppend(&out, labelled("model", absl::StrCat(r.model.name, " (", r.model.source, "), bytes per block:")));
  absl::StrAppend(&out, labelled("", r.model.formula()));
  absl::StrAppend(&out, labelled("block", absl::StrCat(r.block_tokens, " tokens (one trace block)")));
  std::string eviction;
  std::string fixed;
  for (int t = 0; t < kNumCacheLevels; ++t) {
    const TierReport& tr = r.tiers[t];
    if (!tr.enabled) continue;
    if (!tr.eviction.empty()) absl::StrAppend(&eviction, eviction.empty() ? "" : ", ", kTierNames[t], " ", tr.eviction);
    if (t != swept_tier) absl::StrAppend(&fixed, fixed.empty() ? "" : ", ", kTierNames[t], " ", tier_capacity(tr));
  }
  if (!options.eviction_varies) absl::StrAppend(&out, labelled("eviction", eviction));
  if (swept_tier >= 0) absl::StrAppend(&out, labelled("fixed", fixed.empty() ? "no other tier (G1 alone)" : fixed));
  if (r.tiers[1].enabled) {
    const OffloadConfig& o = r.settings;
    absl::StrAppend(
        &out, labelled("offload", absl::StrCat(offload_mode_name(o.g1_to_g2), " G1→G2, ", offload_mode_name(o.g2_to_g3),
                                               " G2→G3; backlog ", backlog_name(o.backlog))));
  }
  if (r.tiers[2].enabled) {
    const std::uint32_t f = r.settings.g3_min_frequency;
    absl::StrAppend(
        &out,
        labelled("G3 filter",
                 f <= 1 ? absl::StrCat("off (offload.g3_min_frequency = ", f, ")")
                        : absl::StrCat("G3 takes blocks seen ", f, "+ times (offload.g3_min_frequency = ", f,
                                       "; counts halve every ", r.settings.frequency_decay_events, " sightings)")));
  }
  return out;
}

std::string format_report_text(const ReplayReport& r) {
  using report_text::labelled;
  std::string out = format_report_header(r, "kvbm replay", {});
  absl::StrAppend(&out, labelled("requests", absl::StrFormat("%d (%.0f/s)", r.requests, r.requests_per_second())));
  absl::StrAppend(&out, labelled("blocks", absl::StrFormat("%d referenced, %d hit (%.0f blocks/s)", r.blocks_total,
                                                           r.blocks_hit, r.blocks_per_second())));
  absl::StrAppend(
      &out, labelled("hit rate", absl::StrCat(pct(r.hit_rate()), " of blocks, ", pct(r.token_hit_rate()),
                                              " of tokens, ", pct(r.mean_request_hit_rate()), " mean per request")));
  absl::StrAppend(&out,
                  labelled("prefill", absl::StrFormat("%d of %d prompt tokens saved", r.hit_tokens, r.input_tokens)));
  absl::StrAppend(&out, absl::StrFormat("  %-4s %10s %10s %10s %10s  %-7s %9s %9s %9s\n", "tier", "blocks", "bytes",
                                        "hits", "of blocks", "at end:", "held", "inactive", "free"));
  for (int t = 0; t < kNumCacheLevels; ++t) {
    const TierReport& tr = r.tiers[t];
    if (!tr.enabled) continue;
    absl::StrAppend(&out, absl::StrFormat("  %-4s %10d %10s %10d %10s  %-7s %9d %9d %9d\n", kTierNames[t],
                                          tr.capacity_blocks, format_size(tr.capacity_bytes), tr.hits,
                                          pct(r.blocks_total ? static_cast<double>(tr.hits) / r.blocks_total : 0), "",
                                          tr.final_status.active, tr.final_status.inactive, tr.final_status.free));
  }
  for (int t = 0; t < kNumCacheLevels; ++t) {
    const TierReport& tr = r.tiers[t];
    if (tr.policy_violations == 0) continue;
    absl::StrAppend(&out,
                    labelled("overruled", absl::StrCat(kTierNames[t], " ", tr.eviction, ": ", tr.policy_violations,
                                                       " victims outside its set (LRU evicted instead)")));
  }
  if (r.blocks_uncached) {
    absl::StrAppend(&out,
                    labelled("uncached", absl::StrCat(r.blocks_uncached, " misses not cached (every G1 slot held)")));
  }
  if (r.tiers[1].enabled) {
    const OffloadStats& o = r.offload;
    absl::StrAppend(&out, labelled("moved down", absl::StrFormat("%s: G1→G2 %d blocks, G2→G3 %d, G2→G4 %d; %d staged "
                                                                 "into G2 on their way up",
                                                                 format_size(r.bytes_moved_down()), o.g1_to_g2,
                                                                 o.g2_to_g3, o.links[3].written, o.g3_to_g2)));
    absl::StrAppend(&out, labelled("moved up", absl::StrFormat("%s: G2→G1 %d blocks, G3→G1 %d, G4→G1 %d",
                                                               format_size(r.bytes_moved_up()), o.g2_to_g1, o.g3_to_g1,
                                                               o.g4_to_g1)));
    absl::StrAppend(&out, bandwidth_lines(r));
    if (r.tiers[2].enabled) {
      absl::StrAppend(&out, labelled("G3 filter", absl::StrCat(o.filtered_frequency,
                                                               " blocks kept out of G3 (seen fewer "
                                                               "than ",
                                                               r.settings.g3_min_frequency, " times)")));
    }
    absl::StrAppend(&out, labelled("present", absl::StrCat(o.skipped_present,
                                                           " copies down found the block already there (touched)")));
    absl::StrAppend(&out, labelled("lost", absl::StrFormat("%d copies (backlog %s: %d at a full queue, %d evicted "
                                                           "before their copy)",
                                                           o.dropped_queue_full + o.skipped_evicted,
                                                           backlog_name(r.settings.backlog), o.dropped_queue_full,
                                                           o.skipped_evicted)));
    if (o.transfer_failures || o.checksum_failures || r.onboard_truncated) {
      absl::StrAppend(
          &out, labelled("errors", absl::StrFormat("%d transfer failures, %d checksum failures, %d blocks "
                                                   "lost to truncated onboarding",
                                                   o.transfer_failures, o.checksum_failures, r.onboard_truncated)));
    }
  }
  if (r.data) {
    const bool fewer = r.stored_bytes_per_block != 0 && r.stored_bytes_per_block < r.bytes_per_block;
    absl::StrAppend(
        &out,
        labelled("onboarding", absl::StrFormat("%d requests; latency p50 %.3f ms, p99 %.3f ms, max "
                                               "%.3f ms%s",
                                               r.onboards, r.onboard_p50_ms, r.onboard_p99_ms, r.onboard_max_ms,
                                               fewer ? absl::StrCat(" (copying ", format_size(r.stored_bytes_per_block),
                                                                    " per block, not the real size)")
                                                     : "")));
    absl::StrAppend(&out, labelled("verified", absl::StrFormat("%d onboarded blocks checked, %d failures",
                                                               r.verified_blocks, r.verification_failures)));
  }
  absl::StrAppend(
      &out, labelled("events", r.events_enabled ? absl::StrCat(r.events_sent, " sent, ", r.events_dropped, " dropped")
                                                : std::string("off")));
  absl::StrAppend(&out, labelled("time", absl::StrFormat("%.3f s (reading the trace %.3f s, waiting for arrivals %.3f "
                                                         "s; cache alone %.0f blocks/s)",
                                                         r.seconds, r.trace_seconds, r.paced_seconds,
                                                         r.cache_blocks_per_second())));
  return out;
}

std::string format_settings_json(const ReplayReport& r) {
  std::string out =
      absl::StrCat("\"model\":", r.model.to_json(), ",\"bytes_per_block\":", r.bytes_per_block,
                   ",\"stored_bytes_per_block\":", r.stored_bytes_per_block, ",\"settings\":{\"eviction\":{");
  bool first = true;
  for (int t = 0; t < kNumCacheLevels; ++t) {
    if (!r.tiers[t].enabled || r.tiers[t].eviction.empty()) continue;
    absl::StrAppend(&out, first ? "" : ",", "\"", kTierNames[t], "\":", json_string(r.tiers[t].eviction));
    first = false;
  }
  const OffloadConfig& o = r.settings;
  absl::StrAppend(&out, "},\"offload_g1_to_g2\":", json_string(offload_mode_name(o.g1_to_g2)),
                  ",\"offload_g2_to_g3\":", json_string(offload_mode_name(o.g2_to_g3)),
                  ",\"backlog\":", json_string(backlog_name(o.backlog)), ",\"g3_min_frequency\":", o.g3_min_frequency,
                  ",\"frequency_decay_events\":", o.frequency_decay_events, "}");
  return out;
}

std::string format_report_json(const ReplayReport& r) {
  std::string out = "{";
  absl::StrAppend(&out, "\"mode\":", json_string(r.data ? "data" : "metadata"), ",\"trace\":", json_string(r.trace),
                  ",\"eviction\":", json_string(r.eviction), ",\"block_tokens\":", r.block_tokens, ",",
                  format_settings_json(r));
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
        ",\"capacity_blocks\":", tr.capacity_blocks, ",\"capacity_bytes\":", tr.capacity_bytes,
        ",\"eviction\":", json_string(tr.eviction), ",\"hits\":", tr.hits,
        absl::StrFormat(",\"hit_rate\":%.9g", r.blocks_total ? static_cast<double>(tr.hits) / r.blocks_total : 0.0),
        ",\"active\":", tr.final_status.active, ",\"inactive\":", tr.final_status.inactive,
        ",\"free\":", tr.final_status.free, ",\"policy_violations\":", tr.policy_violations, "}");
  }
  absl::StrAppend(&out, "}");
  const OffloadStats& o = r.offload;
  absl::StrAppend(&out, ",\"bytes_moved\":{\"down\":", r.bytes_moved_down(), ",\"up\":", r.bytes_moved_up(), "}",
                  ",\"stored_bytes_moved\":{\"down\":", o.bytes_down, ",\"up\":", o.bytes_up, "}",
                  ",\"blocks_moved\":{\"g1_to_g2\":", o.g1_to_g2, ",\"g2_to_g3\":", o.g2_to_g3,
                  ",\"g2_to_g4\":", o.links[3].written, ",\"g2_to_g1\":", o.g2_to_g1, ",\"g3_to_g1\":", o.g3_to_g1,
                  ",\"g3_to_g2\":", o.g3_to_g2, "}");
  absl::StrAppend(&out, ",\"bandwidth\":", bandwidth_json(r.bandwidth));
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

namespace report_text {

std::vector<std::string> chart_subtitle(const ReplayReport& r, const ReportHeaderOptions& options,
                                        std::size_t columns) {
  const int swept_tier = options.swept_tier;
  std::vector<std::string> lines = {fit(r.trace.empty() ? std::string("trace") : r.trace, columns)};
  const bool fewer = r.stored_bytes_per_block != 0 && r.stored_bytes_per_block < r.bytes_per_block;
  std::string model = absl::StrCat(
      "model ", r.model.name, ": ", format_size(r.bytes_per_block), " per block of ", r.block_tokens, " tokens; ",
      r.data ? (fewer ? absl::StrCat("data mode, storing ", format_size(r.stored_bytes_per_block), " of each block")
                      : std::string("data mode"))
             : std::string("identities only"));
  std::string fixed, eviction;
  for (int t = 0; t < kNumCacheLevels; ++t) {
    const TierReport& tr = r.tiers[t];
    if (!tr.enabled) continue;
    if (t != swept_tier) absl::StrAppend(&fixed, fixed.empty() ? "" : ", ", kTierNames[t], " ", tier_capacity(tr));
    if (!tr.eviction.empty()) absl::StrAppend(&eviction, eviction.empty() ? "" : ", ", kTierNames[t], " ", tr.eviction);
  }
  std::string settings = absl::StrCat("fixed: ", fixed.empty() ? std::string("no other tier") : fixed);
  if (!eviction.empty() && !options.eviction_varies) absl::StrAppend(&settings, "; eviction ", eviction);
  if (r.tiers[2].enabled) absl::StrAppend(&settings, "; g3_min_frequency ", r.settings.g3_min_frequency);
  for (const std::string& text : {model, settings}) {
    for (std::string& line : wrap_words(text, columns)) lines.push_back(std::move(line));
  }
  return lines;
}

CapacityTicks capacity_ticks(absl::string_view tier, const std::vector<std::string>& values,
                             const std::vector<std::uint64_t>& blocks, std::uint64_t bytes_per_block) {
  CapacityTicks t;
  std::size_t counts = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const bool is_count = !values[i].empty() && std::all_of(values[i].begin(), values[i].end(), absl::ascii_isdigit);
    counts += is_count ? 1 : 0;
    t.labels.push_back(values[i]);
    const std::uint64_t b = i < blocks.size() ? blocks[i] : 0;
    t.sublabels.push_back(is_count ? format_size(b * bytes_per_block) : absl::StrCat(b, " blocks"));
  }
  const std::string per_block = format_size(bytes_per_block);
  if (counts == values.size()) {
    t.axis = absl::StrCat(tier, " capacity in blocks (bytes below, ", per_block, " per block)");
  } else if (counts == 0) {
    t.axis = absl::StrCat(tier, " capacity in bytes (blocks of ", per_block, " below)");
  } else {
    t.axis = absl::StrCat(tier, " capacity as given, blocks or bytes (the other below; ", per_block, " per block)");
  }
  return t;
}

}  // namespace report_text

}  // namespace kvbm
