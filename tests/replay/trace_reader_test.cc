// JSONL trace readers and writer: both formats, every error naming file:line and the key, bounded memory on
// a large file, rewind, format detection, write→read round trips, and the shared Mooncake trace.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
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

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "kvbm_trace_reader_" + name; }

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::vector<TraceRequest> read_all(TraceReader& reader) {
  std::vector<TraceRequest> requests;
  for (;;) {
    absl::StatusOr<std::optional<TraceRequest>> next = reader.next();
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok() || !next->has_value()) return requests;
    requests.push_back(std::move(**next));
  }
}

std::vector<TraceRequest> read_file(const std::string& path, TraceOptions options) {
  absl::StatusOr<std::unique_ptr<TraceReader>> reader = open_trace(path, options);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return {};
  return read_all(**reader);
}

std::vector<SequenceHash> hashes(std::initializer_list<std::uint64_t> ids) {
  std::vector<SequenceHash> out;
  for (const std::uint64_t id : ids) out.emplace_back(id);
  return out;
}

long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

TEST(MooncakeTraceTest, ReadsRequestsAndSkipsBlankLines) {
  const std::string path = write_file("mooncake_basic.jsonl",
                                      "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 12, "
                                      "\"hash_ids\": [0, 1]}\n"
                                      "\n   \r\n"
                                      "{\"hash_ids\": [0, 2, 18446744073709551615], \"timestamp\": 27.5, "
                                      "\"input_length\": 1400, \"extra\": {\"ignored\": [1, 2]}}");
  const std::vector<TraceRequest> requests = read_file(path, {.format = TraceFormat::kMooncake});
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].timestamp_ms, 0);
  EXPECT_EQ(requests[0].input_tokens, 1000u);
  EXPECT_EQ(requests[0].output_tokens, 12u);
  EXPECT_EQ(requests[0].blocks, hashes({0, 1}));
  EXPECT_TRUE(requests[0].tokens.empty());
  EXPECT_EQ(requests[1].timestamp_ms, 27.5);
  EXPECT_EQ(requests[1].input_tokens, 1400u);
  EXPECT_EQ(requests[1].output_tokens, 0u);  // optional
  EXPECT_EQ(requests[1].blocks, hashes({0, 2, std::numeric_limits<std::uint64_t>::max()}));
}

TEST(TokenTraceTest, HashesTokensLikeTokenBlockSequence) {
  const std::string path = write_file("tokens_basic.jsonl",
                                      "{\"timestamp\": 5, \"tokens\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n"
                                      "{\"timestamp\": 6, \"tokens\": [1, 2, 3, 4, 4294967295], \"salt\": \"t\\\"1\", "
                                      "\"output_length\": 9}\n"
                                      "{\"timestamp\": 7, \"tokens\": [1, 2], \"salt\": null}\n");
  const std::vector<TraceRequest> requests = read_file(path, {.format = TraceFormat::kTokens, .block_tokens = 4});
  ASSERT_EQ(requests.size(), 3u);
  const std::vector<std::uint32_t> tokens0 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  absl::StatusOr<TokenBlockSequence> sequence0 = TokenBlockSequence::create(4, SaltHash{0}, tokens0);
  ASSERT_TRUE(sequence0.ok());
  EXPECT_EQ(requests[0].tokens, tokens0);
  EXPECT_EQ(requests[0].input_tokens, 10u);
  EXPECT_EQ(requests[0].blocks.size(), 2u);  // the partial tail is not a block
  EXPECT_TRUE(std::equal(requests[0].blocks.begin(), requests[0].blocks.end(), sequence0->sequence_hashes().begin(),
                         sequence0->sequence_hashes().end()));

  const std::vector<std::uint32_t> tokens1 = {1, 2, 3, 4, 4294967295u};
  absl::StatusOr<TokenBlockSequence> sequence1 = TokenBlockSequence::create(4, compute_salt_hash("t\"1"), tokens1);
  ASSERT_TRUE(sequence1.ok());
  EXPECT_EQ(requests[1].salt, "t\"1");
  EXPECT_EQ(requests[1].output_tokens, 9u);
  ASSERT_EQ(requests[1].blocks.size(), 1u);
  EXPECT_EQ(requests[1].blocks[0], sequence1->sequence_hashes()[0]);
  EXPECT_NE(requests[1].blocks[0], requests[0].blocks[0]);  // the salt separates equal tokens

  EXPECT_TRUE(requests[2].blocks.empty());
  EXPECT_EQ(requests[2].salt, "");
}

struct BadLine {
  TraceFormat format;
  std::string line;
  std::vector<std::string> expected;  // substrings of the message after "<path>:3: "
};

class TraceErrorTest : public ::testing::TestWithParam<BadLine> {};

TEST_P(TraceErrorTest, NamesFileLineAndKey) {
  const BadLine& bad = GetParam();
  const std::string good = bad.format == TraceFormat::kMooncake
                               ? "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [0]}"
                               : "{\"timestamp\": 0, \"tokens\": [1, 2]}";
  const std::string path = write_file("bad.jsonl", good + "\n\n" + bad.line + "\n" + good + "\n");
  absl::StatusOr<std::unique_ptr<TraceReader>> reader = open_trace(path, {.format = bad.format, .block_tokens = 2});
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE((*reader)->next().ok());
  absl::StatusOr<std::optional<TraceRequest>> next = (*reader)->next();
  ASSERT_FALSE(next.ok()) << bad.line;
  EXPECT_EQ(next.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(next.status().message()), ::testing::StartsWith(path + ":3: ")) << bad.line;
  for (const std::string& part : bad.expected) EXPECT_THAT(std::string(next.status().message()), HasSubstr(part));
  // The reader goes on after a bad line.
  absl::StatusOr<std::optional<TraceRequest>> after = (*reader)->next();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->has_value());
}

constexpr TraceFormat kM = TraceFormat::kMooncake;
constexpr TraceFormat kT = TraceFormat::kTokens;

INSTANTIATE_TEST_SUITE_P(
    AllErrors, TraceErrorTest,
    ::testing::Values(
        BadLine{kM, "{\"timestamp\": 0, \"input_length\": ", {"invalid JSON"}},
        BadLine{kM, "not json", {"expected a JSON object"}}, BadLine{kM, "[1, 2]", {"expected a JSON object"}},
        BadLine{kM,
                "{\"timestamp\": 0, \"input_length\": 1, \"hash_ids\": [0]} x",
                {"unexpected content after the JSON object"}},
        BadLine{kM, "{\"input_length\": 1, \"hash_ids\": [0]}", {"missing key \"timestamp\""}},
        BadLine{kM, "{\"timestamp\": 0, \"hash_ids\": [0]}", {"missing key \"input_length\""}},
        BadLine{kM, "{\"timestamp\": 0, \"input_length\": 1}", {"missing key \"hash_ids\""}},
        BadLine{kM, "{\"timestamp\": 0, \"tokens\": [1]}", {"missing key \"hash_ids\"", "token-level"}},
        BadLine{kM, "{\"timestamp\": \"now\", \"input_length\": 1, \"hash_ids\": [0]}", {"\"timestamp\"", "a string"}},
        BadLine{kM, "{\"timestamp\": -1, \"input_length\": 1, \"hash_ids\": [0]}", {"\"timestamp\"", ">= 0", "-1"}},
        BadLine{kM, "{\"timestamp\": 0, \"input_length\": -5, \"hash_ids\": [0]}", {"\"input_length\"", "got -5"}},
        BadLine{kM, "{\"timestamp\": 0, \"input_length\": 1.5, \"hash_ids\": [0]}", {"\"input_length\"", "got 1.5"}},
        BadLine{kM, "{\"timestamp\": 0, \"input_length\": \"1\", \"hash_ids\": [0]}", {"\"input_length\"", "a string"}},
        BadLine{kM,
                "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": -1, \"hash_ids\": [0]}",
                {"\"output_length\"", "got -1"}},
        BadLine{kM,
                "{\"timestamp\": 0, \"input_length\": 1, \"hash_ids\": \"0\"}",
                {"\"hash_ids\" must be an array of integers", "a string"}},
        BadLine{kM, "{\"timestamp\": 0, \"input_length\": 1, \"hash_ids\": [1, -2]}", {"\"hash_ids[1]\"", "got -2"}},
        BadLine{kM,
                "{\"timestamp\": 0, \"input_length\": 1, \"hash_ids\": [18446744073709551616]}",
                {"\"hash_ids[0]\"", "18446744073709551615", "got 18446744073709551616"}},
        BadLine{kM, "{\"timestamp\": 0, \"input_length\": 1, \"hash_ids\": [null]}", {"\"hash_ids[0]\"", "got null"}},
        BadLine{kT, "{\"timestamp\": 0}", {"missing key \"tokens\""}},
        BadLine{
            kT, "{\"timestamp\": 0, \"input_length\": 1, \"hash_ids\": [0]}", {"missing key \"tokens\"", "Mooncake"}},
        BadLine{kT, "{\"tokens\": [1]}", {"missing key \"timestamp\""}},
        BadLine{kT,
                "{\"timestamp\": 0, \"tokens\": [1, 4294967296]}",
                {"\"tokens[1]\"", "[0, 4294967295]", "got 4294967296"}},
        BadLine{kT, "{\"timestamp\": 0, \"tokens\": [-1]}", {"\"tokens[0]\"", "got -1"}},
        BadLine{kT, "{\"timestamp\": 0, \"tokens\": {\"a\": 1}}", {"\"tokens\" must be an array", "an object"}},
        BadLine{kT, "{\"timestamp\": 0, \"tokens\": [1], \"salt\": 5}", {"\"salt\" must be a string", "a number"}}));

TEST(TraceReaderTest, OpenErrors) {
  absl::StatusOr<std::unique_ptr<TraceReader>> missing = open_trace(temp_path("does_not_exist.jsonl"), {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("does_not_exist.jsonl"));
  const std::string path = write_file("empty.jsonl", "");
  absl::StatusOr<std::unique_ptr<TraceReader>> zero = open_trace(path, {.block_tokens = 0});
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(zero.status().message()), HasSubstr("block_tokens"));
  EXPECT_TRUE(read_file(path, {}).empty());
}

TEST(TraceReaderTest, RewindStartsAgain) {
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text +=
        "{\"timestamp\": " + std::to_string(i) + ", \"input_length\": 5, \"hash_ids\": [" + std::to_string(i) + "]}\n";
  }
  const std::string path = write_file("rewind.jsonl", text);
  absl::StatusOr<std::unique_ptr<TraceReader>> reader = open_trace(path, {});
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->next().ok());
  ASSERT_TRUE((*reader)->rewind().ok());
  const std::vector<TraceRequest> first = read_all(**reader);
  ASSERT_EQ(first.size(), 100u);
  ASSERT_TRUE((*reader)->rewind().ok());
  EXPECT_EQ(read_all(**reader), first);
  EXPECT_EQ(first[99].blocks, hashes({99}));
}

absl::StatusOr<TraceFormat> detect(const std::string& path) {
  absl::StatusOr<OpenedTrace> opened = open_trace_detect(path);
  if (!opened.ok()) return opened.status();
  return opened->options.format;
}

TEST(TraceReaderTest, DetectsFormat) {
  EXPECT_EQ(*detect(write_file("detect_m.jsonl", "\n{\"timestamp\": 0, \"hash_ids\": []}\n")), TraceFormat::kMooncake);
  EXPECT_EQ(*detect(write_file("detect_t.jsonl", "{\"tokens\": [1], \"timestamp\": 0}\n")), TraceFormat::kTokens);
  const std::string neither = write_file("detect_n.jsonl", "\n\n{\"timestamp\": 0}\n");
  absl::StatusOr<TraceFormat> bad = detect(neither);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(neither + ":3: "));
  EXPECT_EQ(detect(write_file("detect_e.jsonl", "\n")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(detect(temp_path("detect_missing")).status().code(), absl::StatusCode::kNotFound);
}

// The detected reader goes on from the line detection read: every request, the first included, once.
TEST(TraceReaderTest, DetectedReaderReadsEveryLineOnce) {
  const std::string path = write_file("detect_all.jsonl",
                                      "\n{\"timestamp\": 0, \"input_length\": 5, \"hash_ids\": [1]}\n"
                                      "{\"timestamp\": 1, \"input_length\": 5, \"hash_ids\": [2]}\n");
  absl::StatusOr<OpenedTrace> opened = open_trace_detect(path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->options.block_tokens, 512u);
  const std::vector<TraceRequest> first = read_all(*opened->reader);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].blocks, hashes({1}));
  ASSERT_TRUE(opened->reader->rewind().ok());
  EXPECT_EQ(read_all(*opened->reader), first);
}

// A pipe (here /dev/fd/N of a pipe(2)) is read once, detection included, and rewind() reads its spool.
TEST(TraceReaderTest, PipeIsReadOnceAndRewinds) {
  std::string text;
  for (int i = 0; i < 5000; ++i) {  // more than one 1 MiB read buffer... and more than a pipe holds
    text += "{\"timestamp\": " + std::to_string(i) + ", \"input_length\": 1024, \"hash_ids\": [" + std::to_string(i) +
            ", " + std::to_string(i + 1) + ", " + std::string(200, ' ') + "7]}\n";
  }
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::thread writer([&] {
    for (std::size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(fds[1], text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(fds[1]);
  });
  absl::StatusOr<OpenedTrace> opened = open_trace_detect("/dev/fd/" + std::to_string(fds[0]));
  ASSERT_TRUE(opened.ok()) << opened.status();
  ::close(fds[0]);  // the reader holds its own descriptor
  const std::vector<TraceRequest> first = read_all(*opened->reader);
  writer.join();
  ASSERT_EQ(first.size(), 5000u);
  EXPECT_EQ(first[0].blocks, hashes({0, 1, 7}));
  ASSERT_TRUE(opened->reader->rewind().ok());
  EXPECT_EQ(read_all(*opened->reader), first);
}

struct Diagnosed {
  std::string text;
  std::string message;
};

// Each of these once gave a misleading message (or none): each now names file:line and what is wrong.
TEST(TraceReaderTest, PreciseMessages) {
  const std::string line = "{\"timestamp\": 0, \"input_length\": 5, \"hash_ids\": [1]}";
  for (const Diagnosed& d : {
           Diagnosed{line + "\r" + line + "\r", ":1: the line ends are CR only"},
           Diagnosed{line + "xyz\n", ":1: unexpected content after the JSON object"},
           Diagnosed{line + "\n" + line + " xyz\n", ":2: unexpected content after the JSON object"},
           Diagnosed{"{\"timestamp\": 0, \"input_length\": 5, \"hash_ids\": [1], \"hash_ids\": [2]}\n",
                     ":1: duplicate key \"hash_ids\""},
           Diagnosed{"{\"timestamp\": 0, \"timestamp\": 1, \"input_length\": 5, \"hash_ids\": [1]}\n",
                     ":1: duplicate key \"timestamp\""},
           Diagnosed{"{\"timestamp\": 0, \"input_length\": 18446744073709551615, \"hash_ids\": [1]}\n",
                     ":1: \"input_length\" must be an integer in [0, 1099511627776]"},
           Diagnosed{"\xFF\xFE{\n", ":1: the trace is UTF-16"},
       }) {
    const std::string path = write_file("diagnosed.jsonl", d.text);
    absl::StatusOr<OpenedTrace> opened = open_trace_detect(path);
    absl::Status status = opened.status();
    if (opened.ok()) status = read_requests(*opened->reader).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << d.text;
    EXPECT_THAT(std::string(status.message()), HasSubstr(path + d.message)) << d.text;
  }
  // A directory is named as one, not "an empty trace".
  absl::StatusOr<OpenedTrace> dir = open_trace_detect(::testing::TempDir());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(dir.status().message()), HasSubstr("is a directory"));
  // A UTF-8 byte order mark is skipped.
  absl::StatusOr<OpenedTrace> bom = open_trace_detect(write_file("bom.jsonl", "\xEF\xBB\xBF" + line + "\n"));
  ASSERT_TRUE(bom.ok()) << bom.status();
  EXPECT_EQ(read_all(*bom->reader).size(), 1u);
}

// A line longer than kMaxTraceLineBytes fails with the limit named, having read only a little past it.
TEST(TraceReaderTest, LongestLineIsBounded) {
  const std::string path = temp_path("long_line.bin");
  {
    std::ofstream out(path, std::ios::binary);
    const std::string chunk(1 << 20, 'x');
    for (std::size_t i = 0; i < kMaxTraceLineBytes / chunk.size() + 2; ++i) out << chunk;
  }
  absl::StatusOr<std::unique_ptr<TraceReader>> reader = open_trace(path, {});
  ASSERT_TRUE(reader.ok());
  absl::StatusOr<std::optional<TraceRequest>> next = (*reader)->next();
  EXPECT_EQ(next.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(next.status().message()), HasSubstr(path + ":1: line longer than the limit of 67108864"));
  std::filesystem::remove(path);
}

TEST(TraceWriterTest, RoundTripsBothFormats) {
  std::vector<TraceRequest> requests(3);
  requests[0].timestamp_ms = 0.1;
  requests[0].tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  requests[0].salt = "quote\" backslash\\ newline\n tab\t";
  requests[0].output_tokens = 77;
  requests[1].timestamp_ms = 1e6 + 0.25;
  requests[1].tokens = {4294967295u, 0, 1, 2};
  requests[2].timestamp_ms = 2e6;
  for (TraceRequest& request : requests) {
    request.input_tokens = request.tokens.size();
    absl::StatusOr<TokenBlockSequence> sequence =
        TokenBlockSequence::create(4, compute_salt_hash(request.salt), request.tokens);
    ASSERT_TRUE(sequence.ok());
    request.blocks.assign(sequence->sequence_hashes().begin(), sequence->sequence_hashes().end());
  }
  std::unique_ptr<TraceReader> source = make_vector_trace(requests);
  const std::string tokens_path = temp_path("roundtrip_tokens.jsonl");
  ASSERT_TRUE(write_trace(*source, tokens_path, TraceFormat::kTokens).ok());
  EXPECT_EQ(read_file(tokens_path, {.format = TraceFormat::kTokens, .block_tokens = 4}), requests);

  // Mooncake keeps hashes (any u64) and lengths, not tokens or salts.
  std::vector<TraceRequest> hash_level = requests;
  hash_level[2].blocks = hashes({std::numeric_limits<std::uint64_t>::max(), 1ULL << 63});
  for (TraceRequest& request : hash_level) {
    request.tokens.clear();
    request.salt.clear();
  }
  source = make_vector_trace(hash_level);
  const std::string mooncake_path = temp_path("roundtrip_mooncake.jsonl");
  ASSERT_TRUE(write_trace(*source, mooncake_path, TraceFormat::kMooncake).ok());
  EXPECT_EQ(read_file(mooncake_path, {.format = TraceFormat::kMooncake}), hash_level);

  // A hash-level request cannot be written as tokens.
  source = make_vector_trace(hash_level);
  absl::Status status = write_trace(*source, temp_path("roundtrip_bad.jsonl"), TraceFormat::kTokens);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  source = make_vector_trace({});
  EXPECT_FALSE(write_trace(*source, "/nonexistent-dir/x.jsonl", TraceFormat::kMooncake).ok());
}

// 200,000 lines of ~170 bytes (~34 MB) stream in a bounded amount of memory (well under the file size).
TEST(TraceReaderTest, LargeFileStreamsInBoundedMemory) {
  const std::string path = temp_path("large.jsonl");
  constexpr int kLines = 200000;
  constexpr int kIdsPerLine = 16;
  {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
    ASSERT_NE(file, nullptr);
    for (int i = 0; i < kLines; ++i) {
      std::fprintf(file.get(), "{\"timestamp\": %d, \"input_length\": %d, \"output_length\": 10, \"hash_ids\": [", i,
                   kIdsPerLine * 512);
      for (int j = 0; j < kIdsPerLine; ++j) std::fprintf(file.get(), j == 0 ? "%d" : ", %d", 1000000 + i + j);
      std::fprintf(file.get(), "]}\n");
    }
  }
  const long rss_before = peak_rss_kib();
  absl::StatusOr<std::unique_ptr<TraceReader>> reader = open_trace(path, {});
  ASSERT_TRUE(reader.ok());
  std::uint64_t requests = 0;
  std::uint64_t blocks = 0;
  for (;;) {
    absl::StatusOr<std::optional<TraceRequest>> next = (*reader)->next();
    ASSERT_TRUE(next.ok()) << next.status();
    if (!next->has_value()) break;
    ++requests;
    blocks += (*next)->blocks.size();
  }
  const long growth_kib = peak_rss_kib() - rss_before;
  std::remove(path.c_str());
  EXPECT_EQ(requests, std::uint64_t{kLines});
  EXPECT_EQ(blocks, std::uint64_t{kLines} * kIdsPerLine);
  if (kAddressSanitizer) GTEST_SKIP() << "ASan's quarantine holds freed memory; RSS is checked in other builds";
  EXPECT_LT(growth_kib, 16 * 1024) << "peak RSS grew by " << growth_kib << " KiB reading a ~34 MB file";
}

#ifdef KVBM_SHARED_TRACES_DIR
constexpr const char* kSharedTracesDir = KVBM_SHARED_TRACES_DIR;
#else
constexpr const char* kSharedTracesDir = "";
#endif

TEST(SharedMooncakeTraceTest, MatchesPublishedFigures) {
  const std::string path = std::string(kSharedTracesDir) + "/mooncake_conversation_trace.jsonl";
  if (!std::ifstream(path).good()) GTEST_SKIP() << "no shared trace at " << path;
  ASSERT_EQ(*detect(path), TraceFormat::kMooncake);
  absl::StatusOr<std::unique_ptr<TraceReader>> reader = open_trace(path, {});
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::uint64_t requests = 0;
  std::uint64_t blocks = 0;
  std::uint64_t input_tokens = 0;
  std::uint64_t prefix_hits = 0;  // unlimited capacity: longest prefix already seen
  std::unordered_set<std::uint64_t> seen;
  for (;;) {
    absl::StatusOr<std::optional<TraceRequest>> next = (*reader)->next();
    ASSERT_TRUE(next.ok()) << next.status();
    if (!next->has_value()) break;
    const TraceRequest& request = **next;
    ++requests;
    blocks += request.blocks.size();
    input_tokens += request.input_tokens;
    std::size_t k = 0;
    while (k < request.blocks.size() && seen.contains(request.blocks[k].value())) ++k;
    prefix_hits += k;
    for (const SequenceHash block : request.blocks) seen.insert(block.value());
  }
  EXPECT_EQ(requests, 12031u);
  EXPECT_EQ(blocks, 288500u);
  EXPECT_NEAR(static_cast<double>(input_tokens) / static_cast<double>(requests), 12035, 1);
  EXPECT_EQ(prefix_hits, 105710u);
  // Informational (not asserted): the parse rate of this build, over a second pass.
  ASSERT_TRUE((*reader)->rewind().ok());
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t parsed = 0;
  for (;;) {
    absl::StatusOr<std::optional<TraceRequest>> next = (*reader)->next();
    ASSERT_TRUE(next.ok()) << next.status();
    if (!next->has_value()) break;
    ++parsed;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(parsed, requests);
  const double megabytes = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
  std::cout << "shared trace: parsed " << parsed << " requests (" << megabytes << " MB) in " << seconds * 1e3
            << " ms: " << static_cast<double>(parsed) / seconds << " requests/s, " << megabytes / seconds << " MB/s\n";
}

}  // namespace
}  // namespace kvbm
