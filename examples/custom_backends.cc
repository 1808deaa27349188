// Custom backends without editing kvbm (docs/architecture.md, "Custom backends"): G2 lives in memory this
// program owns, and G4 is an in-process map instead of Redis. Compiled and run by the test suite.
// A prompt is computed, pushed out of G1 and G2 by other requests, and found again in G4.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "kvbm/manager/kv_block_manager.h"

namespace {

// G2's bytes: one region over a buffer the engine owns (it could be a shared mapping, a registered area).
class BufferStorage final : public kvbm::Storage {
 public:
  explicit BufferStorage(std::span<std::byte> bytes) : bytes_(bytes) {}
  kvbm::StorageKind kind() const override { return kvbm::StorageKind::kSystem; }
  std::size_t num_regions() const override { return 1; }
  std::uint64_t region_size(std::size_t) const override { return bytes_.size(); }
  std::span<std::byte> host_region(std::size_t) const override { return bytes_; }

 private:
  std::span<std::byte> bytes_;
};

// G4: values kept in a map, answered at once. A real backend would send them somewhere.
class MapStore final : public kvbm::RemoteStore {
 public:
  explicit MapStore(const kvbm::ModelConfig& model)
      : fingerprint_(kvbm::model_fingerprint(model)), payload_bytes_(model.bytes_per_block()) {}
  std::uint64_t fingerprint() const override { return fingerprint_; }
  std::size_t payload_bytes() const override { return payload_bytes_; }
  std::shared_ptr<kvbm::RemoteOp> put(std::vector<kvbm::RemoteValue> values) override {
    auto op = start(values.size(), false);
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < values.size(); ++i) {
      values_[values[i].info().sequence_hash.value()] = std::make_shared<std::string>(values[i].bytes());
      op->set(i, absl::OkStatus());
    }
    op->part_done();
    return op;
  }
  std::shared_ptr<kvbm::RemoteOp> get(std::span<const kvbm::SequenceHash> hashes) override {
    auto op = start(hashes.size(), true);
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      auto it = values_.find(hashes[i].value());
      kvbm::DecodedValue v;
      absl::Status s = it == values_.end() ? absl::NotFoundError("miss")
                                           : kvbm::decode_remote_value(*it->second, hashes[i], fingerprint_,
                                                                       payload_bytes_, &v);  // never wrong bytes
      op->set(i, s, s.ok() ? kvbm::RemoteFetched{v.info, v.payload, it->second} : kvbm::RemoteFetched{});
    }
    op->part_done();
    return op;
  }
  std::shared_ptr<kvbm::RemoteOp> exists(std::span<const kvbm::SequenceHash> hashes) override {
    auto op = start(hashes.size(), false);
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      op->set(i, values_.contains(hashes[i].value()) ? absl::OkStatus() : absl::NotFoundError("miss"));
    }
    op->part_done();
    return op;
  }
  void report_deadline_missed(const kvbm::RemoteOp&, const kvbm::RemoteResult&) override {}
  kvbm::RemoteHealth health() const override { return kvbm::RemoteHealth::kAvailable; }
  kvbm::RemoteStats stats() const override { return {}; }
  void shutdown() override {}

 private:
  static std::shared_ptr<kvbm::RemoteOp> start(std::size_t keys, bool fetch) {
    auto op = std::make_shared<kvbm::RemoteOp>(keys, fetch);
    op->expect_parts(1);
    return op;
  }
  const std::uint64_t fingerprint_;
  const std::size_t payload_bytes_;
  std::mutex mu_;
  std::map<std::uint64_t, std::shared_ptr<const std::string>> values_;
};

// One request: reuse the cached prefix, compute and register the rest, release. Returns the blocks reused.
std::size_t run(kvbm::KvBlockManager& kvbm, std::uint32_t first_token) {
  std::vector<std::uint32_t> prompt(4 * kvbm.page_size());
  std::iota(prompt.begin(), prompt.end(), first_token);
  auto seq = kvbm.make_sequence(prompt);
  auto hits = kvbm.match_and_onboard(seq->sequence_hashes());
  auto fresh = kvbm.allocate(seq->num_full_blocks() - hits->size());
  for (std::size_t i = 0; i < fresh->size(); ++i) {
    (*fresh)[i].chunk(0, 0)[0] = std::byte{42};  // the engine's KV
    if (!(*fresh)[i].apply(seq->block(hits->size() + i)).ok()) std::abort();
  }
  auto registered = kvbm.register_blocks(*fresh);
  const std::size_t reused = hits->size();
  kvbm.release(*std::move(registered));
  kvbm.release(*std::move(hits));
  kvbm.flush();
  return reused;
}

}  // namespace

int main() {
  kvbm::KvbmConfig config;
  config.model = {.num_layers = 4, .outer_dim = 2, .page_size = 16, .inner_dim = 128, .dtype_bytes = 2};
  config.g1.num_blocks = 4;
  config.g2.num_blocks = 8;
  std::vector<std::byte> g2_memory(8 * config.model.bytes_per_block());

  kvbm::ManagerParts parts;
  parts.g2.storage = std::make_unique<BufferStorage>(g2_memory);
  parts.g4 = std::make_shared<MapStore>(config.model);
  auto kvbm = kvbm::KvBlockManager::create(config, std::move(parts));
  if (!kvbm.ok()) {
    std::fprintf(stderr, "%s\n", std::string(kvbm.status().message()).c_str());
    return 1;
  }
  run(**kvbm, 1);
  for (std::uint32_t other : {1000u, 2000u, 3000u}) run(**kvbm, other);  // push it out of G1 and G2
  const std::size_t reused = run(**kvbm, 1);
  std::printf("again: %zu of 4 blocks reused, %llu from the user's G4\n", reused,
              static_cast<unsigned long long>((*kvbm)->offload_stats().g4_to_g1));
  return 0;
}
