// The synthetic workload: deterministic per seed, real kvbm hashes with consistent prefixes, preset shapes,
// bounded memory, and write→read round trips in both formats.
#include "kvbm/replay/generator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kvbm/core/hashing.h"
#include "kvbm/core/token_block_sequence.h"
#include "kvbm/replay/trace.h"

namespace kvbm {
namespace {

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

using ::testing::HasSubstr;

std::vector<TraceRequest> read_all(TraceReader& reader) {
  std::vector<TraceRequest> requests;
  for (;;) {
    absl::StatusOr<std::optional<TraceRequest>> next = reader.next();
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok() || !next->has_value()) return requests;
    requests.push_back(std::move(**next));
  }
}

std::vector<TraceRequest> generate(const WorkloadOptions& options) {
  std::unique_ptr<TraceReader> reader = generate_trace(options);
  return read_all(*reader);
}

WorkloadOptions preset(const std::string& name) {
  absl::StatusOr<WorkloadOptions> options = workload_preset(name);
  EXPECT_TRUE(options.ok()) << options.status();
  return options.ok() ? *options : WorkloadOptions{};
}

// Fraction of block references whose sequence hash was seen in an earlier request.
double reuse_fraction(const std::vector<TraceRequest>& requests) {
  std::unordered_set<std::uint64_t> seen;
  std::uint64_t total = 0;
  std::uint64_t reused = 0;
  for (const TraceRequest& request : requests) {
    for (const SequenceHash block : request.blocks) reused += seen.contains(block.value()) ? 1 : 0;
    total += request.blocks.size();
    for (const SequenceHash block : request.blocks) seen.insert(block.value());
  }
  return total == 0 ? 0.0 : static_cast<double>(reused) / static_cast<double>(total);
}

TEST(GeneratorTest, DefaultWorkloadIsDeterministicPerSeed) {
  const WorkloadOptions options;
  const std::vector<TraceRequest> a = generate(options);
  const std::vector<TraceRequest> b = generate(options);
  ASSERT_EQ(a.size(), 2000u);
  EXPECT_EQ(a, b);
  WorkloadOptions other = options;
  other.seed = 2;
  EXPECT_NE(generate(other), a);

  std::uint64_t blocks = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (i > 0) {
      EXPECT_GE(a[i].timestamp_ms, a[i - 1].timestamp_ms);
    }
    EXPECT_EQ(a[i].input_tokens, a[i].blocks.size() * kDefaultHashBlockTokens);
    EXPECT_TRUE(a[i].tokens.empty());
    EXPECT_GE(a[i].output_tokens, 50u);
    EXPECT_LE(a[i].output_tokens, 500u);
    blocks += a[i].blocks.size();
  }
  // Poisson arrivals at 20/s: 2000 requests span ~100 s.
  EXPECT_NEAR(a.back().timestamp_ms / 1000.0, 100.0, 15.0);
  std::cout << "default workload: " << a.size() << " requests, " << blocks << " block references, reuse "
            << reuse_fraction(a) << "\n";
}

TEST(GeneratorTest, RewindRegeneratesTheSameStream) {
  WorkloadOptions options;
  options.num_requests = 300;
  std::unique_ptr<TraceReader> reader = generate_trace(options);
  const std::vector<TraceRequest> first = read_all(*reader);
  ASSERT_TRUE(reader->rewind().ok());
  EXPECT_EQ(read_all(*reader), first);
}

// Sequence hashes name whole prefixes: a hash always has the same parent, wherever it appears.
TEST(GeneratorTest, EqualHashesHaveEqualPrefixes) {
  for (const std::string& name : workload_preset_names()) {
    std::unordered_map<std::uint64_t, std::uint64_t> parent_of;  // 0 for a first block
    for (const TraceRequest& request : generate(preset(name))) {
      for (std::size_t i = 0; i < request.blocks.size(); ++i) {
        const std::uint64_t parent = i == 0 ? 0 : request.blocks[i - 1].value();
        auto [it, inserted] = parent_of.emplace(request.blocks[i].value(), parent);
        ASSERT_EQ(it->second, parent) << name;
      }
    }
  }
}

TEST(GeneratorTest, TokenLevelRequestsHashLikeTokenBlockSequence) {
  WorkloadOptions options;
  options.tokens = true;
  options.num_requests = 200;
  const std::vector<TraceRequest> requests = generate(options);
  ASSERT_EQ(requests.size(), 200u);
  for (const TraceRequest& request : requests) {
    EXPECT_EQ(request.input_tokens, request.tokens.size());
    EXPECT_EQ(request.tokens.size(), request.blocks.size() * kDefaultTokenBlockTokens);
    absl::StatusOr<TokenBlockSequence> sequence =
        TokenBlockSequence::create(kDefaultTokenBlockTokens, SaltHash{0}, request.tokens);
    ASSERT_TRUE(sequence.ok());
    ASSERT_TRUE(std::equal(request.blocks.begin(), request.blocks.end(), sequence->sequence_hashes().begin(),
                           sequence->sequence_hashes().end()));
  }
  // The same workload shape as the hash-level one: equal reuse, block for block.
  WorkloadOptions hash_level = options;
  hash_level.tokens = false;
  const std::vector<TraceRequest> hashed = generate(hash_level);
  for (std::size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(requests[i].blocks.size(), hashed[i].blocks.size());
  EXPECT_DOUBLE_EQ(reuse_fraction(requests), reuse_fraction(hashed));
}

TEST(GeneratorTest, PresetsHaveTheirShapes) {
  const double session = reuse_fraction(generate(preset("session_heavy")));
  const double system = reuse_fraction(generate(preset("system_prompt_heavy")));
  const double one_off = reuse_fraction(generate(preset("one_off_heavy")));
  const double standard = reuse_fraction(generate(preset("default")));
  std::cout << "reuse: session_heavy " << session << ", system_prompt_heavy " << system << ", default " << standard
            << ", one_off_heavy " << one_off << "\n";
  EXPECT_GT(session, one_off + 0.3);
  EXPECT_GT(system, one_off + 0.3);
  EXPECT_GT(standard, one_off);
  EXPECT_LT(one_off, 0.25);
}

// The four families of another structure (docs/eviction.md): deterministic per seed, and each shows the
// structure it is named for.
TEST(GeneratorTest, NewFamiliesAreDeterministicAndHaveTheirStructure) {
  for (const char* name : {"shared_documents", "agent_loop", "one_off_bursts", "popularity_drift"}) {
    WorkloadOptions options = preset(name);
    options.num_requests = 800;
    const std::vector<TraceRequest> a = generate(options);
    ASSERT_EQ(a.size(), 800u) << name;
    EXPECT_EQ(a, generate(options)) << name;
    options.seed = 2;
    EXPECT_NE(generate(options), a) << name;
  }
  // shared_documents: most requests begin with a document of >= 32 blocks that other requests read too.
  {
    const std::vector<TraceRequest> r = generate(preset("shared_documents"));
    std::unordered_map<std::uint64_t, int> readers;  // block 31's sequence hash names a document
    for (const TraceRequest& q : r) {
      ASSERT_GE(q.blocks.size(), 33u);
      ++readers[q.blocks[31].value()];
    }
    EXPECT_LE(readers.size(), 96u);
    EXPECT_GT(reuse_fraction(r), 0.8);
  }
  // agent_loop: long contexts, each request extending an earlier one.
  {
    const std::vector<TraceRequest> r = generate(preset("agent_loop"));
    std::uint64_t blocks = 0;
    for (const TraceRequest& q : r) blocks += q.blocks.size();
    EXPECT_GT(static_cast<double>(blocks) / r.size(), 40.0);
    EXPECT_GT(reuse_fraction(r), 0.9);
  }
  // one_off_bursts: requests 280–399 of every 400 share no block with any other request.
  {
    const std::vector<TraceRequest> r = generate(preset("one_off_bursts"));
    std::unordered_map<std::uint64_t, int> refs;
    for (const TraceRequest& q : r) {
      for (SequenceHash b : q.blocks) ++refs[b.value()];
    }
    for (std::size_t i = 0; i < r.size(); ++i) {
      const bool burst = i % 400 >= 280;
      bool unique = true;
      for (SequenceHash b : r[i].blocks) unique = unique && refs[b.value()] == 1;
      if (burst) {
        EXPECT_TRUE(unique) << i;
        EXPECT_GE(r[i].blocks.size(), 16u) << i;
        EXPECT_LE(r[i].blocks.size(), 48u) << i;
      }
    }
  }
  // popularity_drift: the most read first block of the first 500 requests is rare in the last 500.
  {
    const std::vector<TraceRequest> r = generate(preset("popularity_drift"));
    auto counts = [&](std::size_t from, std::size_t to) {
      std::unordered_map<std::uint64_t, int> c;
      for (std::size_t i = from; i < to; ++i) ++c[r[i].blocks.front().value()];
      return c;
    };
    const auto early = counts(0, 500);
    auto late = counts(r.size() - 500, r.size());
    std::uint64_t top = 0;
    int top_count = 0;
    for (const auto& [hash, n] : early) {
      if (n > top_count) top = hash, top_count = n;
    }
    EXPECT_GT(top_count, 20);
    EXPECT_LT(late[top], top_count / 5);
  }
  WorkloadOptions bad = preset("one_off_bursts");
  bad.burst_requests = bad.burst_every + 1;
  EXPECT_THAT(validate_workload(bad).message(), HasSubstr("burst_requests"));
}

TEST(GeneratorTest, UnknownPresetListsNames) {
  absl::StatusOr<WorkloadOptions> options = workload_preset("nope");
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& name : workload_preset_names()) {
    EXPECT_THAT(std::string(options.status().message()), HasSubstr(name));
  }
}

TEST(GeneratorTest, InvalidOptionsAreNamed) {
  WorkloadOptions options;
  options.rate = 0;
  EXPECT_THAT(std::string(validate_workload(options).message()), HasSubstr("rate"));
  std::unique_ptr<TraceReader> reader = generate_trace(options);
  EXPECT_EQ(reader->next().status().code(), absl::StatusCode::kInvalidArgument);
  options = WorkloadOptions{};
  options.new_blocks_per_turn = {5, 2};
  EXPECT_THAT(std::string(validate_workload(options).message()), HasSubstr("new_blocks_per_turn"));
  options = WorkloadOptions{};
  options.one_off_fraction = 1.5;
  EXPECT_THAT(std::string(validate_workload(options).message()), HasSubstr("one_off_fraction"));
  options = WorkloadOptions{};
  options.turns_per_session = {0, 3};
  EXPECT_THAT(std::string(validate_workload(options).message()), HasSubstr("turns_per_session"));
}

// A workload has a bound on its requests and its block size: 2^64 - 1 requests would be written until the
// disk is full, 4e9 tokens a block allocated until memory ran out (issue 24, item 10).
TEST(GeneratorTest, RequestsAndBlockTokensAreBounded) {
  WorkloadOptions options;
  options.num_requests = kMaxWorkloadRequests;
  options.block_tokens = ModelConfig::kMaxPageSize;
  EXPECT_TRUE(validate_workload(options).ok());
  options.num_requests = kMaxWorkloadRequests + 1;
  EXPECT_EQ(validate_workload(options).message(),
            "workload: num_requests (--requests) must be in [0, 100000000], got 100000001");
  options.num_requests = 10;
  options.block_tokens = ModelConfig::kMaxPageSize + 1;
  EXPECT_EQ(validate_workload(options).message(),
            "workload: block_tokens (--block-tokens) must be in [1, 65536], got 65537");
  EXPECT_EQ(generate_trace(options)->next().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GeneratorTest, RoundTripsThroughBothFormats) {
  for (const std::string& name : workload_preset_names()) {
    WorkloadOptions options = preset(name);
    options.num_requests = 300;
    const std::vector<TraceRequest> hashed = generate(options);
    std::unique_ptr<TraceReader> source = generate_trace(options);
    const std::string mooncake_path = ::testing::TempDir() + "kvbm_generator_" + name + ".jsonl";
    ASSERT_TRUE(write_trace(*source, mooncake_path, TraceFormat::kMooncake).ok());
    absl::StatusOr<std::unique_ptr<TraceReader>> mooncake = open_trace(mooncake_path, {});
    ASSERT_TRUE(mooncake.ok());
    EXPECT_EQ(read_all(**mooncake), hashed) << name;

    options.tokens = true;
    const std::vector<TraceRequest> tokens = generate(options);
    source = generate_trace(options);
    const std::string tokens_path = ::testing::TempDir() + "kvbm_generator_" + name + "_tokens.jsonl";
    ASSERT_TRUE(write_trace(*source, tokens_path, TraceFormat::kTokens).ok());
    absl::StatusOr<std::unique_ptr<TraceReader>> reread =
        open_trace(tokens_path, {.format = TraceFormat::kTokens, .block_tokens = kDefaultTokenBlockTokens});
    ASSERT_TRUE(reread.ok());
    EXPECT_EQ(read_all(**reread), tokens) << name;
  }
}

// Only active sessions are held: a long stream does not grow memory with its length.
TEST(GeneratorTest, LongStreamIsLazy) {
  WorkloadOptions options = preset("session_heavy");
  options.num_requests = 200000;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const long before = usage.ru_maxrss;
  std::unique_ptr<TraceReader> reader = generate_trace(options);
  std::uint64_t requests = 0;
  std::uint64_t blocks = 0;
  for (;;) {
    absl::StatusOr<std::optional<TraceRequest>> next = reader->next();
    ASSERT_TRUE(next.ok());
    if (!next->has_value()) break;
    ++requests;
    blocks += (*next)->blocks.size();
  }
  getrusage(RUSAGE_SELF, &usage);
  EXPECT_EQ(requests, 200000u);
  // Materialised, the stream would take tens of MB.
  EXPECT_GT(blocks * sizeof(SequenceHash) + requests * sizeof(TraceRequest), std::uint64_t{40} << 20);
  if (kAddressSanitizer) GTEST_SKIP() << "ASan's quarantine holds freed memory; RSS is checked in other builds";
  EXPECT_LT(usage.ru_maxrss - before, 20 * 1024) << "peak RSS grew by " << usage.ru_maxrss - before << " KiB";
}

}  // namespace
}  // namespace kvbm
