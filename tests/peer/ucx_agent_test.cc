// UcxAgent: the metadata blob (round trip, every truncation, corruption, version, bounds) and block
// reads/writes between this process (worker B) and a helper process (worker A) over each transport
// (UCX_TLS=tcp and UCX_TLS=sm), across differing layouts, byte-exact on both sides.
#include "kvbm/peer/ucx_agent.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <string>
#include <vector>

#include "kvbm/core/hashing.h"
#include "peer/ucx_test_util.h"

namespace kvbm {
namespace {

using namespace std::chrono_literals;
using ucx_test::ChildProcess;

using ucx_test::kModel;
constexpr std::uint32_t kRemoteBlocks = 16;
constexpr std::uint64_t kRemoteKey = 7;

UcxMetadata sample_metadata() {
  UcxMetadata m;
  m.worker_id = 42;
  m.worker_address = "worker-address-bytes";
  UcxTierMetadata t;
  t.level = CacheLevel::kG1;
  t.layout = LayoutKind::kFullyContiguous;
  t.num_blocks = 8;
  t.model = kModel;
  t.block_stride = kModel.bytes_per_block();
  t.base_offset = 0;
  t.regions.push_back({.address = 0x10000, .size = 8 * kModel.bytes_per_block(), .rkey = "rkey0"});
  m.tiers.push_back(t);
  UcxTierMetadata ls;
  ls.level = CacheLevel::kG2;
  ls.layout = LayoutKind::kLayerSeparate;
  ls.outer_contiguous = true;
  ls.num_blocks = 4;
  ls.model = kModel;
  for (std::uint32_t l = 0; l < kModel.num_layers; ++l) {
    ls.regions.push_back({.address = 0x100000 * (l + 1), .size = 4 * 2 * kModel.bytes_per_chunk(), .rkey = "k"});
  }
  m.tiers.push_back(ls);
  return m;
}

// Re-encodes after editing the decoded fields, so the checksum is right and the field check is what fails.
std::string with(const std::function<void(UcxMetadata&)>& edit) {
  UcxMetadata m = sample_metadata();
  edit(m);
  return encode_ucx_metadata(m);
}

TEST(UcxMetadataTest, RoundTrips) {
  const std::string blob = encode_ucx_metadata(sample_metadata());
  auto m = parse_ucx_metadata(blob);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->worker_id, 42u);
  EXPECT_EQ(m->worker_address, "worker-address-bytes");
  ASSERT_EQ(m->tiers.size(), 2u);
  EXPECT_EQ(m->tiers[1].layout, LayoutKind::kLayerSeparate);
  EXPECT_TRUE(m->tiers[1].outer_contiguous);
  EXPECT_EQ(m->tiers[1].regions.size(), 3u);
  EXPECT_EQ(m->tiers[0].model, kModel);
  EXPECT_EQ(encode_ucx_metadata(*m), blob);
}

TEST(UcxMetadataTest, EveryTruncationAndEveryFlippedByteIsAnError) {
  const std::string blob = encode_ucx_metadata(sample_metadata());
  for (std::size_t n = 0; n < blob.size(); ++n) {
    EXPECT_FALSE(parse_ucx_metadata(std::string_view(blob).substr(0, n)).ok()) << "prefix of " << n << " bytes";
  }
  for (std::size_t i = 0; i < blob.size(); ++i) {
    std::string bad = blob;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(parse_ucx_metadata(bad).ok()) << "byte " << i << " flipped";
  }
  EXPECT_FALSE(parse_ucx_metadata(blob + "x").ok());
}

TEST(UcxMetadataTest, FieldsAreValidated) {
  auto error_of = [](const std::string& blob) { return std::string(parse_ucx_metadata(blob).status().message()); };
  std::string v2 = encode_ucx_metadata(sample_metadata());
  v2[4] = 2;  // version
  const std::uint64_t sum = xxh3_64(v2.data(), v2.size() - 8, 0);
  for (int i = 0; i < 8; ++i) v2[v2.size() - 8 + i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  EXPECT_NE(error_of(v2).find("version must be 1, got 2"), std::string::npos) << error_of(v2);
  // A region too small for the blocks the layout says it holds: any block id could read past it.
  EXPECT_NE(error_of(with([](UcxMetadata& m) { m.tiers[0].regions[0].size -= 1; })).find("tier 0"), std::string::npos);
  EXPECT_FALSE(parse_ucx_metadata(with([](UcxMetadata& m) { m.tiers[0].num_blocks = 9; })).ok());
  EXPECT_FALSE(parse_ucx_metadata(with([](UcxMetadata& m) { m.tiers[1].regions.pop_back(); })).ok());
  EXPECT_FALSE(parse_ucx_metadata(with([](UcxMetadata& m) { m.tiers[0].block_stride += 3; })).ok());
  EXPECT_FALSE(parse_ucx_metadata(with([](UcxMetadata& m) { m.tiers[0].model.dtype_bytes = 0; })).ok());
  EXPECT_FALSE(parse_ucx_metadata(with([](UcxMetadata& m) { m.tiers[1].level = CacheLevel::kG1; })).ok());
  EXPECT_FALSE(parse_ucx_metadata(with([](UcxMetadata& m) { m.tiers.clear(); })).ok());
  EXPECT_FALSE(parse_ucx_metadata(with([](UcxMetadata& m) { m.worker_address.clear(); })).ok());
  EXPECT_FALSE(parse_ucx_metadata(with([](UcxMetadata& m) { m.tiers[0].regions[0].rkey.clear(); })).ok());
  EXPECT_FALSE(
      parse_ucx_metadata(with([](UcxMetadata& m) { m.tiers[0].regions[0].address = ~std::uint64_t{0} - 10; })).ok());
  EXPECT_TRUE(parse_ucx_metadata(with([](UcxMetadata& m) {
                m.tiers[0].block_stride = 4096;  // aligned stride: the region must then hold 8 × 4096
                m.tiers[0].regions[0].size = 8 * 4096;
              })).ok());
}

// ---- two processes ----

struct Transport {
  const char* name;
  const char* tls;
};

class UcxAgentTransferTest : public ::testing::TestWithParam<std::tuple<Transport, const char*>> {
 protected:
  void SetUp() override {
    const Transport transport = std::get<0>(GetParam());
    ASSERT_EQ(setenv("UCX_TLS", transport.tls, 1), 0);
    // Worker A: its tier is always fully contiguous; ours varies (the copy goes chunk by chunk).
    child_ = ChildProcess::spawn({KVBM_UCX_HELPER, "agent", "fc", std::to_string(kRemoteBlocks),
                                  std::to_string(kModel.num_layers), std::to_string(kModel.outer_dim),
                                  std::to_string(kModel.page_size), std::to_string(kModel.inner_dim),
                                  std::to_string(kModel.dtype_bytes), std::to_string(kRemoteKey)});
    ASSERT_NE(child_, nullptr);
    auto hex = child_->expect("BLOB ", 30s);
    ASSERT_TRUE(hex.has_value()) << "the helper did not print its blob";
    auto blob = ucx_test::from_hex(*hex);
    ASSERT_TRUE(blob.has_value());
    blob_ = *blob;
    auto tier = ucx_test::make_tier(std::get<1>(GetParam()), kModel, 8);
    ASSERT_TRUE(tier.has_value());
    tier_ = std::move(*tier);
    // A read from a dead peer over shared memory stays in flight (no failure detection there): do
    // not wait long for it at teardown.
    auto agent = UcxAgent::create({.worker_id = 0xB, .teardown_timeout = 1s});
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = *std::move(agent);
    ASSERT_TRUE(agent_->register_tier(CacheLevel::kG1, *tier_.memory).ok());
    auto peer = agent_->import_peer(blob_);
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *peer;
  }
  void TearDown() override {
    agent_.reset();  // before the child goes: closes the endpoint while the peer still answers
    child_.reset();
    unsetenv("UCX_TLS");
  }
  static auto deadline() { return std::chrono::steady_clock::now() + 20s; }
  std::vector<BlockId> ids(std::initializer_list<std::uint32_t> v) {
    std::vector<BlockId> out;
    for (std::uint32_t x : v) out.emplace_back(x);
    return out;
  }

  std::unique_ptr<ChildProcess> child_;
  std::string blob_;
  ucx_test::TestTier tier_;
  std::unique_ptr<UcxAgent> agent_;
  UcxPeerId peer_{};
};

TEST_P(UcxAgentTransferTest, ReadsBlocksByIdByteExact) {
  auto meta = agent_->peer_metadata(peer_);
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->worker_id, 0xAu);
  const std::vector<BlockId> remote = ids({3, 0, 15, 7, 8});
  const std::vector<BlockId> local = ids({0, 1, 2, 6, 7});
  auto req = agent_->read_blocks(peer_, CacheLevel::kG1, remote, CacheLevel::kG1, local);
  ASSERT_TRUE(req.ok()) << req.status();
  ASSERT_TRUE((*req)->wait(deadline()).ok()) << (*req)->status();
  EXPECT_EQ((*req)->bytes(), 5 * kModel.bytes_per_block());
  for (std::size_t i = 0; i < remote.size(); ++i) {
    EXPECT_TRUE(ucx_test::block_matches(*tier_.memory, local[i].value(), kRemoteKey * 1000 + remote[i].value()))
        << "local block " << local[i].value() << " from remote block " << remote[i].value();
  }
  // Blocks not named stay untouched (zero).
  for (std::uint32_t l = 0; l < kModel.num_layers; ++l) {
    for (std::uint32_t o = 0; o < kModel.outer_dim; ++o) {
      for (std::byte b : tier_.memory->chunk(3, l, o)) ASSERT_EQ(b, std::byte{0});
    }
  }
}

TEST_P(UcxAgentTransferTest, WritesBlocksIntoThePeerByteExact) {
  for (std::uint32_t b = 0; b < 8; ++b) ucx_test::fill_block(*tier_.memory, b, 500 + b);
  auto req = agent_->write_blocks(peer_, CacheLevel::kG1, ids({5, 6, 12}), CacheLevel::kG1, ids({2, 4, 7}));
  ASSERT_TRUE(req.ok()) << req.status();
  ASSERT_TRUE((*req)->wait(deadline()).ok()) << (*req)->status();
  // Checked in the peer's own memory, by the peer.
  const std::pair<int, int> expect[] = {{5, 502}, {6, 504}, {12, 507}, {4, 7004}};
  for (auto [block, key] : expect) {
    ASSERT_TRUE(child_->write_line("verify " + std::to_string(block) + " " + std::to_string(key)));
    EXPECT_EQ(child_->read_line(20s).value_or("no answer"), "OK") << "remote block " << block;
  }
  // And read back here into other blocks.
  auto back = agent_->read_blocks(peer_, CacheLevel::kG1, ids({12, 5}), CacheLevel::kG1, ids({0, 1}));
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE((*back)->wait(deadline()).ok());
  EXPECT_TRUE(ucx_test::block_matches(*tier_.memory, 0, 507));
  EXPECT_TRUE(ucx_test::block_matches(*tier_.memory, 1, 502));
}

TEST_P(UcxAgentTransferTest, BadRequestsAreErrorsNotAccesses) {
  auto code = [](const absl::StatusOr<std::unique_ptr<UcxRequest>>& r) { return r.status().code(); };
  EXPECT_EQ(code(agent_->read_blocks(peer_, CacheLevel::kG1, ids({16}), CacheLevel::kG1, ids({0}))),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(agent_->read_blocks(peer_, CacheLevel::kG1, ids({0xFFFFFFFF}), CacheLevel::kG1, ids({0}))),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(agent_->read_blocks(peer_, CacheLevel::kG1, ids({1}), CacheLevel::kG1, ids({8}))),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(agent_->write_blocks(peer_, CacheLevel::kG1, ids({16}), CacheLevel::kG1, ids({0}))),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(agent_->read_blocks(peer_, CacheLevel::kG1, ids({1, 2}), CacheLevel::kG1, ids({3, 3}))),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(agent_->read_blocks(peer_, CacheLevel::kG1, ids({1, 2}), CacheLevel::kG1, ids({3}))),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(agent_->read_blocks(peer_, CacheLevel::kG2, ids({1}), CacheLevel::kG1, ids({0}))),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(code(agent_->read_blocks(UcxPeerId(99), CacheLevel::kG1, ids({1}), CacheLevel::kG1, ids({0}))),
            absl::StatusCode::kNotFound);
  // A local tier of another geometry: refused, not copied at the wrong offsets.
  ModelConfig other = kModel;
  other.inner_dim = 32;
  auto tier = ucx_test::make_tier("fc", other, 4);
  ASSERT_TRUE(tier.has_value());
  ASSERT_TRUE(agent_->register_tier(CacheLevel::kG2, *tier->memory).ok());
  auto mismatch = agent_->read_blocks(peer_, CacheLevel::kG1, ids({1}), CacheLevel::kG2, ids({0}));
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(mismatch.status().message()).find("chunk bytes"), std::string::npos) << mismatch.status();
  EXPECT_EQ(agent_->register_tier(CacheLevel::kG1, *tier->memory).code(), absl::StatusCode::kAlreadyExists);
  // A bad blob is refused before any connection is made.
  std::string bad = blob_;
  bad[bad.size() / 2] ^= 0x10;
  EXPECT_EQ(agent_->import_peer(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(agent_->import_peer("").status().code(), absl::StatusCode::kInvalidArgument);
  agent_.reset();  // before `tier` goes (it is registered)
}

TEST_P(UcxAgentTransferTest, ADeadPeerFailsTheReadInsteadOfHanging) {
  if (std::string(std::get<1>(GetParam())) != "fc") GTEST_SKIP() << "the local layout plays no part here";
  child_->kill_now();
  auto req = agent_->read_blocks(peer_, CacheLevel::kG1, ids({1, 2}), CacheLevel::kG1, ids({0, 1}));
  if (!req.ok()) return;  // refused up front: fine
  const absl::Status s = (*req)->wait(std::chrono::steady_clock::now() + 2s);
  EXPECT_FALSE(s.ok()) << "a read from a killed peer succeeded";
}

const Transport kTransports[] = {{"tcp", "tcp"}, {"shm", "sm"}};

INSTANTIATE_TEST_SUITE_P(Transports, UcxAgentTransferTest,
                         ::testing::Combine(::testing::ValuesIn(kTransports), ::testing::Values("fc", "ls", "lsoc")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param);
                         });

}  // namespace
}  // namespace kvbm
