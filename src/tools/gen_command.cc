// `kvbm gen`: writes a seeded synthetic workload (kvbm/replay/generator.h) as a JSONL trace that
// `kvbm replay --trace` (or any Mooncake-trace tool) reads back.
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "kvbm/core/model_config.h"
#include "kvbm/replay/generator.h"
#include "kvbm/replay/trace.h"
#include "tools/commands.h"

namespace kvbm::tools {
namespace {

struct GenArgs {
  std::string preset = "default";
  std::uint64_t seed = 1;
  std::optional<std::uint64_t> requests;
  std::optional<double> rate;
  std::optional<std::uint32_t> block_tokens;
  std::string format = "mooncake";
  std::string out;
};

// Passes a reader's requests through, counting them for the summary line.
class CountingReader final : public TraceReader {
 public:
  explicit CountingReader(std::unique_ptr<TraceReader> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<std::optional<TraceRequest>> next() override {
    absl::StatusOr<std::optional<TraceRequest>> request = inner_->next();
    if (request.ok() && request->has_value()) {
      ++requests_;
      blocks_ += (*request)->blocks.size();
      tokens_ += (*request)->input_tokens;
    }
    return request;
  }
  absl::Status rewind() override { return inner_->rewind(); }

  std::uint64_t requests_ = 0;
  std::uint64_t blocks_ = 0;
  std::uint64_t tokens_ = 0;

 private:
  std::unique_ptr<TraceReader> inner_;
};

int run_gen(const GenArgs& args) {
  absl::StatusOr<WorkloadOptions> options = workload_preset(args.preset);
  if (!options.ok()) {
    std::cerr << "kvbm gen: --preset: " << options.status().message() << "\n";
    return 2;
  }
  const TraceFormat format = args.format == "tokens" ? TraceFormat::kTokens : TraceFormat::kMooncake;
  options->seed = args.seed;
  options->tokens = format == TraceFormat::kTokens;
  if (args.requests) options->num_requests = *args.requests;
  if (args.rate) options->rate = *args.rate;
  if (args.block_tokens) options->block_tokens = *args.block_tokens;
  if (absl::Status status = validate_workload(*options); !status.ok()) {
    std::cerr << "kvbm gen: " << status.message() << "\n";
    return 2;
  }
  CountingReader reader(generate_trace(*options));
  if (absl::Status status = write_trace(reader, args.out, format); !status.ok()) {
    std::cerr << "kvbm gen: " << status.message() << "\n";
    return 1;
  }
  const std::uint32_t block_tokens = options->block_tokens != 0 ? options->block_tokens
                                     : options->tokens          ? kDefaultTokenBlockTokens
                                                                : kDefaultHashBlockTokens;
  std::cout << "kvbm gen: wrote " << reader.requests_ << " requests (" << reader.blocks_ << " block references, "
            << reader.tokens_ << " prompt tokens, " << block_tokens << " tokens per block) to " << args.out << " as "
            << args.format << "\n";
  return 0;
}

}  // namespace

void add_gen_command(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "gen",
      "Write a seeded synthetic workload (shared system prompts, multi-turn sessions, one-off prompts) "
      "as a JSONL trace");
  auto args = std::make_shared<GenArgs>();
  cmd->add_option("--preset", args->preset,
                  "Workload mix: default, system_prompt_heavy, session_heavy, one_off_heavy, shared_documents, "
                  "agent_loop, one_off_bursts, popularity_drift")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Random seed; the same seed gives the same trace")->capture_default_str();
  cmd->add_option("--requests", args->requests, "Number of requests (preset default 2000)")
      ->check(CLI::Range(std::uint64_t{0}, kMaxWorkloadRequests));
  cmd->add_option("--rate", args->rate, "Mean arrivals per second (Poisson; preset default 20)");
  cmd->add_option("--block-tokens", args->block_tokens,
                  "Tokens per block (default 512 for mooncake, 16 for tokens; read a tokens trace with the same "
                  "value)")
      ->check(CLI::Range(std::uint32_t{1}, ModelConfig::kMaxPageSize));
  cmd->add_option("--format", args->format, "Trace format: mooncake (hash_ids) or tokens (token ids)")
      ->check(CLI::IsMember({"mooncake", "tokens"}))
      ->capture_default_str();
  cmd->add_option("--out", args->out, "Output JSONL file")->required();
  cmd->callback([args, exit_code] { *exit_code = run_gen(*args); });
}

}  // namespace kvbm::tools
