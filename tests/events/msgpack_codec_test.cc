// The msgpack codec against the wire format: round trips, the exact bytes of the types that matter
// (unsigned 64-bit hashes, nil), the older positional-array form, and hostile input.
#include "kvbm/events/msgpack_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <msgpack.hpp>
#include <random>
#include <string>

namespace kvbm {
namespace {

using ::testing::HasSubstr;

EventBatch sample_batch() {
  BlockStoredEvent stored;
  stored.block_hashes = {1, 0x8000000000000000ull, 0xFFFFFFFFFFFFFFFFull};
  stored.parent_block_hash = 0xDEADBEEFCAFEF00Dull;
  for (std::uint32_t i = 0; i < 11; ++i) stored.token_ids.push_back(i * 1000003u);
  stored.token_ids.push_back(0xFFFFFFFFu);
  stored.block_size = 4;
  stored.medium = "GPU";
  stored.lora_name = "adapter-a";
  BlockStoredEvent first;
  first.block_hashes = {42};
  first.block_size = 16;
  for (std::uint32_t i = 0; i < 16; ++i) first.token_ids.push_back(i);
  first.medium = "CPU";
  BlockRemovedEvent removed;
  removed.block_hashes = {7, 0x9000000000000001ull};
  removed.medium = "DISK";
  EventBatch batch;
  batch.timestamp = 1718000000.125;
  batch.events = {stored, first, removed, AllBlocksClearedEvent{}, BlockRemovedEvent{{3}, std::nullopt}};
  batch.data_parallel_rank = 2;
  return batch;
}

// A packer into a std::string, for hand-built payloads.
struct Buf {
  std::string s;
  void write(const char* d, std::size_t n) { s.append(d, n); }
};
using Packer = msgpack::packer<Buf>;
void str(Packer& pk, std::string_view v) {
  pk.pack_str(static_cast<std::uint32_t>(v.size()));
  pk.pack_str_body(v.data(), static_cast<std::uint32_t>(v.size()));
}

TEST(MsgpackCodecTest, RoundTripsEveryEventType) {
  const EventBatch batch = sample_batch();
  const std::string payload = encode_event_batch(batch);
  auto decoded = decode_event_batch(payload);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, batch);
}

TEST(MsgpackCodecTest, RoundTripsEmptyBatchWithNilRank) {
  EventBatch batch;
  batch.timestamp = 0.5;
  auto decoded = decode_event_batch(encode_event_batch(batch));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, batch);
  EXPECT_FALSE(decoded->data_parallel_rank.has_value());
}

TEST(MsgpackCodecTest, EncodesTheWireTypes) {
  const std::string payload = encode_event_batch(sample_batch());
  msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
  const msgpack::object& root = h.get();
  ASSERT_EQ(root.type, msgpack::type::ARRAY);
  ASSERT_EQ(root.via.array.size, 3u);
  EXPECT_EQ(root.via.array.ptr[0].type, msgpack::type::FLOAT64);
  EXPECT_EQ(root.via.array.ptr[2].type, msgpack::type::POSITIVE_INTEGER);
  const msgpack::object& ev = root.via.array.ptr[1].via.array.ptr[0];
  ASSERT_EQ(ev.type, msgpack::type::MAP);
  // The map form, keys in the order of the spec, type first.
  std::vector<std::string> keys;
  for (std::uint32_t i = 0; i < ev.via.map.size; ++i) keys.push_back(ev.via.map.ptr[i].key.as<std::string>());
  EXPECT_EQ(keys, (std::vector<std::string>{"type", "block_hashes", "parent_block_hash", "token_ids", "block_size",
                                            "lora_id", "medium", "lora_name"}));
  const msgpack::object& hashes = ev.via.map.ptr[1].val;
  // 2^63 is unsigned (0xcf), never a negative int.
  EXPECT_EQ(hashes.via.array.ptr[1].type, msgpack::type::POSITIVE_INTEGER);
  EXPECT_EQ(hashes.via.array.ptr[1].via.u64, 0x8000000000000000ull);
  EXPECT_NE(payload.find(std::string("\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9)), std::string::npos);
  EXPECT_EQ(ev.via.map.ptr[5].val.type, msgpack::type::NIL);  // lora_id
  // Cleared: the type key only.
  const msgpack::object& cleared = root.via.array.ptr[1].via.array.ptr[3];
  EXPECT_EQ(cleared.via.map.size, 1u);
}

// Token ids and hashes are written by hand (one resize per array): the bytes must be msgpack::packer's,
// the smallest encoding of each value, on both sides of every width boundary.
TEST(MsgpackCodecTest, IntegerArraysAreTheBytesMsgpackPackerWrites) {
  BlockStoredEvent e;
  e.token_ids = {0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x12345678, 0x7fffffffu, 0xffffffffu};
  e.block_hashes = {0,
                    0x7f,
                    0x80,
                    0xff,
                    0x100,
                    0xffff,
                    0x10000,
                    0xffffffffull,
                    0x100000000ull,
                    0x8000000000000000ull,
                    0xffffffffffffffffull};
  e.block_size = 1;  // one token per block: 11 tokens for 11 blocks
  const std::string payload = encode_event_batch(EventBatch{1.0, {e}, std::nullopt});
  Buf tokens;
  Packer tp(tokens);
  tp.pack_array(static_cast<std::uint32_t>(e.token_ids.size()));
  for (std::uint32_t t : e.token_ids) tp.pack_uint32(t);
  Buf hashes;
  Packer hp(hashes);
  hp.pack_array(static_cast<std::uint32_t>(e.block_hashes.size()));
  for (std::uint64_t h : e.block_hashes) hp.pack_uint64(h);
  // Each key is a fixstr: 0xa0 | its length.
  EXPECT_NE(payload.find(std::string("\xa9token_ids") + tokens.s + "\xaa" + "block_size"), std::string::npos);
  EXPECT_NE(payload.find(std::string("\xac") + "block_hashes" + hashes.s + "\xb1" + "parent_block_hash"),
            std::string::npos);
  absl::StatusOr<EventBatch> decoded = decode_event_batch(payload);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->events, (std::vector<KvEvent>{e}));
}

TEST(MsgpackCodecTest, NilParentAndMedium) {
  EventBatch batch;
  BlockStoredEvent e;
  e.block_hashes = {5};
  e.block_size = 1;
  e.token_ids = {9};
  batch.events.push_back(e);
  const std::string payload = encode_event_batch(batch);
  msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
  const msgpack::object& ev = h.get().via.array.ptr[1].via.array.ptr[0];
  EXPECT_EQ(ev.via.map.ptr[2].val.type, msgpack::type::NIL);  // parent_block_hash
  EXPECT_EQ(ev.via.map.ptr[6].val.type, msgpack::type::NIL);  // medium
  EXPECT_EQ(ev.via.map.ptr[7].val.type, msgpack::type::NIL);  // lora_name
  auto decoded = decode_event_batch(payload);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, batch);
}

TEST(MsgpackCodecTest, DecodesPositionalArrayForm) {
  Buf b;
  Packer pk(b);
  pk.pack_array(3);
  pk.pack_double(12.5);
  pk.pack_array(4);
  // Full BlockStored with one extra trailing item (a newer field).
  pk.pack_array(9);
  str(pk, "BlockStored");
  pk.pack_array(2);
  pk.pack_uint64(0xF000000000000000ull);
  pk.pack_int64(-2);  // an older publisher's signed hash
  pk.pack_uint64(11);
  pk.pack_array(2);
  pk.pack_uint32(1);
  pk.pack_uint32(2);
  pk.pack_uint32(1);
  pk.pack_int64(3);
  str(pk, "CPU");
  str(pk, "lora");
  pk.pack_nil();
  // The oldest BlockStored: no medium, no lora_name.
  pk.pack_array(6);
  str(pk, "BlockStored");
  pk.pack_array(1);
  pk.pack_uint64(4);
  pk.pack_nil();
  pk.pack_array(2);
  pk.pack_uint32(5);
  pk.pack_uint32(6);
  pk.pack_uint32(2);
  pk.pack_nil();
  pk.pack_array(3);
  str(pk, "BlockRemoved");
  pk.pack_array(1);
  pk.pack_uint64(4);
  str(pk, "GPU");
  pk.pack_array(1);
  str(pk, "AllBlocksCleared");
  pk.pack_nil();

  auto decoded = decode_event_batch(b.s);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->events.size(), 4u);
  const auto& s = std::get<BlockStoredEvent>(decoded->events[0]);
  EXPECT_EQ(s.block_hashes, (std::vector<std::uint64_t>{0xF000000000000000ull, 0xFFFFFFFFFFFFFFFEull}));
  EXPECT_EQ(s.parent_block_hash, 11u);
  EXPECT_EQ(s.token_ids, (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(s.block_size, 1u);
  EXPECT_EQ(s.lora_id, 3);
  EXPECT_EQ(s.medium, "CPU");
  EXPECT_EQ(s.lora_name, "lora");
  const auto& old = std::get<BlockStoredEvent>(decoded->events[1]);
  EXPECT_FALSE(old.medium.has_value());
  EXPECT_FALSE(old.parent_block_hash.has_value());
  EXPECT_EQ(std::get<BlockRemovedEvent>(decoded->events[2]).medium, "GPU");
  EXPECT_TRUE(std::holds_alternative<AllBlocksClearedEvent>(decoded->events[3]));
  EXPECT_FALSE(decoded->data_parallel_rank.has_value());
}

TEST(MsgpackCodecTest, MapFormIgnoresOptionalAndUnknownKeys) {
  Buf b;
  Packer pk(b);
  pk.pack_array(3);
  pk.pack_double(1);
  pk.pack_array(1);
  pk.pack_map(7);
  str(pk, "block_hashes");  // "type" need not come first
  pk.pack_array(1);
  pk.pack_uint64(1);
  str(pk, "type");
  str(pk, "BlockStored");
  str(pk, "parent_block_hash");
  pk.pack_nil();
  str(pk, "token_ids");
  pk.pack_array(2);
  pk.pack_uint32(7);
  pk.pack_uint32(8);
  str(pk, "block_size");
  pk.pack_uint32(2);
  str(pk, "group_idx");
  pk.pack_uint32(1);
  str(pk, "future_field");
  pk.pack_map(0);
  pk.pack_uint32(0);
  auto decoded = decode_event_batch(b.s);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<BlockStoredEvent>(decoded->events[0]).block_size, 2u);
}

// Shape C (vLLM main): the batch is a map; the rank key is omitted when nil; unknown keys are ignored.
TEST(MsgpackCodecTest, DecodesMapBatch) {
  for (const bool with_rank : {false, true}) {
    Buf b;
    Packer pk(b);
    pk.pack_map(with_rank ? 4 : 3);
    str(pk, "events");  // any key order
    pk.pack_array(1);
    pk.pack_map(2);
    str(pk, "type");
    str(pk, "BlockRemoved");
    str(pk, "block_hashes");
    pk.pack_array(1);
    pk.pack_int64(-1);  // a signed hash: the same 64 bits as 2^64 - 1
    str(pk, "future_batch_field");
    pk.pack_array(0);
    str(pk, "ts");
    pk.pack_uint32(17);  // an integer timestamp
    if (with_rank) {
      str(pk, "data_parallel_rank");
      pk.pack_uint32(3);
    }
    auto decoded = decode_event_batch(b.s);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->timestamp, 17.0);
    EXPECT_EQ(std::get<BlockRemovedEvent>(decoded->events[0]).block_hashes,
              (std::vector<std::uint64_t>{0xFFFFFFFFFFFFFFFFull}));
    EXPECT_EQ(decoded->data_parallel_rank, with_rank ? std::optional<std::int64_t>(3) : std::nullopt);
  }
}

// Shapes A/B: the rank may be missing, and positions after it are ignored.
TEST(MsgpackCodecTest, ArrayBatchRankOptionalExtraPositionsIgnored) {
  for (const std::uint32_t items : {2u, 5u}) {
    Buf b;
    Packer pk(b);
    pk.pack_array(items);
    pk.pack_double(2.5);
    pk.pack_array(1);
    pk.pack_array(1);
    str(pk, "AllBlocksCleared");
    for (std::uint32_t i = 2; i < items; ++i) pk.pack_uint32(i);
    auto decoded = decode_event_batch(b.s);
    ASSERT_TRUE(decoded.ok()) << items << ": " << decoded.status();
    EXPECT_EQ(decoded->events.size(), 1u);
    EXPECT_EQ(decoded->data_parallel_rank, items > 2 ? std::optional<std::int64_t>(2) : std::nullopt);
  }
}

TEST(MsgpackCodecTest, EncodesShapeCOnRequest) {
  EventBatch batch = sample_batch();
  for (const bool with_rank : {true, false}) {
    batch.data_parallel_rank = with_rank ? std::optional<std::int64_t>(2) : std::nullopt;
    const std::string payload = encode_event_batch(batch, BatchFormat::kMap);
    msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
    ASSERT_EQ(h.get().type, msgpack::type::MAP);
    std::vector<std::string> keys;
    for (std::uint32_t i = 0; i < h.get().via.map.size; ++i)
      keys.push_back(h.get().via.map.ptr[i].key.as<std::string>());
    EXPECT_EQ(keys, with_rank ? (std::vector<std::string>{"ts", "events", "data_parallel_rank"})
                              : (std::vector<std::string>{"ts", "events"}));
    auto decoded = decode_event_batch(payload);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, batch);
  }
  // The default stays shape B.
  const std::string b = encode_event_batch(batch);
  EXPECT_EQ(msgpack::unpack(b.data(), b.size()).get().type, msgpack::type::ARRAY);
}

// A one-event batch around a hand-built event.
template <typename F>
std::string batch_with(F&& pack_event, int items = 3) {
  Buf b;
  Packer pk(b);
  pk.pack_array(static_cast<std::uint32_t>(items));
  pk.pack_double(1);
  pk.pack_array(1);
  pack_event(pk);
  if (items >= 3) pk.pack_nil();
  return b.s;
}

TEST(MsgpackCodecTest, RejectsMalformedInputWithClearErrors) {
  struct Case {
    std::string name;
    std::string payload;
    std::string message;
  };
  const std::string good = encode_event_batch(sample_batch());
  std::vector<Case> cases = {
      {"empty", "", "empty payload"},
      {"truncated", good.substr(0, good.size() / 2), "truncated"},
      {"trailing", good + "x", "trailing bytes"},
      {"neither array nor map", std::string("\xa1t", 2),
       "batch: expected array [ts, events, data_parallel_rank] or map"},
      {"map without ts", std::string("\x81\xa1t\x01", 4), "batch: map without \"ts\""},
      {"one item", std::string("\x91\x01", 2), "expected an array [ts, events, data_parallel_rank], got 1 item(s)"},
      {"bin hash", batch_with([](Packer& pk) {
         pk.pack_map(2);
         str(pk, "type");
         str(pk, "BlockRemoved");
         str(pk, "block_hashes");
         pk.pack_array(1);
         pk.pack_bin(32);
         pk.pack_bin_body(std::string(32, 'h').data(), 32);
       }),
       "events[0].block_hashes[0]: 32-byte bin hash: kvbm reads 64-bit integer block hashes only"},
      {"short tokens", batch_with([](Packer& pk) {
         pk.pack_map(5);
         str(pk, "type");
         str(pk, "BlockStored");
         str(pk, "block_hashes");
         pk.pack_array(2);
         pk.pack_uint32(1);
         pk.pack_uint32(2);
         str(pk, "parent_block_hash");
         pk.pack_nil();
         str(pk, "token_ids");
         pk.pack_array(3);
         for (int i = 0; i < 3; ++i) pk.pack_uint32(1);
         str(pk, "block_size");
         pk.pack_uint32(4);
       }),
       "events[0]: BlockStored has 3 token_ids for 2 block(s) × block_size 4, expected 8"},
      {"short tokens, positional", batch_with([](Packer& pk) {
         pk.pack_array(5);
         str(pk, "BlockStored");
         pk.pack_array(1);
         pk.pack_uint32(1);
         pk.pack_nil();
         pk.pack_array(0);
         pk.pack_uint32(16);
       }),
       "BlockStored has 0 token_ids for 1 block(s) × block_size 16, expected 16"},
      {"event neither map nor array", batch_with([](Packer& pk) { pk.pack_uint32(1); }),
       "events[0]: expected map or array"},
      {"unknown type", batch_with([](Packer& pk) {
         pk.pack_map(1);
         str(pk, "type");
         str(pk, "BlockMoved");
       }),
       "unknown event type \"BlockMoved\""},
      {"no type", batch_with([](Packer& pk) { pk.pack_map(0); }), "no \"type\" key"},
      {"hash is a string", batch_with([](Packer& pk) {
         pk.pack_map(2);
         str(pk, "type");
         str(pk, "BlockRemoved");
         str(pk, "block_hashes");
         pk.pack_array(1);
         str(pk, "x");
       }),
       "events[0].block_hashes[0]: expected int, got str"},
      {"missing token_ids", batch_with([](Packer& pk) {
         pk.pack_map(4);
         str(pk, "type");
         str(pk, "BlockStored");
         str(pk, "block_hashes");
         pk.pack_array(0);
         str(pk, "parent_block_hash");
         pk.pack_nil();
         str(pk, "block_size");
         pk.pack_uint32(1);
       }),
       "without \"token_ids\""},
      {"negative token", batch_with([](Packer& pk) {
         pk.pack_array(5);
         str(pk, "BlockStored");
         pk.pack_array(0);
         pk.pack_nil();
         pk.pack_array(1);
         pk.pack_int32(-1);
         pk.pack_uint32(1);
       }),
       "events[0][3][0]: expected an int in [0, 2^32)"},
      {"short positional", batch_with([](Packer& pk) {
         pk.pack_array(2);
         str(pk, "BlockStored");
         pk.pack_array(0);
       }),
       "BlockStored array needs at least 5 items, got 2"},
      {"medium is an int", batch_with([](Packer& pk) {
         pk.pack_array(3);
         str(pk, "BlockRemoved");
         pk.pack_array(0);
         pk.pack_uint32(1);
       }),
       "expected str or nil"},
      {"huge declared array", std::string("\x93\xcb\0\0\0\0\0\0\0\0\xdd\xff\xff\xff\xff", 15), "malformed"},
  };
  for (const Case& c : cases) {
    auto r = decode_event_batch(c.payload);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message)) << c.name;
  }
}

TEST(MsgpackCodecTest, EveryTruncationFails) {
  const std::string good = encode_event_batch(sample_batch());
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decode_event_batch(good.substr(0, n)).ok()) << n;
  }
}

// Random bytes, and valid payloads with random bytes flipped: errors or values, never a crash.
TEST(MsgpackCodecTest, FuzzNeverCrashes) {
  std::mt19937_64 rng(12345);
  const std::string good = encode_event_batch(sample_batch());
  int ok = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string payload;
    if (i % 2 == 0) {
      payload.resize(rng() % 64);
      for (char& c : payload) c = static_cast<char>(rng());
      if (!payload.empty() && i % 4 == 0) payload[0] = static_cast<char>(0x93);  // looks like a batch
    } else {
      payload = good;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) payload[rng() % payload.size()] = static_cast<char>(rng());
    }
    auto r = decode_event_batch(payload);
    if (r.ok()) {
      ++ok;
      // Whatever decoded re-encodes and decodes to the same value.
      const std::string encoded = encode_event_batch(*r);
      auto again = decode_event_batch(encoded);
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ(encode_event_batch(*again), encoded) << i;
    } else {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  RecordProperty("decoded_ok", ok);
  // Both branches must be exercised: a decoder that rejected everything, or accepted everything, fails.
  EXPECT_GT(ok, 0);
  EXPECT_LT(ok, 4000);
}

}  // namespace
}  // namespace kvbm
