// `kvbm replay`: replays a request trace (a Mooncake or token JSONL file, or the built-in generated
// workload) through a real tier stack (or metadata only with --no-data) and reports hit rates, bytes
// moved and latencies; `--sweep` tries several capacities of one tier. See kvbm/replay/replay.h.
//
// Configuration precedence, lowest first: replay's defaults (Llama-3.1-8B, G1 1024 + G2 4096 + G3 16384
// blocks) < --config FILE (which replaces all the defaults but the model when it names none) < KVBM_*
// environment < flags < --set key=value. Every size is of the model's real block (docs/models.md); data
// mode stores 1/--scale of each block's bytes, which changes no hit. Bad input (flags, configuration, trace)
// exits with 2 and a message naming the flag or file:line; failed runs exit with 1 (tools/commands.h).
#include <absl/status/statusor.h>
#include <absl/strings/ascii.h>
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "kvbm/core/size.h"
#include "kvbm/events/event_manager.h"
#include "kvbm/events/event_metrics.h"
#include "kvbm/events/events_from_config.h"
#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/replay/compare.h"
#include "kvbm/replay/generator.h"
#include "kvbm/replay/model_spec.h"
#include "kvbm/replay/replay.h"
#include "kvbm/replay/sweep.h"
#include "kvbm/replay/trace.h"
#include "tools/commands.h"
#include "tools/model_flags.h"
#include "tools/trace_source.h"

namespace kvbm::tools {
namespace {

constexpr double kDefaultScale = 1024;
// Data mode never stores less than this of a block (or the whole block when it is smaller): checks that
// verify a few bytes would prove little.
constexpr std::uint64_t kMinStoredBytes = 4096;

struct ReplayFlags : TraceSourceFlags, ModelFlags {
  bool no_data = false;
  std::string config;
  std::vector<std::string> sets;  // --set key=value, applied last
  std::string g1_blocks, g1_bytes, g2_blocks, g2_bytes, g3_blocks, g3_bytes, g3_dir;
  std::string layout, eviction, offload;
  std::optional<double> scale;
  std::string timing = "fast";
  double speed = 1.0;
  bool flush_between = false;
  bool json = false;
  std::string sweep;
  std::string compare;
  std::string out_csv = "kvbm_sweep.csv";
  std::string out_svg = "kvbm_sweep.svg";
  // Events (issue 26): each flag is its events.* key, set before --set.
  std::string events;
  std::string events_replay;
  std::string events_topic;
  std::string events_rank;
  std::string events_format;
  std::string events_nats;
  std::optional<std::uint32_t> metrics_port;  // metrics (issue 8/8)
};

// A bad flag: the message names it; exit code 2.
struct FlagError {
  std::string message;
};

absl::Status set_key(KvbmConfig& c, const std::string& flag, const std::string& key, const std::string& value) {
  if (absl::Status s = c.set(key, value); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", s.message()));
  }
  return absl::OkStatus();
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  return static_cast<bool>(f);
}

// Non-blank lines of a file: the progress bar's total for a file trace.
std::uint64_t count_lines(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::uint64_t n = 0;
  while (std::getline(f, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) ++n;
  }
  return n;
}

// Everything that can go wrong with the flags, resolved into replay options. Status = bad flag.
absl::Status build_options(const ReplayFlags& f, ReplayOptions& o, TraceSource& source) {
  // A model file first: its page_size is the block tokens' default.
  auto model_file = read_model_file(f);
  if (!model_file.ok()) return model_file.status();
  std::optional<std::uint32_t> block_tokens = f.block_tokens;
  if (!block_tokens && *model_file && (*model_file)->page_size) block_tokens = (*model_file)->page_size;
  // Trace source.
  TraceSourceFlags source_flags = f;
  source_flags.block_tokens = block_tokens;
  auto resolved = resolve_trace_source(source_flags);
  if (!resolved.ok()) return resolved.status();
  source = *std::move(resolved);
  o.block_tokens = source.block_tokens;
  o.trace_name = source.name;
  if (f.trace.empty()) o.expected_requests = source.workload.num_requests;

  // Configuration: replay's defaults, or the file.
  KvbmConfig& c = o.config;
  const bool from_file = !f.config.empty();
  if (from_file) {
    auto loaded = KvbmConfig::from_toml_file(f.config);
    if (!loaded.ok()) return absl::InvalidArgumentError(absl::StrCat("--config: ", loaded.status().message()));
    c = *loaded;
  } else {
    c.g1 = TierConfig{.num_blocks = 1024};
    c.g2.num_blocks = 4096;
    c.g3.num_blocks = 16384;
  }
  // KVBM_* environment over the file (or replay's defaults); the flags below and --set override it.
  if (absl::Status env = apply_environment(c, "kvbm replay"); !env.ok()) return env;
  // Model: --bytes-per-block (an unnamed block size), or a preset or model file (default Llama-3.1-8B
  // unless the config file gives a model) with the dimension flags over it; page = block tokens.
  auto model = resolve_model(f, *model_file, o.block_tokens, /*default_preset=*/!from_file);
  if (!model.ok()) return model.status();
  if (*model) {
    o.model = **model;
  } else {
    c.model.page_size = o.block_tokens;
    o.model = ModelSpec::from_geometry(c.model, "config", absl::StrCat("--config ", f.config));
  }
  c.model = o.model.geometry;
  // Data mode stores 1/scale of each block (at least kMinStoredBytes, at most the whole block).
  const double scale = f.scale.value_or(kDefaultScale);
  if (!(scale >= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--scale must be >= 1 (data mode stores 1/scale of each block; 1 = whole blocks), got ", scale));
  }
  {
    const std::uint64_t real = c.model.bytes_per_block();
    const auto target = static_cast<std::uint64_t>(static_cast<double>(real) / scale);
    o.stored_bytes_per_block = std::clamp(target, std::min(real, kMinStoredBytes), real);
  }

  // Tiers.
  if (!f.g1_blocks.empty()) {
    const std::string v = absl::AsciiStrToLower(f.g1_blocks);
    if (v == "unlimited" || v == "0") {
      o.unlimited_g1 = true;
    } else if (absl::Status s = set_key(c, "--g1-blocks (a block count, 0 or unlimited)", "g1.num_blocks", v);
               !s.ok()) {
      return s;
    }
  }
  struct TierFlag {
    const std::string& value;
    const char* flag;
    const char* key;
  };
  for (const TierFlag& t :
       {TierFlag{f.g1_bytes, "--g1-bytes", "g1.bytes"}, TierFlag{f.g2_blocks, "--g2-blocks", "g2.num_blocks"},
        TierFlag{f.g2_bytes, "--g2-bytes", "g2.bytes"}, TierFlag{f.g3_blocks, "--g3-blocks", "g3.num_blocks"},
        TierFlag{f.g3_bytes, "--g3-bytes", "g3.bytes"}, TierFlag{f.g3_dir, "--g3-dir", "g3.directory"}}) {
    if (t.value.empty()) continue;
    if (absl::Status s = set_key(c, t.flag, t.key, t.value); !s.ok()) return s;
  }
  if (!f.layout.empty()) {
    for (const char* key : {"g1.layout", "g2.layout"}) {
      if (absl::Status s = set_key(c, "--layout", key, f.layout); !s.ok()) return s;
    }
  }
  o.optimal = f.eviction == "optimal";
  if (!f.eviction.empty() && !o.optimal) {
    for (const char* key : {"g1.eviction", "g2.eviction", "g3.eviction"}) {
      if (absl::Status s = set_key(c, "--eviction", key, f.eviction); !s.ok()) return s;
    }
  }
  if (!f.offload.empty()) {
    for (const char* key : {"offload.g1_to_g2", "offload.g2_to_g3"}) {
      if (absl::Status s = set_key(c, "--offload", key, f.offload); !s.ok()) return s;
    }
  }

  o.data = !f.no_data && !o.optimal;
  if (f.timing == "trace") {
    o.timing = ReplayTiming::kTrace;
  } else if (f.timing != "fast") {
    return absl::InvalidArgumentError(absl::StrCat("--timing must be fast or trace, got '", f.timing, "'"));
  }
  if (!(f.speed > 0)) return absl::InvalidArgumentError(absl::StrCat("--speed must be > 0, got ", f.speed));
  o.speed = f.speed;
  o.flush_between = f.flush_between;
  if (f.metrics_port) {  // metrics (issue 8/8): served by the replaying manager
    if (o.optimal)
      return absl::InvalidArgumentError("--metrics-port needs a replaying manager (not --eviction optimal)");
    if (absl::Status s = set_key(c, "--metrics-port", "metrics.port", absl::StrCat(*f.metrics_port)); !s.ok()) return s;
  }
  for (const auto& [flag, key, value] :
       {std::tuple<const char*, const char*, const std::string&>{"--events", "events.endpoint", f.events},
        {"--events-replay", "events.replay_endpoint", f.events_replay},
        {"--events-topic", "events.topic", f.events_topic},
        {"--events-rank", "events.data_parallel_rank", f.events_rank},
        {"--events-format", "events.batch_format", f.events_format},
        {"--events-nats", "events.nats_url", f.events_nats}}) {
    if (value.empty()) continue;
    if (absl::Status s = set_key(c, flag, key, value); !s.ok()) return s;
  }
  // A model's block may be larger than the default cap on bytes in flight (Llama-3.1-405B at 1024 tokens
  // is 504 MiB): a link copies at least one block per batch anyway, so the cap rises to one block rather
  // than failing the plan. An explicit --set below one block is still refused by validate().
  c.offload.max_bytes_in_flight = std::max(c.offload.max_bytes_in_flight, c.model.bytes_per_block());
  // --set key=value: the last layer (defaults < --config < KVBM_* < flags < --set).
  {
    std::vector<absl::Status> set_errors;
    c.apply_overrides(f.sets, &set_errors);
    if (!set_errors.empty()) return set_errors.front();
  }
  if (!o.optimal) {
    if (absl::Status s = c.validate(); !s.ok())
      return absl::InvalidArgumentError(absl::StrCat("configuration: ", s.message()));
  }
  return absl::OkStatus();
}

int run(const ReplayFlags& f) {
  ReplayOptions options;
  TraceSource source;
  if (absl::Status s = build_options(f, options, source); !s.ok()) {
    std::fprintf(stderr, "kvbm replay: %s\n", std::string(s.message()).c_str());
    return kExitBadInput;
  }
  std::optional<SweepSpec> sweep;
  if (!f.sweep.empty()) {
    auto spec = parse_sweep(f.sweep);
    if (!spec.ok()) {
      std::fprintf(stderr, "kvbm replay: %s\n", std::string(spec.status().message()).c_str());
      return kExitBadInput;
    }
    sweep = *spec;
  }

  std::unique_ptr<TraceReader> trace = open_trace_source(source);
  if (!f.compare.empty()) {
    auto policies = parse_policy_list(f.compare);
    if (!policies.ok()) {
      std::fprintf(stderr, "kvbm replay: %s\n", std::string(policies.status().message()).c_str());
      return kExitBadInput;
    }
    if (!sweep || sweep->level != CacheLevel::kG1) {
      std::fprintf(stderr, "kvbm replay: --compare needs --sweep g1=BLOCKS,... (metadata only)\n");
      return kExitBadInput;
    }
    auto c = run_comparison(*trace, options, *policies, *sweep);
    if (!c.ok()) {
      std::fprintf(stderr, "kvbm replay: %s\n", std::string(c.status().message()).c_str());
      return exit_code_for(c.status());
    }
    if (!write_file(f.out_csv, comparison_csv(*c)) || !write_file(f.out_svg, comparison_svg(*c))) {
      std::fprintf(stderr, "kvbm replay: cannot write %s or %s\n", f.out_csv.c_str(), f.out_svg.c_str());
      return kExitFailure;
    }
    if (f.json) {
      std::printf("%s\n", comparison_json(*c).c_str());
    } else {
      std::printf("%s\nwrote %s\nwrote %s\n", comparison_table(*c).c_str(), f.out_csv.c_str(), f.out_svg.c_str());
    }
    return 0;
  }
  options.progress = isatty(STDERR_FILENO) != 0 && !sweep;
  // The progress bar's total: a regular file is counted first; a pipe can be read only once.
  if (options.progress && !f.trace.empty() && f.trace != "-" && std::filesystem::is_regular_file(f.trace)) {
    options.expected_requests = count_lines(f.trace);
  }

  // Events: the events.* keys (--events and the --events-* flags set them), checked and bound here,
  // before any request is replayed.
  std::unique_ptr<EventManager> events;
  if (options.config.events.enabled()) {
    auto em = make_event_manager(options.config.events);
    if (!em.ok()) {
      std::fprintf(stderr, "kvbm replay: %s%s\n",
                   f.events.empty() ? "" : "--events: ", std::string(em.status().message()).c_str());
      return em.status().code() == absl::StatusCode::kInvalidArgument ? kExitBadInput : kExitFailure;
    }
    events = *std::move(em);
    options.events = events.get();
  }

  // Metrics (issue 8/8): the replaying manager serves GET /metrics when metrics.port != 0 (--metrics-port);
  // the event pipeline's counters join its registry.
  options.on_manager = [&events](KvBlockManager& m) {
    if (events) metrics::add_event_collector(m.metrics(), *events);
    if (m.metrics_port() != 0) {
      std::fprintf(stderr, "kvbm replay: metrics on http://%s:%u/metrics\n", m.config().metrics.bind.c_str(),
                   static_cast<unsigned>(m.metrics_port()));
    }
  };

  if (sweep) {
    auto points = run_sweep(*trace, options, *sweep);
    if (!points.ok()) {
      std::fprintf(stderr, "kvbm replay: %s\n", std::string(points.status().message()).c_str());
      return exit_code_for(points.status());
    }
    if (!write_file(f.out_csv, sweep_csv(*sweep, *points))) {
      std::fprintf(stderr, "kvbm replay: cannot write --out-csv %s\n", f.out_csv.c_str());
      return kExitFailure;
    }
    if (!write_file(f.out_svg, sweep_svg(*sweep, *points))) {
      std::fprintf(stderr, "kvbm replay: cannot write --out-svg %s\n", f.out_svg.c_str());
      return kExitFailure;
    }
    if (f.json) {
      std::string out = "[";
      for (std::size_t i = 0; i < points->size(); ++i) {
        absl::StrAppend(&out, i ? "," : "", format_report_json((*points)[i].report));
      }
      std::printf("%s]\n", out.c_str());
    } else {
      std::printf("%s", sweep_table(*sweep, *points).c_str());
      std::printf("wrote %s\nwrote %s\n", f.out_csv.c_str(), f.out_svg.c_str());
    }
    for (const SweepPoint& p : *points) {
      if (p.report.verification_failures != 0) return kExitFailure;
    }
    return 0;
  }

  auto report = run_replay(*trace, options);
  if (!report.ok()) {
    std::fprintf(stderr, "kvbm replay: %s\n", std::string(report.status().message()).c_str());
    return exit_code_for(report.status());
  }
  if (events) {
    events->shutdown();
    const EventManagerStats st = events->stats();
    report->events_enabled = true;
    report->events_sent = st.sent;
    report->events_dropped = st.dropped;
  }
  std::printf("%s", f.json ? (format_report_json(*report) + "\n").c_str() : format_report_text(*report).c_str());
  return report->verification_failures == 0 ? 0 : 1;
}

}  // namespace

void add_replay_command(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ReplayFlags>();
  CLI::App* cmd = app.add_subcommand(
      "replay",
      "Replay a request trace through kvbm's tiers and report hit rates, bytes moved and latencies.\n"
      "With no --trace, a generated workload (--workload, default 'default') is replayed.\n"
      "What is computed (both modes, on any machine): README.md, section 'Replay semantics'.\n"
      "Every line and field of the report, sweep and comparison: docs/report.md. Models: docs/models.md.");
  add_trace_source_options(cmd, *flags);
  cmd->add_flag("--no-data", flags->no_data,
                "Identities only: every tier a pool of block identities, no bytes (fast; same hits as with bytes)");
  cmd->add_option("--config", flags->config, "TOML configuration (see `kvbm config`); flags override it");
  cmd->add_option("--set", flags->sets, "key=value configuration override, applied last (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--g1-blocks", flags->g1_blocks, "G1 capacity in blocks; 0 or 'unlimited' = every distinct block");
  cmd->add_option("--g1-bytes", flags->g1_bytes,
                  "G1 capacity as a size: real bytes of the model's blocks (e.g. 64GiB)");
  cmd->add_option("--g2-blocks", flags->g2_blocks, "G2 (host) capacity in blocks (0 = no G2)");
  cmd->add_option("--g2-bytes", flags->g2_bytes, "G2 capacity as a size: real bytes of the model's blocks");
  cmd->add_option("--g3-blocks", flags->g3_blocks, "G3 (disk) capacity in blocks (0 = no G3)");
  cmd->add_option("--g3-bytes", flags->g3_bytes, "G3 capacity as a size: real bytes of the model's blocks");
  cmd->add_option("--g3-dir", flags->g3_dir, "Directory of the G3 file");
  cmd->add_option("--layout", flags->layout, "G1/G2 layout: fully_contiguous | layer_separate");
  cmd->add_option(
      "--eviction", flags->eviction,
      "Eviction policy of every tier: lru | priority_lru | lineage | s3fifo | slru | lfu | "
      "s3fifo_prefix | slru_prefix | lfu_prefix | learned | adaptive (default); or optimal (offline optimum, "
      "metadata only)");
  cmd->add_option("--offload", flags->offload, "G1→G2 and G2→G3 offload: write_through | write_back | none");
  add_model_options(cmd, *flags);
  cmd->add_option("--scale", flags->scale,
                  "Data mode stores 1/N of each block's bytes (default 1024, at least 4 KiB; 1 = whole blocks). "
                  "Sizes and hits stay the real block's");
  cmd->add_option("--timing", flags->timing, "fast (default) | trace: honour the trace's timestamps");
  cmd->add_option("--speed", flags->speed, "--timing trace: replay this many times faster than recorded");
  cmd->add_flag("--flush-between", flags->flush_between,
                "Accepted for old scripts: every request's copies are always done before the next one");
  cmd->add_flag("--json", flags->json, "Print one JSON object instead of the text report");
  cmd->add_option("--sweep", flags->sweep, "TIER=V1,V2,...: replay at several capacities (g2=1GiB,4GiB; g1=1000,2000)");
  cmd->add_option("--compare", flags->compare,
                  "P1,P2,...: with --sweep g1=...: one table and chart of hit rate per eviction policy "
                  "(names as --eviction, optimal included), metadata only");
  cmd->add_option("--out-csv", flags->out_csv, "--sweep: CSV file (default kvbm_sweep.csv)");
  cmd->add_option("--out-svg", flags->out_svg, "--sweep: SVG chart (default kvbm_sweep.svg)");
  cmd->add_option("--events", flags->events,
                  "Publish KV events on this ZMQ PUB endpoint, e.g. tcp://*:5557 (= --set events.endpoint=E)");
  cmd->add_option("--events-replay", flags->events_replay,
                  "ZMQ ROUTER endpoint answering replay requests (= --set events.replay_endpoint=E)");
  cmd->add_option("--events-topic", flags->events_topic, "Topic frame of every event message (= events.topic)");
  cmd->add_option("--events-rank", flags->events_rank,
                  "Data-parallel rank: batches carry it, tcp ports are offset by it (= events.data_parallel_rank)");
  cmd->add_option(
      "--events-format", flags->events_format,
      "array (default: [ts, events, rank]) or map ({ts, events, data_parallel_rank}) (= events.batch_format)");
  cmd->add_option("--events-nats", flags->events_nats,
                  "Also publish on NATS: nats://HOST:PORT[,...] (= events.nats_url; subject: events.nats_subject)");
  cmd->add_option("--metrics-port", flags->metrics_port,
                  "Serve Prometheus metrics on GET /metrics at this port while replaying (= --set metrics.port=N; "
                  "address: metrics.bind)")
      ->check(CLI::Range(0, 65535));
  cmd->callback([flags, exit_code] { *exit_code = run(*flags); });
}

}  // namespace kvbm::tools
