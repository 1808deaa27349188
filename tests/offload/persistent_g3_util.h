// Shared by persistent_g3_test and its child process: the configuration, the deterministic workload and the
// block bytes each sequence hash implies.
#pragma once

#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "kvbm/manager/kv_block_manager.h"
#include "support/block_bytes.h"

namespace kvbm::persist_test {

using testing::fill;
using testing::wrong_bytes;

inline constexpr std::uint32_t kBlocksPerRequest = 8;
inline constexpr std::uint32_t kRequestsPerGroup = 4;  // share their first two blocks

// Small G1/G2 (so blocks stream down to disk), a G3 large enough that the workload never evicts from it.
inline KvbmConfig persist_config(const std::string& dir, std::uint32_t g3_blocks) {
  KvbmConfig config;
  // 2 layers × 2 × 4 tokens × 64 × 2 bytes = 2 KiB per block (4 KiB stride on disk).
  config.model = ModelConfig{.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 64, .dtype_bytes = 2};
  config.g1.num_blocks = 32;
  config.g2.num_blocks = 64;
  config.g3.num_blocks = g3_blocks;
  config.g3.directory = dir;
  config.g3.persist = true;
  config.offload.g3_min_frequency = 0;
  config.offload.batch_blocks = 8;
  return config;
}

// Request r: two blocks shared by its group, then six of its own.
inline std::vector<std::uint32_t> request_tokens(std::uint32_t r, std::uint32_t page_size) {
  std::vector<std::uint32_t> tokens(kBlocksPerRequest * page_size);
  const std::size_t shared = 2 * page_size;
  for (std::size_t j = 0; j < tokens.size(); ++j) {
    tokens[j] = j < shared ? (r / kRequestsPerGroup) * 100000u + static_cast<std::uint32_t>(j)
                           : r * 1000u + static_cast<std::uint32_t>(j) + 50000000u;
  }
  return tokens;
}

// Runs request r as an engine would: onboard the cached prefix (checking its bytes), compute and register
// the rest. Returns the request's sequence hashes, or an error text.
inline absl::StatusOr<std::vector<SequenceHash>> run_request(KvBlockManager& m, std::uint32_t r,
                                                             std::size_t* wrong_out) {
  auto seq = m.make_sequence(request_tokens(r, m.page_size()));
  if (!seq.ok()) return seq.status();
  auto hits = m.match_and_onboard(seq->sequence_hashes());
  if (!hits.ok()) return hits.status();
  for (const G1Block& b : *hits) *wrong_out += wrong_bytes(b, m.model());
  const std::size_t have = hits->size();
  auto fresh = m.allocate(kBlocksPerRequest - have);
  if (!fresh.ok()) return fresh.status();
  for (std::size_t i = 0; i < fresh->size(); ++i) {
    TokenBlock tb = seq->block(have + i);
    fill((*fresh)[i], tb.sequence_hash, m.model());
    if (absl::Status s = (*fresh)[i].apply(tb); !s.ok()) return s;
  }
  auto registered = m.register_blocks(*fresh);
  if (!registered.ok()) return registered.status();
  m.release(*std::move(registered));
  m.release(*std::move(hits));
  // Let the offload keep up (G1 and G2 are small: without this most blocks would be evicted from G1
  // before their turn to be copied down, and the workload would barely reach the disk).
  m.flush();
  return std::vector<SequenceHash>(seq->sequence_hashes().begin(), seq->sequence_hashes().end());
}

}  // namespace kvbm::persist_test
