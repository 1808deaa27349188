// README.md's configuration reference must be exactly what the code documents (config_keys()).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "kvbm/manager/kvbm_config.h"

namespace kvbm {
namespace {

TEST(ConfigReferenceTest, ReadmeTableMatchesTheCode) {
  std::ifstream in(std::string(KVBM_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(in) << "README.md not found under " << KVBM_SOURCE_DIR;
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string readme = buffer.str();
  const std::string begin = "<!-- config-keys:begin -->\n";
  const std::string end = "<!-- config-keys:end -->";
  const auto b = readme.find(begin);
  const auto e = readme.find(end);
  ASSERT_NE(b, std::string::npos) << "README.md lacks the " << begin;
  ASSERT_NE(e, std::string::npos) << "README.md lacks the " << end;
  EXPECT_EQ(readme.substr(b + begin.size(), e - b - begin.size()), config_reference_markdown())
      << "README.md's configuration reference is stale: replace the table between the config-keys markers with "
         "the output of `build/bin/kvbm config keys`";
}

}  // namespace
}  // namespace kvbm
