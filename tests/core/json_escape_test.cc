#include "kvbm/core/json_escape.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace kvbm {
namespace {

TEST(JsonEscapeTest, PlainTextIsQuoted) {
  EXPECT_EQ(json_string(""), "\"\"");
  EXPECT_EQ(json_string("lru"), "\"lru\"");
  EXPECT_EQ(json_string("a b/c:{1}"), "\"a b/c:{1}\"");
}

TEST(JsonEscapeTest, QuotesAndBackslashesAreEscaped) {
  EXPECT_EQ(json_string("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(json_string("C:\\tmp\\"), R"("C:\\tmp\\")");
  EXPECT_EQ(json_string("\\\""), R"("\\\"")");
}

TEST(JsonEscapeTest, EveryControlCharacterIsAUnicodeEscape) {
  for (int byte = 0; byte < 0x20; ++byte) {
    char expected[16];
    std::snprintf(expected, sizeof(expected), "\"\\u%04x\"", byte);
    EXPECT_EQ(json_string(std::string(1, static_cast<char>(byte))), expected) << byte;
  }
  EXPECT_EQ(json_string("a\nb\tc"), "\"a\\u000ab\\u0009c\"");
  EXPECT_EQ(json_string("\x1f"), "\"\\u001f\"");  // lowercase hex
}

TEST(JsonEscapeTest, EmbeddedNulIsKept) { EXPECT_EQ(json_string(std::string_view("a\0b", 3)), "\"a\\u0000b\""); }

TEST(JsonEscapeTest, DelAndUtf8AreCopiedAsTheyAre) {
  EXPECT_EQ(json_string("\x7f"), "\"\x7f\"");
  EXPECT_EQ(json_string("caf\xc3\xa9 \xe2\x86\x92"), "\"caf\xc3\xa9 \xe2\x86\x92\"");
  EXPECT_EQ(json_string("\xff\xfe"), "\"\xff\xfe\"");  // not validated as UTF-8
}

TEST(JsonEscapeTest, AppendKeepsWhatIsThere) {
  std::string out = "{\"salt\": ";
  append_json_string(&out, "t\"1");
  out.push_back('}');
  EXPECT_EQ(out, "{\"salt\": \"t\\\"1\"}");
}

}  // namespace
}  // namespace kvbm
