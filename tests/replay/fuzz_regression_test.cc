// Inputs found by the fuzz targets (fuzz/, issue 8/8) that crashed the trace readers or the event codec, as plain tests
// that run in every build (the fuzz targets themselves only build with clang + KVBM_FUZZ).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "kvbm/events/msgpack_codec.h"
#include "kvbm/replay/trace.h"

namespace kvbm {
namespace {

using ::testing::HasSubstr;

absl::Status read_all(const std::string& text, TraceOptions options) {
  auto reader = open_trace_text(text, options, "t.jsonl");
  if (!reader.ok()) return reader.status();
  for (;;) {
    auto next = (*reader)->next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) return absl::OkStatus();
  }
}

// token_trace_fuzz: a malformed literal where "salt" may be null threw simdjson_error out of
// JsonlTraceReader (std::terminate in `kvbm replay`).
TEST(TraceFuzzRegressionTest, MalformedNullSaltIsALineError) {
  const TraceOptions tokens{.format = TraceFormat::kTokens, .block_tokens = 4};
  for (const char* line :
       {R"({"timestamp": 2, "tokens": [], "salt": nul: null})", R"({"timestamp": 2, "tokens": [], "salt": n})",
        R"({"timestamp": 2, "tokens": [], "salt": nulll})"}) {
    const absl::Status s = read_all(std::string("{\"timestamp\": 0, \"tokens\": [1]}\n") + line + "\n", tokens);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << line;
    EXPECT_THAT(std::string(s.message()), HasSubstr("t.jsonl:2:")) << line;
  }
  EXPECT_TRUE(read_all(R"({"timestamp": 2, "tokens": [1, 2, 3, 4], "salt": null})", tokens).ok());
}

TEST(TraceFuzzRegressionTest, TextReaderMatchesTheFileReader) {
  const std::string text =
      "{\"timestamp\": 1, \"input_length\": 3, \"hash_ids\": [5, 6]}\n\n"
      "{\"timestamp\": 2, \"input_length\": 1, \"hash_ids\": [5]}\n";
  auto reader = open_trace_text(text, TraceOptions{}, "mem");
  ASSERT_TRUE(reader.ok());
  auto first = (*reader)->next();
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ((*first)->blocks.size(), 2u);
  ASSERT_TRUE((*reader)->rewind().ok());
  auto again = (*reader)->next();
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ(**again, **first);
  EXPECT_EQ(open_trace_text("", TraceOptions{.block_tokens = 0}).status().code(), absl::StatusCode::kInvalidArgument);
}

// event_decode_fuzz: a u64 timestamp near 2^64 decodes to the double 2^64, which msgpack-c's pack_double
// converted to uint64_t (undefined behaviour) when the batch was encoded again.
TEST(EventFuzzRegressionTest, TimestampOfTwoToTheSixtyFourReencodes) {
  const std::string payload("\x93\xcf\xff\xff\xff\xff\xff\xff\xff\x0b\x90\xc0", 12);
  auto batch = decode_event_batch(payload);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->timestamp, 18446744073709551616.0);
  const std::string encoded = encode_event_batch(*batch);
  auto again = decode_event_batch(encoded);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->timestamp, batch->timestamp);
  EXPECT_EQ(encode_event_batch(*again), encoded);
  EventBatch small{.timestamp = 1.5};
  auto back = decode_event_batch(encode_event_batch(small));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->timestamp, 1.5);
}

}  // namespace
}  // namespace kvbm
