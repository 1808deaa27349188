// Capacity planning (see kvbm/replay/plan.h and docs/planning.md).
#include "kvbm/replay/plan.h"

#include <absl/container/flat_hash_set.h>
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <optional>
#include <thread>
#include <utility>

#include "kvbm/core/json_escape.h"
#include "kvbm/core/size.h"
#include "kvbm/replay/stack_distance.h"
#include "replay/svg_chart.h"

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A reader over requests held once in memory, one per replaying thread.
class SharedTrace final : public TraceReader {
 public:
  explicit SharedTrace(const std::vector<TraceRequest>& requests) : requests_(requests) {}
  absl::StatusOr<std::optional<TraceRequest>> next() override {
    if (next_ >= requests_.size()) return std::optional<TraceRequest>();
    return std::optional<TraceRequest>(requests_[next_++]);
  }
  absl::Status rewind() override {
    next_ = 0;
    return absl::OkStatus();
  }

 private:
  const std::vector<TraceRequest>& requests_;
  std::size_t next_ = 0;
};

// Runs fn(i) for every i in [0, n) on up to `threads` threads (the caller's among them).
template <typename Fn>
void parallel_for(std::size_t n, std::uint32_t threads, const Fn& fn) {
  std::atomic<std::size_t> next{0};
  const auto work = [&] {
    for (std::size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < std::min<std::size_t>(threads, n); ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

// `points` capacities from lo to hi, evenly spaced on a log scale, rounded, distinct, ascending.
std::vector<std::uint64_t> log_spaced(std::uint64_t lo, std::uint64_t hi, std::uint32_t points) {
  lo = std::max<std::uint64_t>(1, lo);
  hi = std::max(lo, hi);
  std::vector<std::uint64_t> out;
  for (std::uint32_t i = 0; i < points; ++i) {
    const double f = points == 1 ? 1.0 : static_cast<double>(i) / (points - 1);
    const double v = std::exp(std::log(static_cast<double>(lo)) * (1 - f) + std::log(static_cast<double>(hi)) * f);
    out.push_back(i + 1 == points ? hi : std::clamp<std::uint64_t>(std::llround(v), lo, hi));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string policy_name(const EvictionPolicySpec& spec) { return std::string(spec.name()); }

std::string offload_name(OffloadMode m) {
  switch (m) {
    case OffloadMode::kWriteThrough:
      return "write_through";
    case OffloadMode::kWriteBack:
      return "write_back";
    default:
      return "none";
  }
}

PlanPoint point_of(const ChainHits& h, std::uint64_t bytes_per_block) {
  PlanPoint p;
  p.blocks = h.g2_blocks;
  p.bytes = h.g2_blocks * bytes_per_block;
  p.blocks_hit = h.blocks_hit;
  p.g1_hits = h.g1_hits;
  p.g2_hits = h.g2_hits;
  p.source = h.from_pass ? "stack pass" : "re-simulated";
  return p;
}

PlanPoint point_of(const ReplayReport& r, CacheLevel varied, std::uint64_t bytes_per_block) {
  PlanPoint p;
  p.blocks = r.tiers[static_cast<int>(varied)].capacity_blocks;
  p.bytes = p.blocks * bytes_per_block;
  p.blocks_hit = r.blocks_hit;
  p.g1_hits = r.tiers[0].hits;
  p.g2_hits = r.tiers[1].hits;
  p.g3_hits = r.tiers[2].hits;
  p.source = "replay";
  return p;
}

// `--no-data` replays of `configs`, several at a time.
absl::StatusOr<std::vector<ReplayReport>> replay_all(const std::vector<TraceRequest>& requests,
                                                     const std::vector<ReplayOptions>& configs, std::uint32_t threads) {
  std::vector<absl::StatusOr<ReplayReport>> results(configs.size(), absl::UnknownError("not run"));
  parallel_for(configs.size(), threads, [&](std::size_t i) {
    SharedTrace trace(requests);
    results[i] = run_replay(trace, configs[i]);
  });
  std::vector<ReplayReport> out;
  for (auto& r : results) {
    if (!r.ok()) return r.status();
    out.push_back(*std::move(r));
  }
  return out;
}

ReplayOptions with_capacities(const ReplayOptions& base, std::uint64_t g2_blocks, std::uint64_t g3_blocks) {
  ReplayOptions o = base;
  o.config.g2.num_blocks = g2_blocks;
  o.config.g2.bytes = 0;
  o.config.g3.num_blocks = g3_blocks;
  o.config.g3.bytes = 0;
  return o;
}

// Why the stack pass does not apply to `c` ("" when it does).
std::string pass_blocker(const KvbmConfig& c) {
  if (c.g1.eviction != EvictionPolicyKind::kLru || c.g2.eviction != EvictionPolicyKind::kLru) {
    return absl::StrCat("eviction ", policy_name(c.g1.eviction), " in G1, ", policy_name(c.g2.eviction),
                        " in G2 (the pass needs lru in both)");
  }
  if (c.offload.g1_to_g2 != OffloadMode::kWriteThrough) {
    return absl::StrCat("offload.g1_to_g2 = ", offload_name(c.offload.g1_to_g2), " (the pass needs write_through)");
  }
  if (c.offload.backlog != OffloadBacklog::kWait) return "offload.backlog = drop (the pass needs wait)";
  return "";
}

// "" when hit counts never fall as capacity grows; else where they first do.
std::string monotone_note(const std::vector<PlanPoint>& curve, const PlanReport& r, const char* tier) {
  for (std::size_t i = 1; i < curve.size(); ++i) {
    if (curve[i].blocks_hit < curve[i - 1].blocks_hit) {
      return absl::StrFormat("NOT monotone: the hit rate falls from %.2f%% at %s %s to %.2f%% at %s",
                             r.rate(curve[i - 1].blocks_hit) * 100, tier, format_size(curve[i - 1].bytes),
                             r.rate(curve[i].blocks_hit) * 100, format_size(curve[i].bytes));
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<PlanReport> run_plan(TraceReader& trace, const PlanOptions& options) {
  if (!(options.target > 0 && options.target <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("target must be in (0, 1], got ", options.target));
  }
  if (options.points < 2 || options.g3_points < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("points must be >= 2, got ", options.points, " (G2) and ", options.g3_points, " (G3)"));
  }
  ReplayOptions base = options.base;
  base.data = false;
  base.progress = false;
  base.optimal = false;
  base.unlimited_g1 = false;
  base.timing = ReplayTiming::kFast;
  base.events = nullptr;
  base.on_manager = nullptr;
  KvbmConfig& config = base.config;
  if (!config.g4.endpoints.empty() || config.g4.num_blocks != 0 || config.g4.bytes != 0) {
    return absl::InvalidArgumentError("kvbm plan plans G2 and G3 only: leave g4.* unset");
  }
  config.g2.num_blocks = config.g2.bytes = 0;
  config.g3.num_blocks = config.g3.bytes = 0;
  if (absl::Status s = config.validate(); !s.ok()) return s;

  PlanReport r;
  r.trace = base.trace_name;
  r.model = options.model_name;
  if (options.base.model.shape != ModelSpec::Shape::kBlockBytes && options.base.model.bytes_per_block() != 0) {
    r.model_formula = options.base.model.formula();
  }
  r.bytes_per_block = config.model.bytes_per_block();
  r.block_tokens = base.block_tokens;
  r.g1_blocks = config.tier_blocks(CacheLevel::kG1);
  r.config = config;
  r.target = options.target;
  r.threads = options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());

  const auto load_start = Clock::now();
  auto read = read_requests(trace);
  if (!read.ok()) return read.status();
  const std::vector<TraceRequest>& requests = *read;
  r.load_seconds = seconds_since(load_start);

  const auto start = Clock::now();
  std::vector<std::vector<SequenceHash>> hashes;
  hashes.reserve(requests.size());
  absl::flat_hash_set<std::uint64_t> distinct;
  for (const TraceRequest& req : requests) {
    hashes.push_back(req.blocks);
    r.blocks_total += req.blocks.size();
    for (SequenceHash h : req.blocks) distinct.insert(h.value());
  }
  r.requests = requests.size();
  r.distinct_blocks = distinct.size();
  const std::uint64_t bpb = r.bytes_per_block;

  // The G2 curve: the stack pass where it applies, else replays.
  std::optional<G2HitCurve> pass;
  r.method_reason = pass_blocker(config);
  if (r.method_reason.empty()) {
    const auto pass_start = Clock::now();
    auto computed = G2HitCurve::compute(hashes, r.g1_blocks);
    r.pass_seconds = seconds_since(pass_start);
    if (computed.ok()) {
      pass = *std::move(computed);
    } else if (absl::IsFailedPrecondition(computed.status())) {
      r.method_reason = std::string(computed.status().message());
    } else {
      return computed.status();
    }
  }
  r.method = pass ? "stack pass" : "replays";
  const auto reaches = [&](std::uint64_t hits) {
    return static_cast<double>(hits) >= options.target * static_cast<double>(r.attainable_hits) - 1e-9;
  };
  if (pass) {
    r.pass_deviations = pass->deviations();
    r.attainable_hits = pass->attainable_hits();
    r.g1_alone_hits = pass->at(0).blocks_hit;
    const std::uint64_t hi = pass->saturation_blocks();
    const std::vector<std::uint64_t> caps = log_spaced(std::max(hi / 1000, r.g1_blocks / 2), hi, options.points);
    r.curve.resize(caps.size());
    parallel_for(caps.size(), r.threads, [&](std::size_t i) { r.curve[i] = point_of(pass->at(caps[i]), bpb); });
    r.g2_saturated = r.curve.back();
    // The smallest G2, in blocks, that reaches the target: bisection on exact figures.
    if (reaches(r.g1_alone_hits)) {
      r.recommended_found = true;
      r.recommended = point_of(pass->at(0), bpb);
    } else if (reaches(r.g2_saturated.blocks_hit)) {
      r.recommended_found = true;
      std::uint64_t lo = 0, up = hi;  // lo misses the target, up reaches it
      PlanPoint best = r.g2_saturated;
      while (up - lo > 1) {
        const std::uint64_t mid = lo + (up - lo) / 2;
        PlanPoint p = point_of(pass->at(mid), bpb);
        if (reaches(p.blocks_hit)) {
          up = mid;
          best = std::move(p);
        } else {
          lo = mid;
        }
      }
      r.recommended = best;
    }
    r.recommended_exact = true;
  } else {
    std::vector<ReplayOptions> configs;
    ReplayOptions unlimited = with_capacities(base, 0, 0);
    unlimited.unlimited_g1 = true;
    configs.push_back(unlimited);
    configs.push_back(with_capacities(base, 0, 0));
    const std::vector<std::uint64_t> caps =
        log_spaced(std::max(r.distinct_blocks / 1000, r.g1_blocks / 2), r.distinct_blocks, options.points);
    for (std::uint64_t c : caps) configs.push_back(with_capacities(base, c, 0));
    auto reports = replay_all(requests, configs, r.threads);
    if (!reports.ok()) return reports.status();
    r.attainable_hits = (*reports)[0].blocks_hit;
    r.g1_alone_hits = (*reports)[1].blocks_hit;
    for (std::size_t i = 2; i < reports->size(); ++i) r.curve.push_back(point_of((*reports)[i], CacheLevel::kG2, bpb));
    r.g2_saturated = r.curve.back();
    for (const PlanPoint& p : r.curve) {
      if (reaches(p.blocks_hit)) {
        r.recommended_found = true;
        r.recommended = p;
        break;
      }
    }
  }
  if (!r.recommended_found) r.recommended = r.g2_saturated;

  // The G3 curve behind the recommended G2: replays.
  if (options.g3) {
    const std::uint64_t g2 = std::max<std::uint64_t>(1, r.recommended.blocks);
    std::vector<ReplayOptions> configs;
    for (std::uint64_t c : log_spaced(g2, std::max(g2, r.distinct_blocks), options.g3_points)) {
      configs.push_back(with_capacities(base, g2, c));
    }
    auto reports = replay_all(requests, configs, r.threads);
    if (!reports.ok()) return reports.status();
    for (const ReplayReport& rep : *reports) r.g3_curve.push_back(point_of(rep, CacheLevel::kG3, bpb));
  }
  r.plan_seconds = seconds_since(start);

  // One replay at the recommended G2, timed beside the plan, and a check of the plan's figure.
  SharedTrace again(requests);
  auto check = run_replay(again, with_capacities(base, r.recommended.blocks, 0));
  if (!check.ok()) return check.status();
  r.replay_seconds = check->seconds;
  r.replay_blocks_hit = check->blocks_hit;
  if (check->blocks_hit != r.recommended.blocks_hit) {
    return absl::InternalError(
        absl::StrCat("the plan's ", r.recommended.blocks_hit, " blocks hit at G2 = ", r.recommended.blocks,
                     " blocks differ from the replay's ", check->blocks_hit, " (", r.recommended.source, ")"));
  }
  return r;
}

namespace {

std::string pct(double x) { return absl::StrFormat("%.2f%%", x * 100); }

std::string blocks_and_bytes(const PlanPoint& p) {
  return absl::StrCat(format_size(p.bytes), " (", p.blocks, " blocks)");
}

}  // namespace

std::string format_plan_text(const PlanReport& r) {
  const KvbmConfig& c = r.config;
  std::string out = absl::StrCat("kvbm plan: ", r.trace, "\n");
  absl::StrAppend(&out, absl::StrFormat("  %d requests, %d block references (%d distinct), %d tokens per block\n",
                                        r.requests, r.blocks_total, r.distinct_blocks, r.block_tokens));
  absl::StrAppend(&out, "  model ", r.model, ", bytes per block",
                  r.model_formula.empty() ? absl::StrCat(": ", format_size(r.bytes_per_block))
                                          : absl::StrCat(":\n    ", r.model_formula),
                  "\n  G1 ", format_size(r.g1_blocks * r.bytes_per_block), " = ", r.g1_blocks, " blocks, fixed\n");
  absl::StrAppend(&out, "settings that change the answer, and how to change them\n");
  const bool one_policy = c.g1.eviction == c.g2.eviction && c.g2.eviction == c.g3.eviction;
  absl::StrAppend(
      &out, absl::StrFormat("  %-17s%-38s%s\n", "eviction",
                            one_policy ? absl::StrCat(policy_name(c.g1.eviction), " in every tier")
                                       : absl::StrCat(policy_name(c.g1.eviction), " (G1), ", policy_name(c.g2.eviction),
                                                      " (G2), ", policy_name(c.g3.eviction), " (G3)"),
                            "--eviction P, --set g2.eviction=P"));
  absl::StrAppend(&out, absl::StrFormat("  %-17s%-38s%s\n", "offload",
                                        c.offload.g1_to_g2 == c.offload.g2_to_g3
                                            ? offload_name(c.offload.g1_to_g2)
                                            : absl::StrCat(offload_name(c.offload.g1_to_g2), " > G2, ",
                                                           offload_name(c.offload.g2_to_g3), " > G3"),
                                        "--set offload.g1_to_g2=write_back"));
  const bool filter_on = c.offload.g3_min_frequency > 1;
  absl::StrAppend(
      &out, absl::StrFormat(
                "  %-17s%-38s%s\n", "frequency filter",
                absl::StrCat(filter_on ? "on" : "off", " (offload.g3_min_frequency=", c.offload.g3_min_frequency, ")"),
                filter_on ? "--set offload.g3_min_frequency=0" : "--set offload.g3_min_frequency=2"));
  absl::StrAppend(&out, absl::StrFormat("  %-17s%-38s%s\n", "block tokens", absl::StrCat(r.block_tokens),
                                        "--block-tokens N (the trace's own unit)"));
  absl::StrAppend(&out, absl::StrFormat("  %-17s%-38s%s\n", "bytes per block", format_size(r.bytes_per_block),
                                        "--model NAME, --bytes-per-block SIZE"));
  absl::StrAppend(&out, "hit rate = blocks hit / blocks referenced (a request hits its cached prefix)\n");
  absl::StrAppend(&out, absl::StrFormat("  %-16s%8s  an unlimited cache: every block seen before is kept\n",
                                        "attainable", pct(r.rate(r.attainable_hits))));
  absl::StrAppend(&out, absl::StrFormat("  %-16s%8s  G2 = G3 = 0\n", "G1 alone", pct(r.rate(r.g1_alone_hits))));
  absl::StrAppend(&out, absl::StrFormat("  %-16s%8s  from G2 = %s on, nothing changes\n", "G2 unlimited",
                                        pct(r.rate(r.g2_saturated.blocks_hit)), blocks_and_bytes(r.g2_saturated)));
  absl::StrAppend(&out,
                  absl::StrFormat("  %-16s%8s  %.0f%% of attainable\n", "target", pct(r.goal_rate()), r.target * 100));
  std::size_t from_pass = 0;
  for (const PlanPoint& p : r.curve) from_pass += p.source == "stack pass" ? 1 : 0;
  absl::StrAppend(
      &out, "G2 curve behind G1 ", format_size(r.g1_blocks * r.bytes_per_block), " (", r.curve.size(), " points, ",
      r.method == "stack pass"
          ? absl::StrCat("stack pass: ", from_pass, " read off it, ", r.curve.size() - from_pass, " re-simulated")
          : absl::StrCat(r.curve.size(), " replays on ", r.threads, " threads"),
      ")\n");
  if (r.method != "stack pass")
    absl::StrAppend(&out, "  replays, not the stack pass, because\n    ", r.method_reason, "\n");
  absl::StrAppend(&out, absl::StrFormat("  %12s %10s %9s %14s %9s %9s  %s\n", "G2 size", "G2 blocks", "hit rate",
                                        "of attainable", "G1 hits", "G2 hits", "source"));
  for (const PlanPoint& p : r.curve) {
    absl::StrAppend(&out, absl::StrFormat("  %12s %10d %9s %13.1f%% %9d %9d  %s\n", format_size(p.bytes), p.blocks,
                                          pct(r.rate(p.blocks_hit)),
                                          r.attainable_hits ? 100.0 * p.blocks_hit / r.attainable_hits : 0.0, p.g1_hits,
                                          p.g2_hits, p.source));
  }
  const std::string note = monotone_note(r.curve, r, "G2");
  absl::StrAppend(&out, "  ", note.empty() ? "the curve is monotone" : note, "\n");
  if (r.recommended_found) {
    absl::StrAppend(&out, "recommended G2: ", blocks_and_bytes(r.recommended), " gives ",
                    pct(r.rate(r.recommended.blocks_hit)),
                    absl::StrFormat(" = %.1f%% of attainable\n",
                                    r.attainable_hits ? 100.0 * r.recommended.blocks_hit / r.attainable_hits : 0.0));
    absl::StrAppend(&out, r.recommended_exact ? "  the smallest G2, to the block, that reaches the target\n"
                                              : "  the smallest G2 of the curve that reaches the target\n");
  } else {
    absl::StrAppend(&out, "recommended G2: none reaches the target behind this G1; the most G2 gives is ",
                    pct(r.rate(r.g2_saturated.blocks_hit)), " (", format_size(r.g2_saturated.bytes), ")\n");
  }
  if (!r.g3_curve.empty()) {
    absl::StrAppend(&out, "G3 curve behind G1 ", format_size(r.g1_blocks * r.bytes_per_block), " + G2 ",
                    format_size(r.recommended.bytes), " (", r.g3_curve.size(), " replays on ", r.threads,
                    " threads)\n");
    absl::StrAppend(&out, absl::StrFormat("  %12s %10s %9s %14s %9s %9s %9s\n", "G3 size", "G3 blocks", "hit rate",
                                          "of attainable", "gain (pt)", "G2 hits", "G3 hits"));
    const double base = r.rate(r.recommended.blocks_hit);
    for (const PlanPoint& p : r.g3_curve) {
      absl::StrAppend(&out, absl::StrFormat("  %12s %10d %9s %13.1f%% %+9.2f %9d %9d\n", format_size(p.bytes), p.blocks,
                                            pct(r.rate(p.blocks_hit)),
                                            r.attainable_hits ? 100.0 * p.blocks_hit / r.attainable_hits : 0.0,
                                            (r.rate(p.blocks_hit) - base) * 100, p.g2_hits, p.g3_hits));
    }
    const std::string g3_note = monotone_note(r.g3_curve, r, "G3");
    absl::StrAppend(&out, "  ", g3_note.empty() ? "the curve is monotone" : g3_note, "\n");
    const PlanPoint& top = r.g3_curve.back();
    absl::StrAppend(&out,
                    absl::StrFormat("G3 adds %+.2f points (%s to %s) at %s\n", (r.rate(top.blocks_hit) - base) * 100,
                                    pct(base), pct(r.rate(top.blocks_hit)), format_size(top.bytes)));
    const double full_gain = r.rate(top.blocks_hit) - base;
    for (const PlanPoint& p : r.g3_curve) {
      if (full_gain <= 0 || r.rate(p.blocks_hit) - base < 0.9 * full_gain) continue;
      absl::StrAppend(&out, "  90% of that gain from G3 = ", format_size(p.bytes), " (", p.blocks,
                      " blocks) on, the smallest such point of the curve\n");
      break;
    }
  }
  absl::StrAppend(&out, absl::StrFormat("time: plan %.3f s (stack pass %.3f s, %d threads; reading the trace %.3f s "
                                        "more)\n",
                                        r.plan_seconds, r.pass_seconds, r.threads, r.load_seconds));
  absl::StrAppend(&out, absl::StrFormat("      one replay %.3f s (--no-data at the recommended G2: %d blocks hit, "
                                        "as planned)\n",
                                        r.replay_seconds, r.replay_blocks_hit));
  return out;
}

namespace {

// `extra`: more members, each starting with a comma.
void append_point_json(std::string* out, const PlanReport& r, const PlanPoint& p, const char* tier,
                       const std::string& extra = "") {
  absl::StrAppend(out, "{\"", tier, "_bytes\":", p.bytes, ",\"", tier, "_blocks\":", p.blocks,
                  absl::StrFormat(",\"hit_rate\":%.6f", r.rate(p.blocks_hit)), ",\"blocks_hit\":", p.blocks_hit,
                  ",\"g1_hits\":", p.g1_hits, ",\"g2_hits\":", p.g2_hits, ",\"g3_hits\":", p.g3_hits,
                  ",\"source\":", json_string(p.source), extra, "}");
}

void append_curve_json(std::string* out, const PlanReport& r, const std::vector<PlanPoint>& curve, const char* tier) {
  absl::StrAppend(out, "[");
  for (std::size_t i = 0; i < curve.size(); ++i) {
    if (i) absl::StrAppend(out, ",");
    append_point_json(out, r, curve[i], tier);
  }
  absl::StrAppend(out, "]");
}

}  // namespace

std::string format_plan_json(const PlanReport& r) {
  const KvbmConfig& c = r.config;
  std::string out = absl::StrCat("{\"trace\":", json_string(r.trace), ",\"model\":", json_string(r.model),
                                 ",\"bytes_per_block\":", r.bytes_per_block, ",\"block_tokens\":", r.block_tokens,
                                 ",\"requests\":", r.requests, ",\"blocks_total\":", r.blocks_total,
                                 ",\"distinct_blocks\":", r.distinct_blocks, ",\"g1_blocks\":", r.g1_blocks,
                                 ",\"g1_bytes\":", r.g1_blocks * r.bytes_per_block);
  absl::StrAppend(&out, ",\"hit_rate_is\":\"blocks hit / blocks referenced\"",
                  absl::StrFormat(",\"attainable_hit_rate\":%.6f", r.rate(r.attainable_hits)),
                  ",\"attainable_blocks_hit\":", r.attainable_hits,
                  ",\"attainable_is\":\"unlimited cache (kvbm replay --g1-blocks unlimited)\"",
                  absl::StrFormat(",\"g1_alone_hit_rate\":%.6f,\"target\":%.6f,\"target_hit_rate\":%.6f",
                                  r.rate(r.g1_alone_hits), r.target, r.goal_rate()));
  absl::StrAppend(&out, ",\"settings\":{\"g1_eviction\":", json_string(policy_name(c.g1.eviction)),
                  ",\"g2_eviction\":", json_string(policy_name(c.g2.eviction)),
                  ",\"g3_eviction\":", json_string(policy_name(c.g3.eviction)),
                  ",\"offload_g1_to_g2\":", json_string(offload_name(c.offload.g1_to_g2)),
                  ",\"offload_g2_to_g3\":", json_string(offload_name(c.offload.g2_to_g3)),
                  ",\"g3_min_frequency\":", c.offload.g3_min_frequency, ",\"block_tokens\":", r.block_tokens, "}");
  absl::StrAppend(&out, ",\"method\":", json_string(r.method), ",\"method_reason\":", json_string(r.method_reason),
                  ",\"pass_deviations\":", r.pass_deviations, ",\"curve\":");
  append_curve_json(&out, r, r.curve, "g2");
  const std::string note = monotone_note(r.curve, r, "G2");
  absl::StrAppend(&out, ",\"monotone\":", note.empty() ? "true" : "false", ",\"recommended\":");
  append_point_json(&out, r, r.recommended, "g2",
                    absl::StrCat(",\"reaches_target\":", r.recommended_found ? "true" : "false",
                                 ",\"exact_smallest\":", r.recommended_exact ? "true" : "false",
                                 absl::StrFormat(",\"share_of_attainable\":%.6f",
                                                 r.attainable_hits ? static_cast<double>(r.recommended.blocks_hit) /
                                                                         static_cast<double>(r.attainable_hits)
                                                                   : 0.0)));
  absl::StrAppend(&out, ",\"g2_saturated\":");
  append_point_json(&out, r, r.g2_saturated, "g2");
  absl::StrAppend(&out, ",\"g3_curve\":");
  append_curve_json(&out, r, r.g3_curve, "g3");
  if (!r.g3_curve.empty()) {
    absl::StrAppend(
        &out, ",\"g3_monotone\":", monotone_note(r.g3_curve, r, "G3").empty() ? "true" : "false",
        absl::StrFormat(",\"g3_gain\":%.6f", r.rate(r.g3_curve.back().blocks_hit) - r.rate(r.recommended.blocks_hit)));
  }
  absl::StrAppend(&out,
                  absl::StrFormat(",\"plan_seconds\":%.6f,\"pass_seconds\":%.6f,\"replay_seconds\":%.6f,"
                                  "\"load_seconds\":%.6f,\"threads\":%d",
                                  r.plan_seconds, r.pass_seconds, r.replay_seconds, r.load_seconds, r.threads),
                  ",\"replay_blocks_hit\":", r.replay_blocks_hit, "}");
  return out;
}

}  // namespace kvbm
