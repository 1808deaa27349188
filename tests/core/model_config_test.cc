#include "kvbm/core/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "kvbm/core/types.h"

namespace kvbm {
namespace {

using ::testing::HasSubstr;

TEST(ModelConfigTest, DefaultIsValid) { EXPECT_TRUE(ModelConfig{}.validate().ok()); }

struct FieldCase {
  std::string field;
  std::function<void(ModelConfig&, std::uint32_t)> set;
  std::uint32_t max;
};

TEST(ModelConfigTest, EveryFieldRangeErrorNamesFieldRangeAndValue) {
  const std::vector<FieldCase> cases = {
      {"num_layers", [](ModelConfig& m, std::uint32_t v) { m.num_layers = v; }, ModelConfig::kMaxLayers},
      {"outer_dim", [](ModelConfig& m, std::uint32_t v) { m.outer_dim = v; }, 2},
      {"page_size", [](ModelConfig& m, std::uint32_t v) { m.page_size = v; }, ModelConfig::kMaxPageSize},
      {"inner_dim", [](ModelConfig& m, std::uint32_t v) { m.inner_dim = v; }, ModelConfig::kMaxInnerDim},
      {"dtype_bytes", [](ModelConfig& m, std::uint32_t v) { m.dtype_bytes = v; }, ModelConfig::kMaxDtypeBytes},
  };
  for (const FieldCase& c : cases) {
    SCOPED_TRACE(c.field);
    const std::string range = "[1, " + std::to_string(c.max) + "]";
    for (std::uint32_t bad : {0u, c.max + 1}) {
      ModelConfig model;
      c.set(model, bad);
      const absl::Status status = model.validate();
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(status.message()), HasSubstr("ModelConfig." + c.field));
      EXPECT_THAT(std::string(status.message()), HasSubstr(range));
      EXPECT_THAT(std::string(status.message()), HasSubstr("got " + std::to_string(bad)));
    }
    for (std::uint32_t good : {1u, c.max}) {
      ModelConfig model;
      c.set(model, good);
      EXPECT_TRUE(model.validate().ok()) << model.to_string();
    }
  }
}

TEST(ModelConfigTest, PageSizeMessageExact) {
  ModelConfig model;
  model.page_size = 0;
  EXPECT_EQ(model.validate().message(), "ModelConfig.page_size must be in [1, 65536], got 0");
}

TEST(ModelConfigTest, BytesPerBlock) {
  ModelConfig model{.num_layers = 32, .outer_dim = 2, .page_size = 16, .inner_dim = 1024, .dtype_bytes = 2};
  EXPECT_EQ(model.bytes_per_chunk(), 16u * 1024u * 2u);
  EXPECT_EQ(model.bytes_per_block(), 32ull * 2 * 16 * 1024 * 2);
  // The largest geometry does not overflow 64 bits.
  ModelConfig max{ModelConfig::kMaxLayers, 2, ModelConfig::kMaxPageSize, ModelConfig::kMaxInnerDim,
                  ModelConfig::kMaxDtypeBytes};
  EXPECT_TRUE(max.validate().ok());
  EXPECT_EQ(max.bytes_per_block(), std::uint64_t{1} << 51);
}

TEST(ModelConfigTest, ToStringNamesFields) {
  ModelConfig model{.num_layers = 3, .outer_dim = 1, .page_size = 8, .inner_dim = 64, .dtype_bytes = 4};
  const std::string text = model.to_string();
  EXPECT_THAT(text, HasSubstr("num_layers=3"));
  EXPECT_THAT(text, HasSubstr("outer_dim=1"));
  EXPECT_THAT(text, HasSubstr("page_size=8"));
  EXPECT_THAT(text, HasSubstr("inner_dim=64"));
  EXPECT_THAT(text, HasSubstr("dtype_bytes=4"));
}

TEST(CacheLevelTest, NamesAndMedia) {
  EXPECT_EQ(cache_level_name(CacheLevel::kG1), "G1");
  EXPECT_EQ(cache_level_name(CacheLevel::kG4), "G4");
  EXPECT_EQ(cache_level_medium(CacheLevel::kG1), "GPU");
  EXPECT_EQ(cache_level_medium(CacheLevel::kG2), "CPU");
  EXPECT_EQ(cache_level_medium(CacheLevel::kG3), "DISK");
  EXPECT_EQ(cache_level_medium(CacheLevel::kG4), "REMOTE");
}

}  // namespace
}  // namespace kvbm
