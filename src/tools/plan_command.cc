// `kvbm plan`: how much G2 (host memory) behind a given G1 reaches a share of the attainable prefix hits,
// and what a G3 (disk) tier adds. Every figure is `kvbm replay --no-data` at that configuration; see
// kvbm/replay/plan.h and docs/planning.md.
//
// Defaults: LRU in every tier, write-through, the frequency filter off (offload.g3_min_frequency=0), the
// model's real bytes per block (no scaling). Precedence: these defaults < KVBM_* environment (read as `kvbm
// replay` reads it, unknown names warned about) < flags < --set key=value.
// Bad flags exit with 2 and a message naming the flag; failed runs exit with 1.
#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvbm/core/size.h"
#include "kvbm/replay/plan.h"
#include "tools/commands.h"
#include "tools/model_flags.h"
#include "tools/trace_source.h"

namespace kvbm::tools {
namespace {

struct PlanFlags : TraceSourceFlags, ModelFlags {
  std::string g1_bytes, g1_blocks;
  std::string eviction;  // empty: lru, unless the environment says otherwise
  std::vector<std::string> sets;
  double target = 0.8;
  bool g3 = false;
  std::uint32_t points = 30;
  std::uint32_t g3_points = 10;
  std::uint32_t threads = 0;
  bool json = false;
  std::string out_svg;
};

absl::Status flag_error(const std::string& flag, const absl::Status& s) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", s.message()));
}

// The trace (or generated workload), model, G1 and policies, resolved into plan options. Status = bad flag.
absl::Status build_options(const PlanFlags& f, PlanOptions& o, TraceSource& source) {
  ReplayOptions& base = o.base;
  // A model file's page_size is the tokens per block's default.
  auto model_file = read_model_file(f);
  if (!model_file.ok()) return model_file.status();
  TraceSourceFlags source_flags = f;
  if (!source_flags.block_tokens && *model_file) source_flags.block_tokens = (*model_file)->page_size;
  auto resolved = resolve_trace_source(source_flags);
  if (!resolved.ok()) return resolved.status();
  source = *std::move(resolved);
  base.block_tokens = source.block_tokens;
  base.trace_name = source.name;

  // Plan's defaults, then the KVBM_* environment over them (the model flags and preset below set the
  // model, as in kvbm replay).
  KvbmConfig& c = base.config;
  c.g1.eviction = c.g2.eviction = c.g3.eviction = EvictionPolicyKind::kLru;
  c.offload.g1_to_g2 = c.offload.g2_to_g3 = OffloadMode::kWriteThrough;
  c.offload.g3_min_frequency = 0;
  if (absl::Status env = apply_environment(c, "kvbm plan"); !env.ok()) return env;

  // The model's real bytes per block: page = block tokens, no scaling.
  auto model = resolve_model(f, *model_file, base.block_tokens, /*default_preset=*/true);
  if (!model.ok()) return model.status();
  base.model = **model;
  c.model = base.model.geometry;
  o.model_name =
      base.model.source == "preset" ? base.model.name : absl::StrCat(base.model.name, " (", base.model.source, ")");

  // G1 (required: the answer depends on it), policies, and --set last.
  if (f.g1_bytes.empty() == f.g1_blocks.empty()) {
    return absl::InvalidArgumentError("give G1's size: --g1-bytes SIZE (e.g. 40GiB) or --g1-blocks N, one of them");
  }
  const bool bytes_given = !f.g1_bytes.empty();
  if (absl::Status s = c.set(bytes_given ? "g1.bytes" : "g1.num_blocks", bytes_given ? f.g1_bytes : f.g1_blocks);
      !s.ok()) {
    return flag_error(bytes_given ? "--g1-bytes" : "--g1-blocks", s);
  }
  if (!f.eviction.empty()) {
    for (const char* key : {"g1.eviction", "g2.eviction", "g3.eviction"}) {
      if (absl::Status s = c.set(key, f.eviction); !s.ok()) return flag_error("--eviction", s);
    }
  }
  std::vector<absl::Status> set_errors;
  c.apply_overrides(f.sets, &set_errors);
  if (!set_errors.empty()) return set_errors.front();

  o.target = f.target;
  o.g3 = f.g3;
  o.points = f.points;
  o.g3_points = f.g3_points;
  o.threads = f.threads;
  if (!(o.target > 0 && o.target <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("--target must be in (0, 1], got ", o.target));
  }
  return absl::OkStatus();
}

int run(const PlanFlags& f) {
  PlanOptions options;
  TraceSource source;
  if (absl::Status s = build_options(f, options, source); !s.ok()) {
    std::fprintf(stderr, "kvbm plan: %s\n", std::string(s.message()).c_str());
    return kExitBadInput;
  }
  std::unique_ptr<TraceReader> trace = open_trace_source(source);
  auto report = run_plan(*trace, options);
  if (!report.ok()) {
    std::fprintf(stderr, "kvbm plan: %s\n", std::string(report.status().message()).c_str());
    return exit_code_for(report.status());
  }
  if (!f.out_svg.empty()) {
    std::ofstream svg(f.out_svg, std::ios::binary | std::ios::trunc);
    svg << plan_svg(*report);
    if (!svg) {
      std::fprintf(stderr, "kvbm plan: cannot write --out-svg %s\n", f.out_svg.c_str());
      return kExitFailure;
    }
  }
  std::printf("%s", f.json ? (format_plan_json(*report) + "\n").c_str() : format_plan_text(*report).c_str());
  if (!f.json && !f.out_svg.empty()) std::printf("wrote %s\n", f.out_svg.c_str());
  return 0;
}

}  // namespace

void add_plan_command(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<PlanFlags>();
  CLI::App* cmd = app.add_subcommand(
      "plan",
      "How much G2 (host memory) behind a given G1 reaches --target of the attainable prefix hits, and\n"
      "what a G3 (disk) tier adds (--g3). Every figure equals `kvbm replay --no-data` at that configuration.\n"
      "Defaults: LRU everywhere, write-through, frequency filter off (offload.g3_min_frequency=0), the\n"
      "model's real bytes per block. See docs/planning.md.");
  add_trace_source_options(cmd, *flags);
  add_model_options(cmd, *flags);
  cmd->add_option("--g1-bytes", flags->g1_bytes, "G1 (device) size, fixed (e.g. 40GiB); or --g1-blocks");
  cmd->add_option("--g1-blocks", flags->g1_blocks, "G1 size in blocks, fixed");
  cmd->add_option("--eviction", flags->eviction,
                  "Eviction policy of every tier (default lru; names as for kvbm replay). The one-pass curve "
                  "needs lru; other policies are replayed");
  cmd->add_option("--set", flags->sets, "key=value configuration override, applied last (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--target", flags->target, "Share of the attainable hit rate to reach (default 0.8)");
  cmd->add_flag("--g3", flags->g3, "Also the curve of hit rate against G3 size behind the recommended G2");
  cmd->add_option("--points", flags->points, "G2 curve points (default 30)")->check(CLI::Range(2, 1000));
  cmd->add_option("--g3-points", flags->g3_points, "G3 curve points (default 10)")->check(CLI::Range(2, 1000));
  cmd->add_option("--threads", flags->threads, "Replays at once (default: the machine's hardware threads)")
      ->check(CLI::Range(0u, 1024u));
  cmd->add_flag("--json", flags->json, "Print one JSON object instead of the text report");
  cmd->add_option("--out-svg", flags->out_svg, "Write the chart to this SVG file");
  cmd->callback([flags, exit_code] { *exit_code = run(*flags); });
}

}  // namespace kvbm::tools
