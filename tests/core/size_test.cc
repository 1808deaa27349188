#include "kvbm/core/size.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvbm {
namespace {

using ::testing::HasSubstr;

std::uint64_t parsed(std::string_view text) {
  absl::StatusOr<std::uint64_t> value = parse_size(text);
  EXPECT_TRUE(value.ok()) << text << ": " << value.status();
  return value.ok() ? *value : ~std::uint64_t{0};
}

TEST(ParseSizeTest, BinaryUnits) {
  EXPECT_EQ(parsed("32GiB"), 32ull << 30);
  EXPECT_EQ(parsed("512MiB"), 512ull << 20);
  EXPECT_EQ(parsed("4KiB"), 4096u);
  EXPECT_EQ(parsed("1TiB"), 1ull << 40);
  EXPECT_EQ(parsed("2PiB"), 2ull << 50);
  EXPECT_EQ(parsed("7B"), 7u);
}

TEST(ParseSizeTest, DecimalUnitsAndPlainBytes) {
  EXPECT_EQ(parsed("1GB"), 1'000'000'000u);
  EXPECT_EQ(parsed("3KB"), 3000u);
  EXPECT_EQ(parsed("5MB"), 5'000'000u);
  EXPECT_EQ(parsed("2TB"), 2'000'000'000'000u);
  EXPECT_EQ(parsed("123"), 123u);
  EXPECT_EQ(parsed("0"), 0u);
}

TEST(ParseSizeTest, SpacesCaseAndDecimals) {
  EXPECT_EQ(parsed("  32 GiB "), 32ull << 30);
  EXPECT_EQ(parsed("32gib"), 32ull << 30);
  EXPECT_EQ(parsed("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parsed("0.5 KiB"), 512u);
  EXPECT_EQ(parsed(".25KiB"), 256u);
  EXPECT_EQ(parsed("1.0001KiB"), 1024u);  // 1024.1024 rounds down
  EXPECT_EQ(parsed("1.9"), 1u);
  EXPECT_EQ(parsed("18446744073709551615"), ~std::uint64_t{0});
}

TEST(ParseSizeTest, ErrorsNameInputAndAcceptedForms) {
  for (std::string_view bad : {"", "GiB", "12XB", "-1GiB", "1.GiB", "1.5.5GiB", "1 2GiB", "16384PiB",
                               "18446744073709551616", "99999999999999999999999"}) {
    SCOPED_TRACE(bad);
    absl::StatusOr<std::uint64_t> value = parse_size(bad);
    ASSERT_FALSE(value.ok());
    EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(value.status().message()), HasSubstr("\"" + std::string(bad) + "\""));
    EXPECT_THAT(std::string(value.status().message()), HasSubstr("GiB"));
  }
}

// "0.5B" once parsed as 0, which a tier's bytes read as "no tier" while "100B" was an error.
TEST(ParseSizeTest, NonZeroSizeUnderOneByteIsAnError) {
  for (std::string_view bad : {"0.5B", "0.5", "0.0001KiB"}) {
    absl::StatusOr<std::uint64_t> value = parse_size(bad);
    ASSERT_FALSE(value.ok()) << bad;
    EXPECT_THAT(std::string(value.status().message()), HasSubstr("less than one byte")) << bad;
  }
  EXPECT_EQ(*parse_size("0B"), 0u);
  EXPECT_EQ(*parse_size("0.0"), 0u);
  EXPECT_EQ(*parse_size("1.5B"), 1u);
}

TEST(FormatSizeTest, BinaryUnitsOneDecimal) {
  EXPECT_EQ(format_size(32ull << 30), "32.0 GiB");
  EXPECT_EQ(format_size(1536), "1.5 KiB");
  EXPECT_EQ(format_size(1023), "1023 B");
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(1ull << 40), "1.0 TiB");
  EXPECT_EQ(format_size(3ull << 50), "3.0 PiB");
  EXPECT_EQ(format_size(5ull << 60), "5120.0 PiB");
}

TEST(FormatSizeTest, RoundTripsThroughParse) {
  for (std::uint64_t bytes : {std::uint64_t{1} << 20, std::uint64_t{3} << 29, std::uint64_t{7} << 40}) {
    EXPECT_EQ(parsed(format_size(bytes)), bytes) << format_size(bytes);
  }
}

}  // namespace
}  // namespace kvbm
