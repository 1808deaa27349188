// The synthetic workload generator (kvbm/replay/generator.h).
#include "kvbm/replay/generator.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kvbm/core/hashing.h"
#include "kvbm/core/model_config.h"

namespace kvbm {
namespace {

// Tokens are drawn below a Llama-3-sized vocabulary so that they look like real token ids.
constexpr std::uint32_t kVocabulary = 128256;

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// What a synthetic block holds, as one 64-bit id: equal ids mean equal blocks.
enum class ContentKind : std::uint64_t { kSystemPrompt = 1, kUnique = 2 };

// A prompt being built block by block, with its chained sequence hashes.
struct Prompt {
  std::vector<SequenceHash> blocks;
  std::vector<std::uint32_t> tokens;  // token-level only
};

class WorkloadReader final : public TraceReader {
 public:
  explicit WorkloadReader(const WorkloadOptions& options) : options_(options), status_(validate_workload(options)) {
    if (options_.block_tokens == 0) {
      options_.block_tokens = options_.tokens ? kDefaultTokenBlockTokens : kDefaultHashBlockTokens;
    }
    if (status_.ok()) reset();
  }

  absl::StatusOr<std::optional<TraceRequest>> next() override {
    if (!status_.ok()) return status_;
    if (emitted_ == options_.num_requests) return std::optional<TraceRequest>();
    const std::uint64_t index = emitted_++;
    now_ms_ += exponential(1000.0 / options_.rate);
    TraceRequest request;
    request.timestamp_ms = now_ms_;
    if (options_.burst_every != 0 && index % options_.burst_every >= options_.burst_every - options_.burst_requests) {
      Prompt prompt;
      append_unique_blocks(&prompt, draw(options_.burst_blocks));
      fill(&request, std::move(prompt));
    } else if (uniform01() < options_.one_off_fraction) {
      Prompt prompt = start_prompt();
      append_unique_blocks(&prompt, draw(options_.one_off_blocks));
      fill(&request, std::move(prompt));
    } else {
      Session& session = pick_session();
      append_unique_blocks(&session.prompt, draw(options_.new_blocks_per_turn));
      session.ready_ms = now_ms_ + exponential(options_.think_time_s * 1000.0);
      --session.turns_left;
      if (session.turns_left == 0) {
        fill(&request, std::move(session.prompt));
        std::swap(session, active_.back());
        active_.pop_back();
      } else {
        fill(&request, session.prompt);
      }
    }
    request.output_tokens = draw(options_.output_tokens);
    return std::optional<TraceRequest>(std::move(request));
  }

  absl::Status rewind() override {
    if (status_.ok()) reset();
    return status_;
  }

 private:
  struct Session {
    Prompt prompt;
    std::uint32_t turns_left = 0;
    double ready_ms = 0;
  };

  void reset() {
    rng_.seed(options_.seed);
    emitted_ = 0;
    now_ms_ = 0;
    next_unique_ = 0;
    active_.clear();
    // Zipf CDF over the system prompts (rank 1 most popular) and each prompt's blocks.
    zipf_cdf_.assign(options_.num_system_prompts, 0.0);
    double total = 0;
    for (std::uint32_t rank = 0; rank < options_.num_system_prompts; ++rank) {
      total += 1.0 / std::pow(static_cast<double>(rank + 1), options_.zipf_s);
      zipf_cdf_[rank] = total;
    }
    for (double& c : zipf_cdf_) c /= total;
    system_prompts_.assign(options_.num_system_prompts, Prompt{});
    for (std::uint32_t i = 0; i < options_.num_system_prompts; ++i) {
      const std::uint32_t length = draw(options_.system_prompt_blocks);
      for (std::uint32_t j = 0; j < length; ++j) {
        append_block(&system_prompts_[i], content_id(ContentKind::kSystemPrompt, (std::uint64_t{i} << 32) | j));
      }
    }
  }

  std::uint64_t content_id(ContentKind kind, std::uint64_t index) const {
    return splitmix64(splitmix64(options_.seed ^ static_cast<std::uint64_t>(kind)) ^ splitmix64(index));
  }

  // Appends one block whose content is named by `id`: its block hash (hash-level) or its tokens
  // (token-level, hashed as TokenBlockSequence would), chained onto the prompt's last sequence hash.
  void append_block(Prompt* prompt, std::uint64_t id) const {
    BlockHash block_hash{splitmix64(id)};
    if (options_.tokens) {
      const std::size_t start = prompt->tokens.size();
      std::uint64_t state = id;
      for (std::uint32_t t = 0; t < options_.block_tokens; ++t) {
        state = splitmix64(state);
        prompt->tokens.push_back(static_cast<std::uint32_t>(state % kVocabulary));
      }
      block_hash = compute_block_hash(std::span(prompt->tokens).subspan(start), SaltHash{0});
    }
    std::optional<SequenceHash> parent;
    if (!prompt->blocks.empty()) parent = prompt->blocks.back();
    prompt->blocks.push_back(chain_sequence_hash(parent, block_hash, SaltHash{0}));
  }

  void append_unique_blocks(Prompt* prompt, std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) append_block(prompt, content_id(ContentKind::kUnique, next_unique_++));
  }

  // A new prompt: a Zipf-chosen system prompt, or nothing.
  Prompt start_prompt() {
    if (uniform01() >= options_.system_prompt_fraction) return Prompt{};
    const double u = uniform01();
    const auto it = std::upper_bound(zipf_cdf_.begin(), zipf_cdf_.end(), u);
    const auto rank = std::min<std::size_t>(static_cast<std::size_t>(it - zipf_cdf_.begin()), zipf_cdf_.size() - 1);
    // Drift: the prompt at rank 0 moves to rank 1 and a prompt unseen for the longest comes in at rank 0.
    const std::size_t n = system_prompts_.size();
    const std::uint64_t shift = options_.drift_every == 0 ? 0 : emitted_ / options_.drift_every % n;
    return system_prompts_[(rank + n - shift) % n];
  }

  // The session whose next turn this request is: the longest-waiting ready one; else a new session when
  // there is room; else the one that will be ready first (its think time is cut short).
  Session& pick_session() {
    std::size_t best = active_.size();
    for (std::size_t i = 0; i < active_.size(); ++i) {
      if (best == active_.size() || active_[i].ready_ms < active_[best].ready_ms) best = i;
    }
    const bool ready = best < active_.size() && active_[best].ready_ms <= now_ms_;
    if (!ready && active_.size() < options_.max_active_sessions) {
      Session session;
      session.prompt = start_prompt();
      session.turns_left = draw(options_.turns_per_session);
      active_.push_back(std::move(session));
      return active_.back();
    }
    return active_[best];
  }

  void fill(TraceRequest* request, Prompt prompt) const {
    request->input_tokens = std::uint64_t{prompt.blocks.size()} * options_.block_tokens;
    request->blocks = std::move(prompt.blocks);
    request->tokens = std::move(prompt.tokens);
  }

  double uniform01() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  double exponential(double mean) { return mean <= 0 ? 0.0 : -mean * std::log1p(-uniform01()); }
  std::uint32_t draw(UniformRange range) {
    const std::uint64_t span = std::uint64_t{range.max} - range.min + 1;
    return range.min + static_cast<std::uint32_t>(rng_() % span);
  }

  WorkloadOptions options_;
  absl::Status status_;
  std::mt19937_64 rng_;
  std::uint64_t emitted_ = 0;
  double now_ms_ = 0;
  std::uint64_t next_unique_ = 0;
  std::vector<double> zipf_cdf_;
  std::vector<Prompt> system_prompts_;
  std::vector<Session> active_;  // at most max_active_sessions
};

absl::Status check_range(const char* name, UniformRange range) {
  if (range.min > range.max) {
    return absl::InvalidArgumentError(
        absl::StrCat("workload: ", name, " min must be <= max, got [", range.min, ", ", range.max, "]"));
  }
  return absl::OkStatus();
}

absl::Status check_fraction(const char* name, double value) {
  if (!(value >= 0 && value <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("workload: ", name, " must be in [0, 1], got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> workload_preset_names() {
  return {"default",          "system_prompt_heavy", "session_heavy",  "one_off_heavy",
          "shared_documents", "agent_loop",          "one_off_bursts", "popularity_drift"};
}

absl::StatusOr<WorkloadOptions> workload_preset(const std::string& name) {
  WorkloadOptions options;
  if (name == "default") return options;
  if (name == "system_prompt_heavy") {
    // Most requests are a popular long system prompt and a short question.
    options.num_system_prompts = 8;
    options.zipf_s = 1.2;
    options.system_prompt_blocks = {16, 32};
    options.system_prompt_fraction = 1.0;
    options.one_off_fraction = 0.7;
    options.one_off_blocks = {1, 4};
    options.turns_per_session = {1, 3};
    return options;
  }
  if (name == "session_heavy") {
    // Long chats: nearly every request extends its own conversation.
    options.one_off_fraction = 0.05;
    options.turns_per_session = {4, 16};
    options.new_blocks_per_turn = {1, 3};
    options.system_prompt_blocks = {2, 6};
    options.max_active_sessions = 32;
    return options;
  }
  if (name == "one_off_heavy") {
    // Mostly unique documents behind many rarely shared system prompts: little to reuse.
    options.one_off_fraction = 0.9;
    options.num_system_prompts = 256;
    options.zipf_s = 0.6;
    options.system_prompt_fraction = 0.3;
    options.one_off_blocks = {4, 32};
    options.turns_per_session = {1, 2};
    return options;
  }
  if (name == "shared_documents") {
    // Long documents (a manual, a code base, a contract) read by many users: each request is one of 96
    // documents of 32–128 blocks, moderately skewed, and a short question; a few ask a follow-up.
    options.num_system_prompts = 96;
    options.zipf_s = 0.9;
    options.system_prompt_blocks = {32, 128};
    options.system_prompt_fraction = 1.0;
    options.one_off_fraction = 0.8;
    options.one_off_blocks = {1, 3};
    options.turns_per_session = {2, 4};
    options.new_blocks_per_turn = {1, 2};
    return options;
  }
  if (name == "agent_loop") {
    // 16 agents at a time, each re-sending its whole growing context (tool output appended) every step,
    // with little think time: 20–60 steps of 2–6 new blocks behind one of 4 long instructions.
    options.num_system_prompts = 4;
    options.system_prompt_blocks = {8, 16};
    options.system_prompt_fraction = 1.0;
    options.max_active_sessions = 16;
    options.turns_per_session = {20, 60};
    options.new_blocks_per_turn = {2, 6};
    options.think_time_s = 0.2;
    options.one_off_fraction = 0.05;
    options.one_off_blocks = {2, 8};
    return options;
  }
  if (name == "one_off_bursts") {
    // The default mix, but 120 of every 400 requests are a burst of unique 16–48-block prompts with no
    // system prompt (a batch job): a scan through the cache between steady phases.
    options.burst_every = 400;
    options.burst_requests = 120;
    options.burst_blocks = {16, 48};
    return options;
  }
  if (name == "popularity_drift") {
    // Many system prompts with a skewed popularity whose ranking moves one place every 25 requests: a new
    // prompt comes in at the top and each earlier one fades a rank at a time.
    options.num_system_prompts = 512;
    options.zipf_s = 1.1;
    options.system_prompt_blocks = {4, 16};
    options.system_prompt_fraction = 1.0;
    options.one_off_fraction = 0.6;
    options.one_off_blocks = {1, 6};
    options.drift_every = 25;
    return options;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown workload preset \"", name, "\"; expected one of: ", absl::StrJoin(workload_preset_names(), ", ")));
}

absl::Status validate_workload(const WorkloadOptions& options) {
  if (options.num_requests > kMaxWorkloadRequests) {
    return absl::InvalidArgumentError(absl::StrCat("workload: num_requests (--requests) must be in [0, ",
                                                   kMaxWorkloadRequests, "], got ", options.num_requests));
  }
  if (options.block_tokens > ModelConfig::kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("workload: block_tokens (--block-tokens) must be in [1, ",
                                                   ModelConfig::kMaxPageSize, "], got ", options.block_tokens));
  }
  if (!(options.rate > 0) || !std::isfinite(options.rate)) {
    return absl::InvalidArgumentError(absl::StrCat("workload: rate must be a finite number > 0, got ", options.rate));
  }
  if (options.num_system_prompts == 0) {
    return absl::InvalidArgumentError("workload: num_system_prompts must be > 0, got 0");
  }
  if (!(options.zipf_s >= 0) || !std::isfinite(options.zipf_s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("workload: zipf_s must be a finite number >= 0, got ", options.zipf_s));
  }
  if (options.max_active_sessions == 0) {
    return absl::InvalidArgumentError("workload: max_active_sessions must be > 0, got 0");
  }
  if (options.turns_per_session.min == 0) {
    return absl::InvalidArgumentError("workload: turns_per_session min must be >= 1, got 0");
  }
  if (!(options.think_time_s >= 0) || !std::isfinite(options.think_time_s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("workload: think_time_s must be a finite number >= 0, got ", options.think_time_s));
  }
  for (const auto& [name, range] :
       {std::pair{"system_prompt_blocks", options.system_prompt_blocks},
        std::pair{"turns_per_session", options.turns_per_session},
        std::pair{"new_blocks_per_turn", options.new_blocks_per_turn},
        std::pair{"one_off_blocks", options.one_off_blocks}, std::pair{"burst_blocks", options.burst_blocks},
        std::pair{"output_tokens", options.output_tokens}}) {
    if (absl::Status status = check_range(name, range); !status.ok()) return status;
  }
  if (options.burst_requests > options.burst_every) {
    return absl::InvalidArgumentError(absl::StrCat("workload: burst_requests must be <= burst_every (",
                                                   options.burst_every, "), got ", options.burst_requests));
  }
  if (absl::Status status = check_fraction("system_prompt_fraction", options.system_prompt_fraction); !status.ok()) {
    return status;
  }
  return check_fraction("one_off_fraction", options.one_off_fraction);
}

std::unique_ptr<TraceReader> generate_trace(const WorkloadOptions& options) {
  return std::make_unique<WorkloadReader>(options);
}

}  // namespace kvbm
