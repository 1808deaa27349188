#include "kvbm/manager/kvbm_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

namespace kvbm {
namespace {

using ::testing::HasSubstr;

TEST(KvbmConfigTest, DefaultsAreValid) {
  KvbmConfig config;
  EXPECT_TRUE(config.validate().ok());
  EXPECT_EQ(config.g1_blocks(), 1024u);
}

TEST(KvbmConfigTest, TomlSetsEveryKind) {
  auto config = KvbmConfig::from_toml(R"(
keep_tokens = false
[model]
num_layers = 4
outer_dim = 1
page_size = 32
inner_dim = 576
dtype_bytes = 2
[g1]
bytes = "1MiB"
layout = "layer_separate"
outer_contiguous = true
eviction = "lineage"
huge_pages = true
)");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model.num_layers, 4u);
  EXPECT_EQ(config->model.outer_dim, 1u);
  EXPECT_EQ(config->model.page_size, 32u);
  EXPECT_EQ(config->g1.bytes, 1u << 20);
  EXPECT_EQ(config->g1.num_blocks, 0u);
  EXPECT_EQ(config->g1.layout.kind, LayoutKind::kLayerSeparate);
  EXPECT_TRUE(config->g1.layout.outer_contiguous);
  EXPECT_EQ(config->g1.eviction, EvictionPolicyKind::kLineage);
  EXPECT_TRUE(config->g1.huge_pages);
  EXPECT_FALSE(config->keep_tokens);
  ASSERT_TRUE(config->validate().ok()) << config->validate();
  // 4 layers × 1 × 32 tokens × 576 × 2 bytes = 147456 bytes per block → 7 blocks in 1 MiB.
  EXPECT_EQ(config->g1_blocks(), (1u << 20) / 147456u);
}

TEST(KvbmConfigTest, UnknownKeyIsAnErrorListingKnownKeys) {
  auto config = KvbmConfig::from_toml("[g1]\nnum_block = 4\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("g1.num_block"));
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("g1.num_blocks"));
}

TEST(KvbmConfigTest, BadValuesNameTheKeyAndRange) {
  struct Case {
    std::string toml;
    std::string expect;
  };
  const Case cases[] = {
      {"[model]\npage_size = 0\n", "model.page_size must be an integer in [1, 65536]"},
      {"[model]\nouter_dim = 3\n", "model.outer_dim must be an integer in [1, 2]"},
      {"[model]\nnum_layers = -1\n", "model.num_layers must not be negative"},
      {"[g1]\neviction = \"fifo\"\n", "lru, priority_lru, lineage"},
      {"[g1]\nlayout = \"tiled\"\n", "g1.layout must be one of fully_contiguous, layer_separate"},
      {"[g1]\nalignment = 3\n", "g1.alignment must be a power of two"},
      {"[g1]\nbytes = \"12 parsecs\"\n", "g1.bytes"},
      {"[g1]\nhuge_pages = \"maybe\"\n", "g1.huge_pages must be true or false"},
      {"[g1]\nnum_blocks = [1, 2]\n", "g1.num_blocks must be an integer, a string or a bool"},
      {"[g1\n", "TOML parse error at line 1"},
  };
  for (const Case& c : cases) {
    auto config = KvbmConfig::from_toml(c.toml);
    ASSERT_FALSE(config.ok()) << c.toml;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.expect)) << c.toml;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(KvbmConfigTest, ValidateCatchesCapacityErrors) {
  KvbmConfig config;
  config.g1.num_blocks = 0;
  EXPECT_THAT(std::string(config.validate().message()), HasSubstr("g1: set g1.num_blocks or g1.bytes"));
  config.g1.num_blocks = 8;
  config.g1.bytes = 1 << 20;
  EXPECT_FALSE(config.validate().ok());
  config.g1.num_blocks = 0;
  config.g1.bytes = 16;
  EXPECT_THAT(std::string(config.validate().message()), HasSubstr("smaller than one block"));
  config.g1.bytes = 0;
  config.g1.num_blocks = 8;
  config.model.page_size = 0;
  EXPECT_THAT(std::string(config.validate().message()), HasSubstr("page_size"));
}

TEST(KvbmConfigTest, LowerTiersAreCheckedTogether) {
  KvbmConfig config;
  config.g3.num_blocks = 8;
  EXPECT_THAT(std::string(config.validate().message()), HasSubstr("g3 needs a g2 tier"));
  config.g2.bytes = 1;
  EXPECT_THAT(std::string(config.validate().message()), HasSubstr("g2.bytes = 1 is smaller than one block"));
  config.g2.bytes = 0;
  config.g2.num_blocks = 16;
  config.g3.layout.kind = LayoutKind::kLayerSeparate;
  EXPECT_THAT(std::string(config.validate().message()), HasSubstr("g3.layout must be fully_contiguous"));
  config.g3.layout.kind = LayoutKind::kFullyContiguous;
  EXPECT_TRUE(config.validate().ok()) << config.validate();
  config.g2.memory = MemoryKind::kDevice;
  EXPECT_THAT(std::string(config.validate().message()), HasSubstr("g2.memory must be system or pinned"));
  config.g2.memory = MemoryKind::kSystem;
  config.offload.max_bytes_in_flight = 1;
  EXPECT_THAT(std::string(config.validate().message()), HasSubstr("offload.max_bytes_in_flight"));

  auto parsed = KvbmConfig::from_toml(R"(
[g2]
bytes = "64MiB"
[g3]
num_blocks = 100
directory = "/var/tmp"
[offload]
g1_to_g2 = "write_back"
g2_to_g3 = "none"
g3_min_frequency = 3
max_bytes_in_flight = "8MiB"
)");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->g2.bytes, 64u << 20);
  EXPECT_EQ(parsed->g3.directory, "/var/tmp");
  EXPECT_EQ(parsed->offload.g1_to_g2, OffloadMode::kWriteBack);
  EXPECT_EQ(parsed->offload.g2_to_g3, OffloadMode::kNone);
  EXPECT_EQ(parsed->offload.g3_min_frequency, 3u);
  EXPECT_EQ(parsed->offload.max_bytes_in_flight, 8u << 20);
  auto back = KvbmConfig::from_toml(parsed->to_toml());
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << parsed->to_toml();
  EXPECT_EQ(back->to_toml(), parsed->to_toml());

  auto section = KvbmConfig::from_toml("[g4]\nnum_blocks = 1\n");
  EXPECT_THAT(std::string(section.status().message()), HasSubstr("unknown configuration section [g4]"));
}

TEST(KvbmConfigTest, LaterSourceWinsBetweenBlocksAndBytes) {
  KvbmConfig config;
  ASSERT_TRUE(config.set("g1.bytes", "64MiB").ok());
  EXPECT_EQ(config.g1.num_blocks, 0u);
  EXPECT_EQ(config.g1.bytes, 64u << 20);
  ASSERT_TRUE(config.set("g1.num_blocks", "10").ok());
  EXPECT_EQ(config.g1.bytes, 0u);
  EXPECT_EQ(config.g1_blocks(), 10u);
}

TEST(KvbmConfigTest, EnvironmentOverridesToml) {
  auto config = KvbmConfig::from_toml("[g1]\nnum_blocks = 4\neviction = \"lru\"\n");
  ASSERT_TRUE(config.ok());
  std::map<std::string, std::string> env = {{"KVBM_G1_EVICTION", "priority_lru"}, {"KVBM_MODEL_PAGE_SIZE", "64"}};
  auto getenv = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  ASSERT_TRUE(config->apply_env(getenv).ok());
  EXPECT_EQ(config->g1.eviction, EvictionPolicyKind::kPriorityLru);
  EXPECT_EQ(config->model.page_size, 64u);
  EXPECT_EQ(config->g1.num_blocks, 4u);

  env["KVBM_G1_NUM_BLOCKS"] = "zero";
  absl::Status s = config->apply_env(getenv);
  EXPECT_THAT(std::string(s.message()), HasSubstr("KVBM_G1_NUM_BLOCKS"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("g1.num_blocks must be an integer"));
}

TEST(KvbmConfigTest, ToTomlRoundTrips) {
  KvbmConfig config;
  config.model.num_layers = 3;
  config.g1.num_blocks = 0;
  config.g1.bytes = 3u << 20;
  config.g1.layout.kind = LayoutKind::kLayerSeparate;
  config.g1.eviction = EvictionPolicyKind::kLineage;
  config.keep_tokens = false;
  auto back = KvbmConfig::from_toml(config.to_toml());
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << config.to_toml();
  EXPECT_EQ(back->model, config.model);
  EXPECT_EQ(back->g1.bytes, config.g1.bytes);
  EXPECT_EQ(back->g1.num_blocks, 0u);
  EXPECT_EQ(back->g1.layout.kind, LayoutKind::kLayerSeparate);
  EXPECT_EQ(back->g1.eviction, EvictionPolicyKind::kLineage);
  EXPECT_FALSE(back->keep_tokens);
}

TEST(KvbmConfigTest, FileErrorsNameThePath) {
  auto missing = KvbmConfig::from_toml_file("/nonexistent/kvbm.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/kvbm.toml"));

  const std::string path = ::testing::TempDir() + "/kvbm_config_test.toml";
  {
    std::ofstream out(path);
    out << "[model]\npage_size = 100000\n";
  }
  auto bad = KvbmConfig::from_toml_file(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("model.page_size"));
  std::remove(path.c_str());
}

TEST(KvbmConfigTest, KeyTableDocumentsEveryKey) {
  const auto& keys = config_keys();
  ASSERT_FALSE(keys.empty());
  for (const ConfigKey& k : keys) {
    EXPECT_FALSE(k.description.empty()) << k.key;
    EXPECT_FALSE(k.allowed.empty()) << k.key;
    EXPECT_EQ(k.env.rfind("KVBM_", 0), 0u) << k.key;
    // Every documented key is accepted by set() (value validity aside).
    KvbmConfig config;
    absl::Status s = config.set(k.key, "");
    EXPECT_THAT(std::string(s.message()), ::testing::Not(HasSubstr("unknown configuration key"))) << k.key;
  }
}

}  // namespace
}  // namespace kvbm
