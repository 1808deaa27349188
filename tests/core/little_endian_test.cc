#include "kvbm/core/little_endian.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kvbm {
namespace {

using ::testing::ElementsAre;

TEST(LittleEndianTest, StoreWritesLeastSignificantByteFirst) {
  unsigned char b[8] = {};
  store_le<std::uint64_t>(b, 0x0102030405060708ull);
  EXPECT_THAT(b, ElementsAre(0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01));
  std::byte s[4] = {};
  store_le<std::uint32_t>(s, 0xa1b2c3d4u);
  EXPECT_THAT(s, ElementsAre(std::byte{0xd4}, std::byte{0xc3}, std::byte{0xb2}, std::byte{0xa1}));
  char c[3] = {'x', 'x', 'x'};
  store_le<std::uint16_t>(c, 0xbeef);
  EXPECT_EQ(static_cast<unsigned char>(c[0]), 0xef);
  EXPECT_EQ(static_cast<unsigned char>(c[1]), 0xbe);
  EXPECT_EQ(c[2], 'x');  // writes exactly sizeof(T) bytes
}

TEST(LittleEndianTest, LoadInvertsStoreForEveryWidthAndByteType) {
  for (std::uint64_t v : {0ull, 1ull, 0x80ull, 0xffull, 0x1234ull, 0x8000'0000ull, 0xdead'beef'cafe'f00dull, ~0ull}) {
    unsigned char u[8];
    store_le<std::uint64_t>(u, v);
    EXPECT_EQ(load_le<std::uint64_t>(u), v);
    char c[4];
    store_le<std::uint32_t>(c, static_cast<std::uint32_t>(v));
    EXPECT_EQ(load_le<std::uint32_t>(c), static_cast<std::uint32_t>(v));  // bytes >= 0x80 in a signed char
    std::byte s[2];
    store_le<std::uint16_t>(s, static_cast<std::uint16_t>(v));
    EXPECT_EQ(load_le<std::uint16_t>(s), static_cast<std::uint16_t>(v));
  }
}

TEST(LittleEndianTest, LoadReadsLeastSignificantByteFirst) {
  const char bytes[] = "\x01\x02\x03\x04\x05\x06\x07\x88";
  EXPECT_EQ(load_le<std::uint64_t>(bytes), 0x8807060504030201ull);
  EXPECT_EQ(load_le<std::uint32_t>(bytes), 0x04030201u);
  EXPECT_EQ(load_le<std::uint16_t>(bytes + 6), 0x8807u);
  EXPECT_EQ(load_le<std::uint8_t>(bytes + 7), 0x88u);
}

TEST(LittleEndianTest, IsConstexpr) {
  constexpr auto bytes = [] {
    std::array<unsigned char, 4> b{};
    store_le<std::uint32_t>(b.data(), 0x11223344u);
    return b;
  }();
  static_assert(bytes[0] == 0x44 && bytes[3] == 0x11);
  static_assert(load_le<std::uint32_t>(bytes.data()) == 0x11223344u);
}

TEST(LittleEndianTest, AppendToStringAndVector) {
  std::string s = "k";
  append_le<std::uint32_t>(&s, 7);
  append_le<std::uint64_t>(&s, 0x0100000000000002ull);
  append_le<std::uint8_t>(&s, 0xff);
  EXPECT_EQ(s, std::string("k\x07\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x01\xff", 14));
  std::vector<std::byte> v;
  append_le<std::uint16_t>(&v, 0x0a0b);
  append_le<std::uint32_t>(&v, 1);
  EXPECT_THAT(v, ElementsAre(std::byte{0x0b}, std::byte{0x0a}, std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0}));
}

TEST(LittleEndianTest, ReaderReadsInOrder) {
  std::string in;
  append_le<std::uint8_t>(&in, 9);
  append_le<std::uint16_t>(&in, 0x1234);
  append_le<std::uint32_t>(&in, 0xfedcba98u);
  append_le<std::uint64_t>(&in, 42);
  in += "abc";
  LeReader r(in, "test blob");
  std::uint8_t a = 0;
  std::uint16_t b = 0;
  std::uint32_t c = 0;
  std::uint64_t d = 0;
  std::string e;
  ASSERT_TRUE(r.read<std::uint8_t>(&a, "a").ok());
  ASSERT_TRUE(r.read<std::uint16_t>(&b, "b").ok());
  ASSERT_TRUE(r.read<std::uint32_t>(&c, "c").ok());
  ASSERT_TRUE(r.read<std::uint64_t>(&d, "d").ok());
  EXPECT_EQ(r.pos(), 15u);
  EXPECT_EQ(r.remaining(), 3u);
  ASSERT_TRUE(r.read_bytes(&e, 3, "e").ok());
  EXPECT_EQ(a, 9u);
  EXPECT_EQ(b, 0x1234u);
  EXPECT_EQ(c, 0xfedcba98u);
  EXPECT_EQ(d, 42u);
  EXPECT_EQ(e, "abc");
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(LittleEndianTest, ReaderReportsTruncationAndDoesNotMove) {
  const std::string in("\x01\x02\x03\x04\x05", 5);
  LeReader r(in, "test blob");
  std::uint32_t x = 0;
  ASSERT_TRUE(r.read<std::uint32_t>(&x, "first").ok());
  std::uint16_t y = 0xabcd;
  const absl::Status s = r.read<std::uint16_t>(&y, "second");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "test blob: truncated at byte 4 of 5 (reading second)");
  EXPECT_EQ(y, 0xabcd);  // unchanged
  EXPECT_EQ(r.pos(), 4u);
  std::string bytes = "kept";
  EXPECT_EQ(r.read_bytes(&bytes, 2, "tail").message(), "test blob: truncated at byte 4 of 5 (reading tail)");
  EXPECT_EQ(bytes, "kept");
  std::uint8_t z = 0;
  ASSERT_TRUE(r.read<std::uint8_t>(&z, "last").ok());
  EXPECT_EQ(z, 5u);
  EXPECT_EQ(r.read<std::uint8_t>(&z, "past").message(), "test blob: truncated at byte 5 of 5 (reading past)");
}

TEST(LittleEndianTest, ReaderOnEmptyInput) {
  LeReader r(std::string_view(), "empty");
  std::uint64_t v = 0;
  EXPECT_EQ(r.read<std::uint64_t>(&v, "v").message(), "empty: truncated at byte 0 of 0 (reading v)");
  std::string none;
  EXPECT_TRUE(r.read_bytes(&none, 0, "nothing").ok());
}

}  // namespace
}  // namespace kvbm
