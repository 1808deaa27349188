#include "kvbm/manager/kvbm_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

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

  auto section = KvbmConfig::from_toml("[g9]\nnum_blocks = 1\n");
  EXPECT_THAT(std::string(section.status().message()), HasSubstr("unknown configuration section [g9]"));
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

// A directory read as a stream yields nothing: it once resolved to the defaults with no error.
TEST(KvbmConfigTest, DirectoryIsNotAConfigurationFile) {
  const std::string dir = ::testing::TempDir();
  auto loaded = KvbmConfig::from_toml_file(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("'" + dir + "' is a directory"));
  std::vector<absl::Status> errors;
  (void)KvbmConfig::resolve(dir, {}, &errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(std::string(errors[0].message()), HasSubstr("is a directory"));
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

// ---- Every error at once (issue 8/8): from_toml_collect, check(), the layers and their precedence ----

std::vector<std::string> messages(const std::vector<absl::Status>& errors) {
  std::vector<std::string> out;
  for (const absl::Status& s : errors) out.emplace_back(s.message());
  return out;
}

TEST(KvbmConfigCheckTest, TomlCollectsEveryBadKey) {
  std::vector<absl::Status> errors;
  const KvbmConfig config = KvbmConfig::from_toml_collect(R"(
keep_tokens = "sometimes"
[model]
page_size = 0
inner_dim = 64
[g1]
eviction = "fifo"
num_block = 4
bytes = "12 parsecs"
[g9]
x = 1
[offload]
batch_blocks = [1, 2]
)",
                                                          &errors);
  const std::vector<std::string> m = messages(errors);
  ASSERT_EQ(m.size(), 7u) << ::testing::PrintToString(m);
  EXPECT_THAT(m[0], HasSubstr("keep_tokens must be true or false"));
  EXPECT_THAT(m[1], HasSubstr("model.page_size must be an integer in [1, 65536], got '0'"));
  EXPECT_THAT(m[2], HasSubstr("g1.eviction must be one of lru"));
  EXPECT_THAT(m[3], HasSubstr("unknown configuration key 'g1.num_block'; did you mean g1.num_blocks? known keys in "
                              "[g1]: g1.num_blocks, g1.bytes"));
  EXPECT_THAT(m[4], HasSubstr("g1.bytes: size \"12 parsecs\""));
  EXPECT_THAT(m[4], HasSubstr("GiB"));
  EXPECT_THAT(m[5], HasSubstr("unknown configuration section [g9]; known sections: model, g1, g2, g3, offload"));
  EXPECT_THAT(m[6], HasSubstr("offload.batch_blocks must be an integer, a string or a bool"));
  // The good keys were applied; the bad ones kept their defaults.
  EXPECT_EQ(config.model.inner_dim, 64u);
  EXPECT_EQ(config.model.page_size, KvbmConfig{}.model.page_size);
  // from_toml returns the first of the same errors.
  auto first = KvbmConfig::from_toml("[model]\npage_size = 0\n[g1]\neviction = \"fifo\"\n");
  ASSERT_FALSE(first.ok());
  EXPECT_THAT(std::string(first.status().message()), HasSubstr("model.page_size"));
}

TEST(KvbmConfigCheckTest, SyntaxErrorIsTheOnlyError) {
  std::vector<absl::Status> errors;
  (void)KvbmConfig::from_toml_collect("[model]\npage_size = 0\n[g1\n", &errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(std::string(errors[0].message()), HasSubstr("TOML parse error at line 3"));
}

TEST(KvbmConfigCheckTest, CheckReportsEveryProblemAndValidateTheFirst) {
  KvbmConfig config;
  config.model.page_size = 0;
  config.model.dtype_bytes = 99;
  config.g1.num_blocks = 0;
  config.g2.memory = MemoryKind::kDevice;
  config.g3.num_blocks = 8;
  config.g3.layout.kind = LayoutKind::kLayerSeparate;
  config.g3.layout.alignment = 3;
  const std::vector<std::string> m = messages(config.check());
  ASSERT_EQ(m.size(), 7u) << ::testing::PrintToString(m);
  EXPECT_THAT(m[0], HasSubstr("model.page_size must be an integer in [1, 65536], got 0"));
  EXPECT_THAT(m[1], HasSubstr("model.dtype_bytes must be an integer in [1, 16], got 99"));
  EXPECT_THAT(m[2], HasSubstr("g1: set g1.num_blocks or g1.bytes"));
  EXPECT_THAT(m[3], HasSubstr("g3.alignment must be a power of two"));
  EXPECT_THAT(m[4], HasSubstr("g2.memory must be system or pinned"));
  EXPECT_THAT(m[5], HasSubstr("g3 needs a g2 tier"));
  EXPECT_THAT(m[6], HasSubstr("g3.layout must be fully_contiguous"));
  EXPECT_EQ(config.validate(), config.check().front());
  EXPECT_TRUE(KvbmConfig{}.check().empty());
}

TEST(KvbmConfigCheckTest, CheckWithABadModelDoesNotDivideByZero) {
  KvbmConfig config;
  config.model.inner_dim = 0;  // bytes_per_block() == 0
  config.g1.num_blocks = 0;
  config.g1.bytes = 1 << 20;
  const std::vector<std::string> m = messages(config.check());
  ASSERT_EQ(m.size(), 1u) << ::testing::PrintToString(m);
  EXPECT_THAT(m[0], HasSubstr("model.inner_dim"));
}

TEST(KvbmConfigCheckTest, PrecedenceDefaultsFileEnvironmentSet) {
  const std::string path = ::testing::TempDir() + "/kvbm_config_precedence.toml";
  {
    std::ofstream out(path);
    out << "[model]\npage_size = 32\nnum_layers = 2\n[g1]\nnum_blocks = 4\neviction = \"lru\"\n";
  }
  std::map<std::string, std::string> env = {{"KVBM_G1_EVICTION", "priority_lru"}, {"KVBM_MODEL_PAGE_SIZE", "64"}};
  auto getenv = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  std::vector<absl::Status> errors;
  KvbmConfig c = KvbmConfig::resolve(path, {"model.page_size=128", " g2.bytes = 1MiB "}, &errors, getenv);
  ASSERT_TRUE(errors.empty()) << ::testing::PrintToString(messages(errors));
  EXPECT_EQ(c.model.num_layers, 2u);                           // file over default
  EXPECT_EQ(c.model.inner_dim, KvbmConfig{}.model.inner_dim);  // default
  EXPECT_EQ(c.g1.num_blocks, 4u);                              // file
  EXPECT_EQ(c.g1.eviction, EvictionPolicyKind::kPriorityLru);  // environment over file
  EXPECT_EQ(c.model.page_size, 128u);                          // --set over environment
  EXPECT_EQ(c.g2.bytes, 1u << 20);                             // --set, whitespace trimmed

  // Every layer's errors, in order: file, environment, --set, then check().
  {
    std::ofstream out(path);
    out << "[g1]\nnum_blocks = 0\n";
  }
  env = {{"KVBM_G2_NUM_BLOCKS", "many"}};
  errors.clear();
  (void)KvbmConfig::resolve(path, {"g3.eviction=fifo", "novalue", "g1.num_blocks=0"}, &errors, getenv);
  const std::vector<std::string> m = messages(errors);
  ASSERT_EQ(m.size(), 5u) << ::testing::PrintToString(m);
  EXPECT_THAT(m[0], HasSubstr(path + ": g1.num_blocks must be an integer in [1, "));
  EXPECT_THAT(m[1], HasSubstr("environment KVBM_G2_NUM_BLOCKS: g2.num_blocks must be an integer"));
  EXPECT_THAT(m[2], HasSubstr("--set g3.eviction=fifo: g3.eviction must be one of lru"));
  EXPECT_THAT(m[3], HasSubstr("--set novalue: expected key=value"));
  EXPECT_THAT(m[4], HasSubstr("--set g1.num_blocks=0: g1.num_blocks must be an integer in [1, "));
  std::remove(path.c_str());

  errors.clear();
  (void)KvbmConfig::resolve("/nonexistent/kvbm.toml", {}, &errors, getenv);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].code(), absl::StatusCode::kNotFound);
}

TEST(KvbmConfigCheckTest, EnvironmentCollectsEveryBadVariable) {
  std::map<std::string, std::string> env = {
      {"KVBM_G1_NUM_BLOCKS", "zero"}, {"KVBM_G2_EVICTION", "mru"}, {"KVBM_KEEP_TOKENS", "no"}};
  auto getenv = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  KvbmConfig c;
  std::vector<absl::Status> errors;
  c.apply_env_collect(&errors, getenv);
  ASSERT_EQ(errors.size(), 2u) << ::testing::PrintToString(messages(errors));
  EXPECT_FALSE(c.keep_tokens);  // the good variable still applied
  EXPECT_EQ(c.apply_env(getenv), errors.front());
}

TEST(KvbmConfigCheckTest, StringsWithQuotesAndBackslashesRoundTrip) {
  KvbmConfig c;
  c.g2.num_blocks = 4;
  c.g3.num_blocks = 4;
  c.g3.directory = "/tmp/a \"quoted\" \\dir\t\x01";
  auto back = KvbmConfig::from_toml(c.to_toml());
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << c.to_toml();
  EXPECT_EQ(back->g3.directory, c.g3.directory);
}

// Found by config_toml_fuzz: toml++ asserts (aborts, in builds with assertions) on a table header that
// does not start with a key. kvbm reports them as parse errors; real headers, strings and multi-line
// arrays that merely contain such text still parse.
TEST(KvbmConfigCheckTest, TableHeadersThatCrashedTheTomlParser) {
  for (const char* text : {"[\x01=]\nnum67440737095\n", "[=]\n", "[ .]\n", "[[=]]\n", "[#]\n", "[\x7f]\n",
                           "[[[[g3]\ng\x11nugm", "x = [}\n", "x = [1, #c\n }\n", "x = {a = [}]}\n", "[\n", "[[\r\n",
                           "[g1]\nnum_blocks = 4\n  [,]\n", "a = [1,\n 2]\n[}]\n", "s = \"x\" # [\n[!]\n"}) {
    std::vector<absl::Status> errors;
    (void)KvbmConfig::from_toml_collect(text, &errors);
    ASSERT_EQ(errors.size(), 1u) << text;
    EXPECT_THAT(std::string(errors[0].message()), HasSubstr("TOML parse error at line")) << text;
  }
  // Non-ASCII outside string values: toml++'s whitespace tables hit __builtin_unreachable (UB).
  for (const char* text : {"\n\xce\x9a ", "[\"\xce\x9a\"]\n", "g1 = { \"\xc3\xa9\" = 1 }\n", "x = 1\xc3\xa9\n",
                           "x = 8+8[\'\'\'\xc8\x9c\'\'\'\n", "[g3]\ndirectory = \"\"\"a\\\n  \xce\x9a\"\"\"\n",
                           "[g3]\ndirectory = \"\"\"a\\ \xe3\x80\x81\"\"\"\n"}) {
    std::vector<absl::Status> errors;
    (void)KvbmConfig::from_toml_collect(text, &errors);
    ASSERT_EQ(errors.size(), 1u) << text;
    EXPECT_THAT(std::string(errors[0].message()), HasSubstr("TOML parse error at line")) << text;
    EXPECT_THAT(std::string(errors[0].message()), HasSubstr("non-ASCII")) << text;
  }
  auto unicode = KvbmConfig::from_toml(
      "\xEF\xBB\xBF# caf\xc3\xa9 \xce\x9a\n[g3] # \xce\x9a\ndirectory = \"/tmp/caf\xc3\xa9/\xce\x9a\"\n"
      "g2 = { num_blocks = 4, directory = 1 }\n");
  ASSERT_FALSE(unicode.ok());  // [g3] g2 = {...} is g3.g2, not a key, but the document parsed
  EXPECT_THAT(std::string(unicode.status().message()), HasSubstr("unknown configuration key 'g3.g2'"));
  auto unicode_ok = KvbmConfig::from_toml("[g3] # \xce\x9a\ndirectory = \"\"\"/tmp/caf\xc3\xa9\n\xce\x9a\"\"\"\n");
  ASSERT_TRUE(unicode_ok.ok()) << unicode_ok.status();
  EXPECT_EQ(unicode_ok->g3.directory, "/tmp/caf\xc3\xa9\n\xce\x9a");

  auto ok = KvbmConfig::from_toml(
      "[g3]\ndirectory = \"\"\"\n[=]\n\\\n[#]\"\"\"\n\n[ g2 ]\nnum_blocks = 4\n[\"g1\"]\nbytes = '[=]'\n");
  ASSERT_FALSE(ok.ok());  // '[=]' is not a size, but the document parsed
  EXPECT_THAT(std::string(ok.status().message()), HasSubstr("g1.bytes: size \"[=]\""));
  auto fine = KvbmConfig::from_toml("[g3]\ndirectory = \"\"\"\n[=]\n[#]\"\"\"\n[ g2 ]\nnum_blocks = 4\n");
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->g3.directory, "[=]\n[#]");
  EXPECT_EQ(fine->g2.num_blocks, 4u);
}

}  // namespace
}  // namespace kvbm

namespace kvbm {
namespace {

// Issue 26: the events.* keys from TOML, the environment and --set; the rank's "none"; errors naming the key.
TEST(KvbmConfigEventsTest, EventsKeysFromEverySource) {
  auto c = KvbmConfig::from_toml(
      "[events]\nendpoint = \"tcp://*:5557\"\nreplay_endpoint = \"tcp://*:5558\"\ntopic = \"kv\"\n"
      "data_parallel_rank = 2\nhwm = 10\nreplay_buffer_batches = 5\nbatch_format = \"map\"\n"
      "nats_url = \"nats://127.0.0.1:4222\"\nnats_subject = \"kv.events\"\nmedium_g2 = \"host\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->events.endpoint, "tcp://*:5557");
  EXPECT_EQ(c->events.replay_endpoint, "tcp://*:5558");
  EXPECT_EQ(c->events.topic, "kv");
  EXPECT_EQ(c->events.data_parallel_rank, 2);
  EXPECT_EQ(c->events.hwm, 10u);
  EXPECT_EQ(c->events.replay_buffer_batches, 5u);
  EXPECT_EQ(c->events.batch_format, BatchFormat::kMap);
  EXPECT_EQ(c->events.nats_url, "nats://127.0.0.1:4222");
  EXPECT_EQ(c->events.nats_subject, "kv.events");
  EXPECT_EQ(c->events.media[1], "host");
  EXPECT_TRUE(c->events.enabled());
  // The resolved configuration round-trips, rank included ("none" when unset).
  auto back = KvbmConfig::from_toml(c->to_toml());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->to_toml(), c->to_toml());
  EXPECT_THAT(KvbmConfig{}.to_toml(), HasSubstr("data_parallel_rank = \"none\""));

  std::map<std::string, std::string> env = {{"KVBM_EVENTS_DATA_PARALLEL_RANK", "none"},
                                            {"KVBM_EVENTS_MEDIUM_G3", "ssd"}};
  ASSERT_TRUE(c->apply_env([&](const char* name) -> const char* {
                 auto it = env.find(name);
                 return it == env.end() ? nullptr : it->second.c_str();
               }).ok());
  EXPECT_EQ(c->events.data_parallel_rank, -1);
  EXPECT_EQ(c->events.media[2], "ssd");

  std::vector<absl::Status> errors;
  c->apply_overrides({"events.data_parallel_rank=-3", "events.batch_format=tuple", "events.medium_g1="}, &errors);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_THAT(std::string(errors[0].message()),
              HasSubstr("events.data_parallel_rank must be none or an integer in [0, 65535], got '-3'"));
  EXPECT_THAT(std::string(errors[1].message()),
              HasSubstr("events.batch_format must be one of array, map, got 'tuple'"));
  EXPECT_THAT(std::string(c->validate().message()), HasSubstr("events.medium_g1 must be a non-empty string"));
  EXPECT_FALSE(KvbmConfig{}.events.enabled());
  KvbmConfig replay_only;
  replay_only.events.replay_endpoint = "tcp://*:5558";
  EXPECT_THAT(std::string(replay_only.validate().message()),
              HasSubstr("events.replay_endpoint \"tcp://*:5558\" needs events.endpoint"));
}

}  // namespace
}  // namespace kvbm
