// KvBlockManager::create(config, parts): a manager built around user-supplied pieces — a G2 storage over the
// test's own buffer, a custom G2 layout, and a G4 RemoteStore that is a directory of files (the user's
// backend, so it lives here) — moves blocks through them byte-exact, counts them in its stats and metrics,
// and refuses pieces that do not fit the configuration with one line naming the tier and both values.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <string>

#include <unistd.h>

#include "kvbm/manager/kv_block_manager.h"
#include "support/block_bytes.h"
#include "support/engine_request.h"

namespace kvbm {
namespace {

using testing::expected_byte;
using ::testing::HasSubstr;
using testing::make_seq;
using testing::run_request;
using testing::wrong_bytes;

// 2 layers × 2 × 4 tokens × 16 × 2 bytes = 512 bytes per block.
const ModelConfig kModel{.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 16, .dtype_bytes = 2};

KvbmConfig parts_config(std::uint32_t g1 = 4, std::uint32_t g2 = 8) {
  KvbmConfig config;
  config.model = kModel;
  config.g1.num_blocks = g1;
  config.g2.num_blocks = g2;
  config.offload.batch_blocks = 8;
  config.g4.deadline_ms = 5000;  // what is found is checked here, not how fast (sanitizer builds are slow)
  return config;
}

// Host memory the user owns: one region over `bytes`, which must outlive the manager.
class BufferStorage final : public Storage {
 public:
  explicit BufferStorage(std::span<std::byte> bytes) : bytes_(bytes) {}
  StorageKind kind() const override { return StorageKind::kSystem; }
  std::size_t num_regions() const override { return 1; }
  std::uint64_t region_size(std::size_t) const override { return bytes_.size(); }
  std::span<std::byte> host_region(std::size_t) const override { return bytes_; }

 private:
  std::span<std::byte> bytes_;
};

// A custom layout: one region, blocks stored last slot first and each block's chunks in reverse canonical
// order — nothing a built-in layout does, so bytes only come back right if every copy asks the layout.
class ReversedLayout final : public Layout {
 public:
  ReversedLayout(const ModelConfig& model, std::uint32_t num_blocks) : Layout(model, num_blocks) {}
  LayoutKind kind() const override { return LayoutKind::kCustom; }
  std::string name() const override { return "reversed"; }
  std::vector<std::uint64_t> region_sizes() const override {
    return {std::uint64_t{num_blocks()} * model().bytes_per_block()};
  }
  RegionRef region_unchecked(std::uint32_t block, std::uint32_t layer, std::uint32_t outer) const override {
    const std::uint64_t chunks = std::uint64_t{model().num_layers} * model().outer_dim;
    const std::uint64_t chunk = std::uint64_t{layer} * model().outer_dim + outer;
    const std::uint64_t slot = num_blocks() - 1 - block;
    return RegionRef{0, (slot * chunks + (chunks - 1 - chunk)) * chunk_bytes(), chunk_bytes()};
  }
};

// The user's G4 backend: one file per block in a directory, written and read synchronously.
class DirectoryStore final : public RemoteStore {
 public:
  DirectoryStore(std::filesystem::path dir, std::uint64_t fingerprint, std::size_t payload_bytes)
      : dir_(std::move(dir)), fingerprint_(fingerprint), payload_bytes_(payload_bytes) {}

  std::uint64_t fingerprint() const override { return fingerprint_; }
  std::size_t payload_bytes() const override { return payload_bytes_; }
  std::shared_ptr<RemoteOp> put(std::vector<RemoteValue> values) override {
    auto op = begin(values.size(), false);
    for (std::size_t i = 0; i < values.size(); ++i) {
      std::ofstream out(path(values[i].info().sequence_hash), std::ios::binary | std::ios::trunc);
      out.write(values[i].bytes().data(), static_cast<std::streamsize>(values[i].bytes().size()));
      op->set(i, out ? absl::OkStatus() : absl::InternalError("write failed"));
      puts_ += out ? 1 : 0;
    }
    op->part_done();
    return op;
  }
  std::shared_ptr<RemoteOp> get(std::span<const SequenceHash> hashes) override {
    auto op = begin(hashes.size(), true);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      std::ifstream in(path(hashes[i]), std::ios::binary);
      if (!in) {
        op->set(i, absl::NotFoundError("no such block"));
        continue;
      }
      auto value = std::make_shared<std::string>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      DecodedValue decoded;
      absl::Status s = decode_remote_value(*value, hashes[i], fingerprint_, payload_bytes_, &decoded);
      if (!s.ok()) {
        op->set(i, s);
        continue;
      }
      ++hits_;
      op->set(i, absl::OkStatus(), RemoteFetched{decoded.info, decoded.payload, value});
    }
    op->part_done();
    return op;
  }
  std::shared_ptr<RemoteOp> exists(std::span<const SequenceHash> hashes) override {
    auto op = begin(hashes.size(), false);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      op->set(i, std::filesystem::exists(path(hashes[i])) ? absl::OkStatus() : absl::NotFoundError("no such block"));
    }
    op->part_done();
    return op;
  }
  void report_deadline_missed(const RemoteOp&, const RemoteResult&) override {}
  RemoteHealth health() const override { return RemoteHealth::kAvailable; }
  RemoteStats stats() const override {
    RemoteStats s;
    s.puts = puts_.load();
    s.hits = hits_.load();
    return s;
  }
  void shutdown() override { shut_down_ = true; }

  [[nodiscard]] std::size_t files() const {
    return static_cast<std::size_t>(
        std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()));
  }
  [[nodiscard]] bool shut_down() const { return shut_down_.load(); }

 private:
  static std::shared_ptr<RemoteOp> begin(std::size_t keys, bool fetch) {
    auto op = std::make_shared<RemoteOp>(keys, fetch);
    op->expect_parts(1);
    return op;
  }
  std::filesystem::path path(SequenceHash h) const { return dir_ / remote_block_key("test", fingerprint_, h); }

  std::filesystem::path dir_;
  std::uint64_t fingerprint_;
  std::size_t payload_bytes_;
  std::atomic<std::uint64_t> puts_{0}, hits_{0};
  std::atomic<bool> shut_down_{false};
};

// Whether `bytes` (one fully contiguous block, canonical order) are what `h` implies.
bool holds_block(std::span<const std::byte> bytes, SequenceHash h, const ModelConfig& model) {
  std::size_t at = 0;
  for (const ChunkCoord c : canonical_chunks(model)) {
    for (std::size_t i = 0; i < model.bytes_per_chunk(); ++i) {
      if (bytes[at++] != expected_byte(h, c.layer, c.outer, i)) return false;
    }
  }
  return true;
}

TEST(ManagerPartsTest, UserStorageForG2ReceivesOffloadsAndOnboardsBackByteExact) {
  const KvbmConfig config = parts_config();
  std::vector<std::byte> buffer(8 * kModel.bytes_per_block());  // the user's memory: G2's 8 blocks
  ManagerParts parts;
  parts.g2.storage = std::make_unique<BufferStorage>(buffer);
  auto created = KvBlockManager::create(config, std::move(parts));
  ASSERT_TRUE(created.ok()) << created.status();
  KvBlockManager& m = **created;
  ASSERT_EQ(m.tier_storage(CacheLevel::kG2)->host_region(0).data(), buffer.data());

  const TokenBlockSequence first = make_seq(m, 100, 4);
  EXPECT_EQ(run_request(m, first), 0u);
  m.flush();
  // Written through into the user's buffer: each of the 4 blocks sits in one of its 8 slots.
  for (const SequenceHash h : first.sequence_hashes()) {
    int found = 0;
    for (std::size_t slot = 0; slot < 8; ++slot) {
      found +=
          holds_block(std::span(buffer).subspan(slot * kModel.bytes_per_block(), kModel.bytes_per_block()), h, kModel);
    }
    EXPECT_EQ(found, 1) << "block " << h.value();
  }
  EXPECT_EQ(m.offload_stats().g1_to_g2, 4u);

  run_request(m, make_seq(m, 1000, 4));  // pushes `first` out of G1 (4 blocks); G2 keeps both
  m.flush();
  MatchResult match = m.match(first.sequence_hashes());
  ASSERT_EQ(match.g2.size(), 4u);
  auto blocks = m.onboard(std::move(match))->wait();
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  ASSERT_EQ(blocks->size(), 4u);
  for (const G1Block& b : *blocks) EXPECT_EQ(wrong_bytes(b, kModel), 0u);
  m.release(*std::move(blocks));
  EXPECT_EQ(m.offload_stats().g2_to_g1, 4u);
}

TEST(ManagerPartsTest, UserStorageTooSmallIsAnErrorNamingTheTierAndBothSizes) {
  std::vector<std::byte> buffer(8 * kModel.bytes_per_block() - 1);
  ManagerParts parts;
  parts.g2.storage = std::make_unique<BufferStorage>(buffer);
  auto created = KvBlockManager::create(parts_config(), std::move(parts));
  ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(created.status().message(), HasSubstr("g2: the user storage's region 0 holds 4095 bytes, the tier's 8 "
                                                    "blocks need 4096"));
}

TEST(ManagerPartsTest, UserLayoutForG2PlacesBlocksWhereItSaysAndTheyComeBackByteExact) {
  ManagerParts parts;
  parts.g2.layout = std::make_unique<ReversedLayout>(kModel, 8);
  auto created = KvBlockManager::create(parts_config(), std::move(parts));
  ASSERT_TRUE(created.ok()) << created.status();
  KvBlockManager& m = **created;
  ASSERT_EQ(m.tier_layout(CacheLevel::kG2)->name(), "reversed");

  const TokenBlockSequence first = make_seq(m, 100, 4);
  run_request(m, first);
  m.flush();
  // Reversing a whole block's bytes chunk-wise: read each slot back through the layout's arithmetic.
  const std::span<const std::byte> region = m.tier_storage(CacheLevel::kG2)->host_region(0);
  const std::size_t chunk = kModel.bytes_per_chunk();
  const std::size_t chunks = std::size_t{kModel.num_layers} * kModel.outer_dim;
  for (const SequenceHash h : first.sequence_hashes()) {
    int found = 0;
    for (std::size_t slot = 0; slot < 8; ++slot) {
      std::vector<std::byte> canonical(kModel.bytes_per_block());
      for (std::size_t c = 0; c < chunks; ++c) {  // stored chunk c holds canonical chunk chunks - 1 - c
        std::copy_n(region.begin() + static_cast<std::ptrdiff_t>((slot * chunks + c) * chunk), chunk,
                    canonical.begin() + static_cast<std::ptrdiff_t>((chunks - 1 - c) * chunk));
      }
      found += holds_block(canonical, h, kModel);
    }
    EXPECT_EQ(found, 1) << "block " << h.value();
  }

  run_request(m, make_seq(m, 1000, 4));
  m.flush();
  EXPECT_EQ(run_request(m, first), 4u);  // from G2 through the custom layout, checked byte for byte
  EXPECT_EQ(m.offload_stats().g2_to_g1, 4u);
}

TEST(ManagerPartsTest, UserLayoutOfAnotherGeometryOrBlockCountIsAnError) {
  {
    ModelConfig other = kModel;
    other.inner_dim = 32;
    ManagerParts parts;
    parts.g2.layout = std::make_unique<ReversedLayout>(other, 8);
    auto created = KvBlockManager::create(parts_config(), std::move(parts));
    ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(created.status().message(), HasSubstr("g2: the user layout (reversed) is for model "));
    EXPECT_THAT(created.status().message(), HasSubstr("the configuration's model is "));
  }
  {
    ManagerParts parts;
    parts.g2.layout = std::make_unique<ReversedLayout>(kModel, 6);
    auto created = KvBlockManager::create(parts_config(), std::move(parts));
    ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(created.status().message(),
                HasSubstr("g2: the user layout (reversed) has 6 blocks, the configuration gives the tier 8"));
  }
  {  // G3's disk file moves whole aligned blocks: a custom layout there has no copy path
    KvbmConfig config = parts_config();
    config.g3.num_blocks = 16;
    ManagerParts parts;
    parts.g3.layout = std::make_unique<ReversedLayout>(kModel, 16);
    auto created = KvBlockManager::create(config, std::move(parts));
    ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(created.status().message(), HasSubstr("g2 -> g3 has no copy path for the given parts"));
    EXPECT_THAT(created.status().message(), HasSubstr("must be block-contiguous"));
  }
  {  // parts for a tier the configuration leaves off
    ManagerParts parts;
    parts.g2.layout = std::make_unique<ReversedLayout>(kModel, 8);
    auto created = KvBlockManager::create(parts_config(4, 0), std::move(parts));
    ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(created.status().message(), HasSubstr("g2: user parts were given for a tier that is off"));
  }
}

class UserG4Test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::path(::testing::TempDir()) / ("kvbm-user-g4-" + std::to_string(::getpid()) + "-" +
                                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::shared_ptr<DirectoryStore> make_store(const ModelConfig& model) const {
    return std::make_shared<DirectoryStore>(dir_, model_fingerprint(model), model.bytes_per_block());
  }
  std::filesystem::path dir_;
};

TEST_F(UserG4Test, BlocksGoToTheUserStoreAndComeBackByteExactCounted) {
  auto store = make_store(kModel);
  ManagerParts parts;
  parts.g4 = store;
  auto created = KvBlockManager::create(parts_config(), std::move(parts));
  ASSERT_TRUE(created.ok()) << created.status();
  KvBlockManager& m = **created;
  ASSERT_TRUE(m.has_tier(CacheLevel::kG4));

  const TokenBlockSequence first = make_seq(m, 100, 4);
  EXPECT_EQ(run_request(m, first), 0u);
  m.flush();
  EXPECT_EQ(store->files(), 4u);
  EXPECT_EQ(m.offload_stats().g4.g2_to_g4, 4u);

  // Three more requests push `first` out of G1 (4 blocks) and G2 (8 blocks): only the store has it.
  for (std::uint32_t t : {1000u, 2000u, 3000u}) {
    run_request(m, make_seq(m, t, 4));
    m.flush();
  }
  MatchResult match = m.match(first.sequence_hashes());
  EXPECT_EQ(match.g1.size() + match.g2.size() + match.g3.size(), 0u);
  ASSERT_EQ(match.g4.size(), 4u);
  auto blocks = m.onboard(std::move(match))->wait();
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  ASSERT_EQ(blocks->size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*blocks)[i].sequence_hash(), first.sequence_hashes()[i]);
    EXPECT_EQ(wrong_bytes((*blocks)[i], kModel), 0u) << "block " << i;
  }
  m.release(*std::move(blocks));

  const OffloadStats s = m.offload_stats();
  EXPECT_EQ(s.g4_to_g1, 4u);
  EXPECT_EQ(s.g4.g4_to_g2, 4u);
  EXPECT_EQ(s.g4.store.puts, store->stats().puts);
  EXPECT_EQ(s.g4.health, RemoteHealth::kAvailable);
  const std::string text = m.metrics().render();
  EXPECT_THAT(text, HasSubstr("kvbm_offload_blocks_total{src=\"g2\",dst=\"g4\"} " + std::to_string(s.g4.g2_to_g4)));
  EXPECT_THAT(text, HasSubstr("kvbm_g4_hit_blocks_total 4"));

  created->reset();                 // the manager goes
  EXPECT_TRUE(store->shut_down());  // the manager shut its G4 down; the user's handle is still valid
}

TEST_F(UserG4Test, AStoreThatDoesNotFitIsAnError) {
  {  // blocks of another size
    ModelConfig other = kModel;
    other.inner_dim = 32;
    ManagerParts parts;
    parts.g4 = std::make_shared<DirectoryStore>(dir_, model_fingerprint(kModel), other.bytes_per_block());
    auto created = KvBlockManager::create(parts_config(), std::move(parts));
    ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(created.status().message(),
                HasSubstr("g4: the user RemoteStore's payload_bytes() is 1024, the model's blocks are 512 bytes"));
  }
  {  // another model's fingerprint
    ModelConfig other = kModel;
    other.page_size = 8;
    other.inner_dim = 8;  // same bytes per block, another geometry
    ManagerParts parts;
    parts.g4 = make_store(other);
    auto created = KvBlockManager::create(parts_config(), std::move(parts));
    ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(created.status().message(), HasSubstr("g4: the user RemoteStore's fingerprint() is "));
  }
  {  // no G2 to come through
    ManagerParts parts;
    parts.g4 = make_store(kModel);
    auto created = KvBlockManager::create(parts_config(4, 0), std::move(parts));
    ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(created.status().message(), HasSubstr("g4: a user RemoteStore needs a G2 tier"));
  }
  {  // Redis too
    KvbmConfig config = parts_config();
    config.g4.endpoints = "127.0.0.1:1";
    ManagerParts parts;
    parts.g4 = make_store(kModel);
    auto created = KvBlockManager::create(config, std::move(parts));
    ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(created.status().message(), HasSubstr("g4: both g4.endpoints (127.0.0.1:1) and a user RemoteStore"));
  }
  {  // a G2 storage the store cannot pack from
    class DeviceLike final : public Storage {
     public:
      StorageKind kind() const override { return StorageKind::kDevice; }
      std::size_t num_regions() const override { return 1; }
      std::uint64_t region_size(std::size_t) const override { return 8 * kModel.bytes_per_block(); }
      std::span<std::byte> host_region(std::size_t) const override { return {}; }
    };
    ManagerParts parts;
    parts.g2.storage = std::make_unique<DeviceLike>();
    parts.g4 = make_store(kModel);
    auto created = KvBlockManager::create(parts_config(), std::move(parts));
    ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(created.status().message(), HasSubstr("g2: G4 needs a host-addressable G2"));
  }
}

}  // namespace
}  // namespace kvbm
