// An engine's request against a whole KvBlockManager, for tests that move bytes through the tiers: blocks are
// filled with the deterministic contents of support/block_bytes.h, so every reused block is checked.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "kvbm/manager/kv_block_manager.h"
#include "support/block_bytes.h"

namespace kvbm::testing {

// `blocks` full blocks of consecutive tokens from `first_token`.
inline TokenBlockSequence make_seq(const KvBlockManager& m, std::uint32_t first_token, std::size_t blocks) {
  std::vector<std::uint32_t> tokens(blocks * m.page_size());
  std::iota(tokens.begin(), tokens.end(), first_token);
  auto seq = m.make_sequence(tokens);
  EXPECT_TRUE(seq.ok());
  return *std::move(seq);
}

// Reuses what is cached (any tier; every reused block checked byte for byte), computes and registers the
// rest, releases everything. Returns how many blocks were reused.
inline std::size_t run_request(KvBlockManager& m, const TokenBlockSequence& seq) {
  auto hits = m.match_and_onboard(seq.sequence_hashes());
  EXPECT_TRUE(hits.ok()) << hits.status();
  if (!hits.ok()) return 0;
  for (const G1Block& b : *hits) EXPECT_EQ(wrong_bytes(b, m.model()), 0u);
  const std::size_t have = hits->size();
  auto fresh = m.allocate(seq.num_full_blocks() - have);
  EXPECT_TRUE(fresh.ok()) << fresh.status();
  if (!fresh.ok()) return have;
  for (std::size_t i = 0; i < fresh->size(); ++i) {
    TokenBlock tb = seq.block(have + i);
    fill((*fresh)[i], tb.sequence_hash, m.model());
    EXPECT_TRUE((*fresh)[i].apply(tb).ok());
  }
  auto registered = m.register_blocks(*fresh);
  EXPECT_TRUE(registered.ok()) << registered.status();
  m.release(*std::move(registered));
  m.release(*std::move(hits));
  return have;
}

}  // namespace kvbm::testing
