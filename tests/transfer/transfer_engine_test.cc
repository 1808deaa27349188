// TransferEngine: byte-exact round trips across layouts and tiers, validation, faults, concurrency.
#include "kvbm/transfer/transfer_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kvbm/layout/layout.h"
#include "kvbm/storage/disk_file.h"
#include "kvbm/storage/storage.h"
#include "kvbm/transfer/block_checksums.h"
#include "kvbm/transfer/io_backend.h"

namespace kvbm {
namespace {

// 3 layers × 2 × 256-byte chunks: 1536 bytes per block, not a multiple of anything interesting.
ModelConfig small_model() {
  ModelConfig m;
  m.num_layers = 3;
  m.outer_dim = 2;
  m.page_size = 4;
  m.inner_dim = 32;
  m.dtype_bytes = 2;
  return m;
}

enum class HostLayout { kFc1, kFc64, kFc4096Based, kLsOuter, kLsBlock, kFc4096 };
constexpr HostLayout kAllHostLayouts[] = {HostLayout::kFc1, HostLayout::kFc64, HostLayout::kFc4096Based,
                                          HostLayout::kLsOuter, HostLayout::kLsBlock};

std::string host_layout_name(HostLayout l) {
  switch (l) {
    case HostLayout::kFc1:
      return "Fc1";
    case HostLayout::kFc64:
      return "Fc64";
    case HostLayout::kFc4096Based:
      return "Fc4096Based";
    case HostLayout::kLsOuter:
      return "LsOuter";
    case HostLayout::kLsBlock:
      return "LsBlock";
    case HostLayout::kFc4096:
      return "Fc4096";
  }
  return "?";
}

std::unique_ptr<Layout> make_host_layout(HostLayout l, const ModelConfig& model, std::uint32_t blocks) {
  switch (l) {
    case HostLayout::kFc1:
      return *FullyContiguousLayout::create(model, blocks, {.alignment = 1, .base_offset = 0});
    case HostLayout::kFc64:
      return *FullyContiguousLayout::create(model, blocks, {.alignment = 64, .base_offset = 0});
    case HostLayout::kFc4096Based:
      return *FullyContiguousLayout::create(model, blocks, {.alignment = 4096, .base_offset = 192});
    case HostLayout::kLsOuter:
      return *LayerSeparateLayout::create(model, blocks, true);
    case HostLayout::kLsBlock:
      return *LayerSeparateLayout::create(model, blocks, false);
    case HostLayout::kFc4096:
      return *FullyContiguousLayout::create(model, blocks, {.alignment = 4096, .base_offset = 0});
  }
  return nullptr;
}

// A tier's layout, storage, bound memory and (for disk) checksums.
struct Tier {
  std::unique_ptr<Layout> layout;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<BlockChecksums> checksums;
  std::optional<TierMemory> memory;

  TierView view() { return TierView{&*memory, checksums.get()}; }
};

Tier host_tier(HostLayout l, const ModelConfig& model, std::uint32_t blocks) {
  Tier t;
  t.layout = make_host_layout(l, model, blocks);
  auto storage = SystemMemory::for_layout(*t.layout, {});
  EXPECT_TRUE(storage.ok()) << storage.status();
  t.storage = std::move(*storage);
  t.memory = *TierMemory::bind(t.layout.get(), t.storage.get());
  return t;
}

Tier disk_tier_with_layout(std::unique_ptr<Layout> layout) {
  Tier t;
  t.layout = std::move(layout);
  DiskFile::Options options;
  options.directory = ::testing::TempDir();
  auto file = DiskFile::for_layout(*t.layout, options);
  EXPECT_TRUE(file.ok()) << file.status();
  t.storage = std::move(*file);
  t.checksums = std::make_unique<BlockChecksums>(t.layout->num_blocks());
  t.memory = *TierMemory::bind(t.layout.get(), t.storage.get());
  return t;
}

Tier disk_tier(const ModelConfig& model, std::uint32_t blocks) {
  return disk_tier_with_layout(*FullyContiguousLayout::create(model, blocks, {.alignment = 4096, .base_offset = 0}));
}

// Canonical bytes of a host block: chunks [layer][outer].
std::vector<std::byte> block_bytes(const TierMemory& m, std::uint32_t block) {
  const ModelConfig& model = m.layout().model();
  std::vector<std::byte> out;
  out.reserve(model.bytes_per_block());
  for (std::uint32_t l = 0; l < model.num_layers; ++l) {
    for (std::uint32_t o = 0; o < model.outer_dim; ++o) {
      auto c = m.chunk(block, l, o);
      out.insert(out.end(), c.begin(), c.end());
    }
  }
  return out;
}

void fill_random(const TierMemory& m, std::mt19937_64& rng) {
  const ModelConfig& model = m.layout().model();
  for (std::uint32_t b = 0; b < m.layout().num_blocks(); ++b) {
    for (std::uint32_t l = 0; l < model.num_layers; ++l) {
      for (std::uint32_t o = 0; o < model.outer_dim; ++o) {
        auto c = m.chunk(b, l, o);
        for (std::size_t i = 0; i < c.size(); i += 8) {
          const std::uint64_t v = rng();
          std::memcpy(c.data() + i, &v, std::min<std::size_t>(8, c.size() - i));
        }
      }
    }
  }
}

// `count` copies: distinct random sources and distinct random destinations (a non-identity mapping).
std::vector<BlockCopy> random_mapping(std::uint32_t src_blocks, std::uint32_t dst_blocks, std::uint32_t count,
                                      std::mt19937_64& rng, std::uint64_t tag_base = 1000) {
  std::vector<std::uint32_t> s(src_blocks), d(dst_blocks);
  std::iota(s.begin(), s.end(), 0u);
  std::iota(d.begin(), d.end(), 0u);
  std::shuffle(s.begin(), s.end(), rng);
  std::shuffle(d.begin(), d.end(), rng);
  std::vector<BlockCopy> copies;
  for (std::uint32_t i = 0; i < count; ++i) copies.push_back(BlockCopy{BlockId(s[i]), BlockId(d[i]), tag_base + s[i]});
  return copies;
}

// The copies with src and dst swapped (reading back what was written).
std::vector<BlockCopy> reversed(const std::vector<BlockCopy>& copies) {
  std::vector<BlockCopy> out;
  for (const BlockCopy& c : copies) out.push_back(BlockCopy{c.dst, c.src, c.tag});
  return out;
}

std::unique_ptr<TransferEngine> make_engine(std::uint32_t threads = 2, std::shared_ptr<IoBackend> io = nullptr) {
  TransferEngine::Options options;
  options.threads = threads;
  options.io = std::move(io);
  auto engine = TransferEngine::create(options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return std::move(*engine);
}

void expect_all_ok(const TransferResult& r, std::size_t n) {
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.blocks.size(), n);
  for (const absl::Status& s : r.blocks) EXPECT_TRUE(s.ok()) << s;
}

// ---------------------------------------------------------------------------------------------------------
// host ↔ host, every pair of host layouts

class HostPairTest : public ::testing::TestWithParam<std::tuple<HostLayout, HostLayout>> {};

TEST_P(HostPairTest, RoundTripIsByteExact) {
  const auto [src_kind, dst_kind] = GetParam();
  const ModelConfig model = small_model();
  std::mt19937_64 rng(42);
  Tier src = host_tier(src_kind, model, 40);
  Tier dst = host_tier(dst_kind, model, 33);
  Tier back = host_tier(src_kind, model, 40);
  fill_random(*src.memory, rng);
  auto engine = make_engine();

  const std::vector<BlockCopy> copies = random_mapping(40, 33, 30, rng);
  auto completion = engine->submit(TransferRequest{src.view(), dst.view(), copies});
  const TransferResult& r = completion->wait();
  expect_all_ok(r, copies.size());
  EXPECT_EQ(r.bytes, copies.size() * model.bytes_per_block());
  for (const BlockCopy& c : copies) {
    ASSERT_EQ(block_bytes(*dst.memory, c.dst.value()), block_bytes(*src.memory, c.src.value()));
  }
  // And back, into a third tier of the first layout, with run().
  const TransferResult r2 = engine->run(TransferRequest{dst.view(), back.view(), reversed(copies)});
  expect_all_ok(r2, copies.size());
  for (const BlockCopy& c : copies) {
    ASSERT_EQ(block_bytes(*back.memory, c.src.value()), block_bytes(*src.memory, c.src.value()));
  }
  const TransferStats stats = engine->stats();
  EXPECT_EQ(stats.batches, 2u);
  EXPECT_EQ(stats.blocks_ok, 2 * copies.size());
  EXPECT_EQ(stats.blocks_failed, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, HostPairTest,
                         ::testing::Combine(::testing::ValuesIn(kAllHostLayouts), ::testing::ValuesIn(kAllHostLayouts)),
                         [](const auto& info) {
                           return host_layout_name(std::get<0>(info.param)) + "_to_" +
                                  host_layout_name(std::get<1>(info.param));
                         });

TEST(TransferEngineTest, LargeBatchIsSplitAcrossThreadsAndStaysExact) {
  ModelConfig model;  // 4 layers × 2 × 8 KiB = 64 KiB per block; 200 blocks = 12.5 MiB (split)
  model.num_layers = 4;
  model.page_size = 32;
  model.inner_dim = 64;
  std::mt19937_64 rng(7);
  Tier src = host_tier(HostLayout::kLsOuter, model, 256);
  Tier dst = host_tier(HostLayout::kFc64, model, 256);
  fill_random(*src.memory, rng);
  auto engine = make_engine(3);
  const std::vector<BlockCopy> copies = random_mapping(256, 256, 200, rng);
  auto completion = engine->submit(TransferRequest{src.view(), dst.view(), copies});
  expect_all_ok(completion->wait(), copies.size());
  for (const BlockCopy& c : copies) {
    ASSERT_EQ(block_bytes(*dst.memory, c.dst.value()), block_bytes(*src.memory, c.src.value()));
  }
  EXPECT_EQ(engine->stats().batches, 1u);
  EXPECT_EQ(engine->stats().bytes, 200 * model.bytes_per_block());
}

TEST(TransferEngineTest, PollUntilDone) {
  const ModelConfig model = small_model();
  std::mt19937_64 rng(3);
  Tier src = host_tier(HostLayout::kFc1, model, 64);
  Tier dst = host_tier(HostLayout::kLsBlock, model, 64);
  fill_random(*src.memory, rng);
  auto engine = make_engine();
  const std::vector<BlockCopy> copies = random_mapping(64, 64, 64, rng);
  auto completion = engine->submit(TransferRequest{src.view(), dst.view(), copies});
  std::optional<TransferResult> r;
  while (!(r = completion->poll())) std::this_thread::yield();
  EXPECT_TRUE(completion->done());
  expect_all_ok(*r, copies.size());
  for (const BlockCopy& c : copies) {
    ASSERT_EQ(block_bytes(*dst.memory, c.dst.value()), block_bytes(*src.memory, c.src.value()));
  }
}

// Only the engine completes a batch: a caller holding a completion can wait on it or poll it, not finish it.
template <typename Completion>
constexpr bool kCallerCanComplete = requires(Completion& c) {
  c.complete(TransferResult{});
};
static_assert(!kCallerCanComplete<TransferCompletion>, "TransferCompletion::complete() must not be public");

TEST(TransferEngineTest, EmptyBatchCompletesOk) {
  const ModelConfig model = small_model();
  Tier a = host_tier(HostLayout::kFc1, model, 4);
  Tier b = host_tier(HostLayout::kFc1, model, 4);
  auto engine = make_engine();
  const TransferResult r = engine->submit(TransferRequest{a.view(), b.view(), {}})->wait();
  EXPECT_TRUE(r.status.ok());
  EXPECT_TRUE(r.blocks.empty());
}

// ---------------------------------------------------------------------------------------------------------
// host → disk → host

class DiskRoundTripTest : public ::testing::TestWithParam<HostLayout> {};

TEST_P(DiskRoundTripTest, HostToDiskToHostIsByteExact) {
  const ModelConfig model = small_model();
  std::mt19937_64 rng(11);
  Tier src = host_tier(GetParam(), model, 100);
  Tier disk = disk_tier(model, 90);
  Tier back = host_tier(GetParam(), model, 100);
  fill_random(*src.memory, rng);
  auto engine = make_engine();

  // More blocks than the queue depth, so the batch takes several execute() calls and shards.
  const std::vector<BlockCopy> copies = random_mapping(100, 90, 70, rng);
  const TransferResult w = engine->submit(TransferRequest{src.view(), disk.view(), copies})->wait();
  expect_all_ok(w, copies.size());
  const TransferResult r = engine->submit(TransferRequest{disk.view(), back.view(), reversed(copies)})->wait();
  expect_all_ok(r, copies.size());
  for (const BlockCopy& c : copies) {
    ASSERT_EQ(block_bytes(*back.memory, c.src.value()), block_bytes(*src.memory, c.src.value()));
  }
  // Read back under another tag: every block is a checksum miss, and nothing is scattered.
  Tier untouched = host_tier(GetParam(), model, 100);
  std::vector<BlockCopy> wrong = reversed(copies);
  for (BlockCopy& c : wrong) c.tag += 1;
  const TransferResult bad = engine->run(TransferRequest{disk.view(), untouched.view(), wrong});
  EXPECT_EQ(bad.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(bad.bytes, 0u);
  for (const absl::Status& s : bad.blocks) EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  const std::vector<std::byte> zeros(model.bytes_per_block());
  for (const BlockCopy& c : wrong) ASSERT_EQ(block_bytes(*untouched.memory, c.dst.value()), zeros);
  EXPECT_EQ(engine->stats().checksum_failures, copies.size());
  EXPECT_EQ(engine->stats().io_errors, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllHostLayouts, DiskRoundTripTest, ::testing::ValuesIn(kAllHostLayouts),
                         [](const auto& info) { return host_layout_name(info.param); });

TEST(TransferEngineTest, DiskRoundTripWithRunAndBigBlocks) {
  ModelConfig model;  // 2 layers × 2 × 16 KiB = 64 KiB per block
  model.num_layers = 2;
  model.page_size = 64;
  model.inner_dim = 128;
  std::mt19937_64 rng(5);
  Tier src = host_tier(HostLayout::kLsOuter, model, 48);
  Tier disk = disk_tier(model, 48);
  Tier back = host_tier(HostLayout::kFc4096Based, model, 48);
  fill_random(*src.memory, rng);
  auto engine = make_engine(1);
  const std::vector<BlockCopy> copies = random_mapping(48, 48, 48, rng);
  expect_all_ok(engine->run(TransferRequest{src.view(), disk.view(), copies}), copies.size());
  expect_all_ok(engine->run(TransferRequest{disk.view(), back.view(), reversed(copies)}), copies.size());
  for (const BlockCopy& c : copies) {
    ASSERT_EQ(block_bytes(*back.memory, c.src.value()), block_bytes(*src.memory, c.src.value()));
  }
}

// A block of exactly 8 KiB in a 4 KiB-aligned fully contiguous host tier: the disk I/O uses the host bytes
// in place (no bounce copy). Mixed with a bounced layer-separate side in the other direction.
ModelConfig page_multiple_model() {
  ModelConfig m;  // 2 layers × 2 × 2 KiB = 8 KiB per block
  m.num_layers = 2;
  m.page_size = 8;
  m.inner_dim = 64;
  return m;
}

TEST(TransferEngineTest, DiskRoundTripInPlaceForAlignedBlocks) {
  const ModelConfig model = page_multiple_model();
  std::mt19937_64 rng(8);
  for (const auto& [from, to] :
       {std::pair{HostLayout::kFc4096, HostLayout::kFc4096}, std::pair{HostLayout::kFc4096, HostLayout::kLsOuter},
        std::pair{HostLayout::kLsBlock, HostLayout::kFc4096}}) {
    SCOPED_TRACE(host_layout_name(from) + " -> disk -> " + host_layout_name(to));
    Tier src = host_tier(from, model, 80);
    Tier disk = disk_tier(model, 64);
    Tier back = host_tier(to, model, 80);
    fill_random(*src.memory, rng);
    auto engine = make_engine(2);
    const std::vector<BlockCopy> copies = random_mapping(80, 64, 60, rng);
    const TransferResult w = engine->submit(TransferRequest{src.view(), disk.view(), copies})->wait();
    expect_all_ok(w, copies.size());
    const TransferResult r = engine->submit(TransferRequest{disk.view(), back.view(), reversed(copies)})->wait();
    expect_all_ok(r, copies.size());
    for (const BlockCopy& c : copies) {
      ASSERT_EQ(block_bytes(*back.memory, c.src.value()), block_bytes(*src.memory, c.src.value()));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Validation

// A storage of a given kind whose bytes the CPU cannot address (stands in for device / remote memory).
class OpaqueStorage final : public Storage {
 public:
  OpaqueStorage(StorageKind kind, std::vector<std::uint64_t> sizes) : kind_(kind), sizes_(std::move(sizes)) {}
  StorageKind kind() const override { return kind_; }
  std::size_t num_regions() const override { return sizes_.size(); }
  std::uint64_t region_size(std::size_t i) const override { return sizes_[i]; }
  std::span<std::byte> host_region(std::size_t) const override { return {}; }

 private:
  StorageKind kind_;
  std::vector<std::uint64_t> sizes_;
};

absl::Status submit_status(TransferEngine& engine, TransferRequest request) {
  const std::size_t n = request.blocks.size();
  auto completion = engine.submit(std::move(request));
  EXPECT_TRUE(completion->done()) << "a request-level error completes at once";
  const TransferResult& r = completion->wait();
  EXPECT_EQ(r.blocks.size(), n);
  for (const absl::Status& s : r.blocks) EXPECT_FALSE(s.ok());
  EXPECT_EQ(r.bytes, 0u);
  return r.status;
}

TEST(TransferEngineValidationTest, RequestLevelErrors) {
  const ModelConfig model = small_model();
  Tier a = host_tier(HostLayout::kFc1, model, 8);
  Tier b = host_tier(HostLayout::kLsOuter, model, 4);
  auto engine = make_engine();
  const std::vector<BlockCopy> one = {BlockCopy{BlockId(0), BlockId(0), 1}};

  absl::Status s = submit_status(*engine, TransferRequest{TierView{}, b.view(), one});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("source"), std::string::npos) << s;
  s = submit_status(*engine, TransferRequest{a.view(), TierView{}, one});
  EXPECT_NE(s.message().find("destination"), std::string::npos) << s;

  // Source id out of range, naming the index and the id.
  s = submit_status(*engine,
                    TransferRequest{a.view(),
                                    b.view(),
                                    {BlockCopy{BlockId(1), BlockId(0), 0}, BlockCopy{BlockId(1), BlockId(1), 0},
                                     BlockCopy{BlockId(8), BlockId(2), 0}}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("blocks[2].src = 8"), std::string::npos) << s;
  s = submit_status(*engine, TransferRequest{a.view(), b.view(), {BlockCopy{BlockId(7), BlockId(4), 0}}});
  EXPECT_NE(s.message().find("blocks[0].dst = 4"), std::string::npos) << s;
  // Two copies into one destination.
  s = submit_status(
      *engine, TransferRequest{
                   a.view(), b.view(), {BlockCopy{BlockId(1), BlockId(3), 0}, BlockCopy{BlockId(2), BlockId(3), 0}}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("repeats"), std::string::npos) << s;

  // Geometry differs.
  ModelConfig other = model;
  other.num_layers = 4;
  Tier c = host_tier(HostLayout::kFc1, other, 8);
  s = submit_status(*engine, TransferRequest{a.view(), c.view(), one});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("geometr"), std::string::npos) << s;

  // run() reports the same without queueing.
  const TransferResult r = engine->run(TransferRequest{a.view(), c.view(), one});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->stats().blocks_ok, 0u);
}

TEST(TransferEngineValidationTest, DeviceAndRemoteWithoutThePath) {
  const ModelConfig model = small_model();
  Tier host = host_tier(HostLayout::kFc1, model, 8);
  auto layout = *FullyContiguousLayout::create(model, 8);
  OpaqueStorage device(StorageKind::kDevice, layout->region_sizes());
  OpaqueStorage remote(StorageKind::kRemote, layout->region_sizes());
  const TierMemory device_mem = *TierMemory::bind(layout.get(), &device);
  const TierMemory remote_mem = *TierMemory::bind(layout.get(), &remote);
  auto engine = make_engine();
  const std::vector<BlockCopy> one = {BlockCopy{BlockId(0), BlockId(0), 1}};
#ifndef KVBM_WITH_CUDA
  absl::Status s = submit_status(*engine, TransferRequest{host.view(), TierView{&device_mem, nullptr}, one});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_NE(s.message().find("built without CUDA"), std::string::npos) << s;
  s = submit_status(*engine, TransferRequest{TierView{&device_mem, nullptr}, host.view(), one});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
#else
  (void)device_mem;  // CUDA builds route device storage to the CUDA path (tests/transfer/cuda_path_test.cc)
#endif
  const absl::Status r = submit_status(*engine, TransferRequest{host.view(), TierView{&remote_mem, nullptr}, one});
  EXPECT_EQ(r.code(), absl::StatusCode::kUnimplemented) << r;
}

TEST(TransferEngineValidationTest, DiskSideRequirements) {
  const ModelConfig model = small_model();
  Tier host = host_tier(HostLayout::kFc1, model, 8);
  auto engine = make_engine();
  const std::vector<BlockCopy> one = {BlockCopy{BlockId(0), BlockId(0), 1}};

  // Layer-separate on disk: not block-contiguous.
  Tier ls = disk_tier_with_layout(*LayerSeparateLayout::create(model, 8, false));
  absl::Status s = submit_status(*engine, TransferRequest{host.view(), ls.view(), one});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("block-contiguous"), std::string::npos) << s;
  // Fully contiguous but the stride is not 4 KiB aligned.
  Tier unaligned = disk_tier_with_layout(*FullyContiguousLayout::create(model, 8, {.alignment = 512}));
  s = submit_status(*engine, TransferRequest{unaligned.view(), host.view(), one});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("4096"), std::string::npos) << s;
  // Without its checksums.
  Tier disk = disk_tier(model, 8);
  s = submit_status(*engine, TransferRequest{host.view(), TierView{&*disk.memory, nullptr}, one});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // A kDisk storage that is not a DiskFile.
  auto layout = *FullyContiguousLayout::create(model, 8, {.alignment = 4096});
  OpaqueStorage fake(StorageKind::kDisk, layout->region_sizes());
  const TierMemory fake_mem = *TierMemory::bind(layout.get(), &fake);
  BlockChecksums sums(8);
  s = submit_status(*engine, TransferRequest{host.view(), TierView{&fake_mem, &sums}, one});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("DiskFile"), std::string::npos) << s;
  // disk ↔ disk.
  Tier disk2 = disk_tier(model, 8);
  s = submit_status(*engine, TransferRequest{disk.view(), disk2.view(), one});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
}

// ---------------------------------------------------------------------------------------------------------
// Faults: never OK with wrong bytes

struct FaultCase {
  std::string name;
  FaultInjectingIoBackend::Faults faults;
  bool on_write;  // injected while writing (else while reading)
};

std::vector<FaultCase> fault_cases() {
  std::vector<FaultCase> cases;
  auto add = [&](std::string name, auto field, bool on_write) {
    FaultInjectingIoBackend::Faults f;
    f.*field = 0.3;
    cases.push_back(FaultCase{std::move(name), f, on_write});
  };
  add("read_eio", &FaultInjectingIoBackend::Faults::read_eio, false);
  add("write_eio", &FaultInjectingIoBackend::Faults::write_eio, true);
  add("write_enospc", &FaultInjectingIoBackend::Faults::write_enospc, true);
  add("short_read", &FaultInjectingIoBackend::Faults::short_read, false);
  add("short_write", &FaultInjectingIoBackend::Faults::short_write, true);
  add("corrupt_read", &FaultInjectingIoBackend::Faults::corrupt_read, false);
  add("corrupt_write", &FaultInjectingIoBackend::Faults::corrupt_write, true);
  FaultInjectingIoBackend::Faults slow;
  slow.slow = 0.3;
  slow.slow_micros = 200;
  cases.push_back(FaultCase{"slow", slow, true});
  return cases;
}

// Writes a clean generation, rewrites it with `fc` injected on the write or read side, reads it back:
// every block reported OK has exactly the right bytes, and the faults surface as errors.
void check_faults(const FaultCase& fc, const ModelConfig& model, HostLayout src_layout, HostLayout back_layout) {
  std::mt19937_64 rng(99);
  constexpr std::uint32_t kBlocks = 120;
  Tier src = host_tier(src_layout, model, kBlocks);
  Tier disk = disk_tier(model, kBlocks);
  fill_random(*src.memory, rng);
  auto io = std::make_shared<FaultInjectingIoBackend>(make_posix_io_backend(), FaultInjectingIoBackend::Faults{}, 1234);
  auto engine = make_engine(2, io);

  // A clean first generation under tags 1000+, so that a failed rewrite must not leave the old record valid.
  const std::vector<BlockCopy> gen1 = random_mapping(kBlocks, kBlocks, kBlocks, rng, 1000);
  expect_all_ok(engine->run(TransferRequest{src.view(), disk.view(), gen1}), gen1.size());

  // Second generation: different contents and tags.
  fill_random(*src.memory, rng);
  const std::vector<BlockCopy> gen2 = random_mapping(kBlocks, kBlocks, kBlocks, rng, 5000);
  if (fc.on_write) io->set_faults(fc.faults);
  const TransferResult w = engine->submit(TransferRequest{src.view(), disk.view(), gen2})->wait();
  io->set_faults(fc.on_write ? FaultInjectingIoBackend::Faults{} : fc.faults);
  Tier back = host_tier(back_layout, model, kBlocks);
  const TransferResult r = engine->submit(TransferRequest{disk.view(), back.view(), reversed(gen2)})->wait();
  io->set_faults({});

  EXPECT_GT(io->counts().total(), 0u);
  std::size_t ok = 0;
  std::uint64_t ok_bytes = 0;
  for (std::size_t i = 0; i < gen2.size(); ++i) {
    if (!r.blocks[i].ok()) continue;
    ++ok;
    ok_bytes += model.bytes_per_block();
    // Reported OK: the bytes are exactly the ones written.
    ASSERT_EQ(block_bytes(*back.memory, gen2[i].src.value()), block_bytes(*src.memory, gen2[i].src.value()))
        << fc.name << " block " << i << " reported OK with wrong bytes";
    EXPECT_TRUE(w.blocks[i].ok()) << "a block whose write failed read back OK";
  }
  EXPECT_EQ(r.bytes, ok_bytes);
  if (fc.name == "slow") {
    EXPECT_EQ(ok, gen2.size());
    expect_all_ok(w, gen2.size());
  } else {
    EXPECT_LT(ok, gen2.size()) << fc.name << ": some faults must surface";
    EXPECT_FALSE(r.status.ok());
    EXPECT_GT(engine->stats().blocks_failed, 0u);
  }
  const TransferStats stats = engine->stats();
  if (fc.name == "corrupt_read" || fc.name == "corrupt_write") {
    EXPECT_GT(stats.checksum_failures, 0u);
  }
  if (fc.name.find("eio") != std::string::npos || fc.name.find("short") != std::string::npos ||
      fc.name == "write_enospc") {
    EXPECT_GT(stats.io_errors, 0u);
    // A write that failed is reported as failed, never OK.
    if (fc.on_write) EXPECT_FALSE(w.status.ok());
  }
  // The old generation's records are gone for every rewritten block.
  Tier old = host_tier(back_layout, model, kBlocks);
  std::vector<BlockCopy> old_reads;
  for (const BlockCopy& c : gen2) {
    const auto it = std::find_if(gen1.begin(), gen1.end(), [&](const BlockCopy& g) { return g.dst == c.dst; });
    old_reads.push_back(BlockCopy{c.dst, c.src, it->tag});
  }
  const TransferResult stale = engine->run(TransferRequest{disk.view(), old.view(), old_reads});
  for (const absl::Status& s : stale.blocks) EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
}

class FaultTest : public ::testing::TestWithParam<FaultCase> {};

TEST_P(FaultTest, BouncedBlocksAreExactOrAnError) {
  check_faults(GetParam(), small_model(), HostLayout::kLsOuter, HostLayout::kFc64);
}

TEST_P(FaultTest, InPlaceBlocksAreExactOrAnError) {
  check_faults(GetParam(), page_multiple_model(), HostLayout::kFc4096, HostLayout::kFc4096);
}

INSTANTIATE_TEST_SUITE_P(AllFaults, FaultTest, ::testing::ValuesIn(fault_cases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------------------
// Concurrency and shutdown

TEST(TransferEngineConcurrencyTest, SeveralThreadsSubmitConcurrently) {
  const ModelConfig model = small_model();
  constexpr std::uint32_t kThreads = 4;
  constexpr std::uint32_t kPerThread = 32;
  constexpr std::uint32_t kBlocks = kThreads * kPerThread;
  std::mt19937_64 rng(17);
  Tier src = host_tier(HostLayout::kLsBlock, model, kBlocks);
  Tier mid = host_tier(HostLayout::kFc1, model, kBlocks);
  Tier disk = disk_tier(model, kBlocks);
  Tier back = host_tier(HostLayout::kLsOuter, model, kBlocks);
  fill_random(*src.memory, rng);
  auto engine = make_engine(3);

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread owns blocks [t × kPerThread, (t + 1) × kPerThread) of every tier.
      for (int round = 0; round < 5; ++round) {
        std::vector<BlockCopy> copies;
        for (std::uint32_t i = 0; i < kPerThread; ++i) {
          const std::uint32_t b = t * kPerThread + (i * 7 + static_cast<std::uint32_t>(round)) % kPerThread;
          copies.push_back(BlockCopy{BlockId(b), BlockId(b), std::uint64_t{b} + 100u * round});
        }
        auto c1 = engine->submit(TransferRequest{src.view(), mid.view(), copies});
        if (!c1->wait().status.ok()) ++failures;
        auto c2 = engine->submit(TransferRequest{mid.view(), disk.view(), copies});
        if (!c2->wait().status.ok()) ++failures;
        auto c3 = engine->submit(TransferRequest{disk.view(), back.view(), copies});
        if (!c3->wait().status.ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (std::uint32_t b = 0; b < kBlocks; ++b) {
    ASSERT_EQ(block_bytes(*back.memory, b), block_bytes(*src.memory, b));
  }
  EXPECT_EQ(engine->stats().batches, kThreads * 5u * 3u);
  EXPECT_EQ(engine->stats().blocks_failed, 0u);
}

TEST(TransferEngineConcurrencyTest, DestructorCompletesQueuedWork) {
  const ModelConfig model = small_model();
  std::mt19937_64 rng(23);
  constexpr int kBatches = 40;
  Tier src = host_tier(HostLayout::kLsOuter, model, 64);
  std::vector<Tier> dsts;
  for (int i = 0; i < kBatches; ++i) dsts.push_back(host_tier(HostLayout::kFc1, model, 64));
  fill_random(*src.memory, rng);
  std::vector<std::shared_ptr<TransferCompletion>> completions;
  std::vector<std::vector<BlockCopy>> mappings;
  {
    auto engine = make_engine(1);
    for (int i = 0; i < kBatches; ++i) {
      mappings.push_back(random_mapping(64, 64, 64, rng));
      completions.push_back(engine->submit(TransferRequest{src.view(), dsts[i].view(), mappings.back()}));
    }
  }
  for (int i = 0; i < kBatches; ++i) {
    ASSERT_TRUE(completions[i]->done());
    expect_all_ok(*completions[i]->poll(), 64);
    for (const BlockCopy& c : mappings[i]) {
      ASSERT_EQ(block_bytes(*dsts[i].memory, c.dst.value()), block_bytes(*src.memory, c.src.value()));
    }
  }
}

TEST(TransferEngineTest, CreateRejectsBadOptions) {
  TransferEngine::Options options;
  options.threads = 0;
  EXPECT_EQ(TransferEngine::create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.threads = 1;
  options.io_queue_depth = 0;
  EXPECT_EQ(TransferEngine::create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvbm
