// Helpers for block pool tests: deterministic token streams, chains of block identities, and short-cuts
// from identities to Complete MutableBlocks and registered ImmutableBlocks.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <utility>
#include <vector>

#include "kvbm/core/hashing.h"
#include "kvbm/pool/block_pool.h"

namespace kvbm {
// Readable test failures for status comparisons (found by argument-dependent lookup).
inline void PrintTo(const PoolStatus& s, std::ostream* os) {
  *os << "{active " << s.active << ", inactive " << s.inactive << ", free " << s.free << ", owned " << s.owned << "}";
}
}  // namespace kvbm

namespace kvbm::testing {

// `count` token ids derived from `seed`; equal seeds give equal streams.
inline std::vector<std::uint32_t> make_tokens(std::size_t count, std::uint32_t seed) {
  std::vector<std::uint32_t> tokens(count);
  for (std::size_t i = 0; i < count; ++i) tokens[i] = seed * 100003u + static_cast<std::uint32_t>(i) * 7u + 1u;
  return tokens;
}

// The identities of the full blocks of `tokens`, hashed as DESIGN.md §1 says, continuing after `parent`.
inline std::vector<BlockIdentity> identity_chain(std::span<const std::uint32_t> tokens, std::uint32_t page_size,
                                                 SaltHash salt = SaltHash{0},
                                                 std::optional<SequenceHash> parent = std::nullopt) {
  std::vector<BlockIdentity> chain;
  for (std::size_t start = 0; start + page_size <= tokens.size(); start += page_size) {
    const BlockHash block = compute_block_hash(tokens.subspan(start, page_size), salt);
    const SequenceHash seq = chain_sequence_hash(parent, block, salt);
    chain.push_back(BlockIdentity{block, seq, parent});
    parent = seq;
  }
  return chain;
}

// A cheap, hash-library-free identity: for model tests that need many distinct chained identities.
// Chains built from equal (parent, content) pairs get equal sequence hashes.
inline BlockIdentity synthetic_identity(std::optional<SequenceHash> parent, std::uint64_t content) {
  auto mix = [](std::uint64_t x) {  // splitmix64 finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  const std::uint64_t block = mix(content + 1);
  const std::uint64_t seq = parent ? mix(parent->value() ^ mix(block)) : block;
  return BlockIdentity{BlockHash{block}, SequenceHash{seq}, parent};
}

// A chain of synthetic identities for `contents`, continuing after `parent`.
inline std::vector<BlockIdentity> synthetic_chain(std::span<const std::uint64_t> contents,
                                                  std::optional<SequenceHash> parent = std::nullopt) {
  std::vector<BlockIdentity> chain;
  chain.reserve(contents.size());
  for (std::uint64_t c : contents) {
    chain.push_back(synthetic_identity(parent, c));
    parent = chain.back().sequence_hash;
  }
  return chain;
}

inline std::vector<SequenceHash> sequence_hashes(std::span<const BlockIdentity> chain) {
  std::vector<SequenceHash> out;
  out.reserve(chain.size());
  for (const BlockIdentity& id : chain) out.push_back(id.sequence_hash);
  return out;
}

template <CacheLevel L>
std::vector<SequenceHash> sequence_hashes(std::span<const ImmutableBlock<L>> blocks) {
  std::vector<SequenceHash> out;
  out.reserve(blocks.size());
  for (const ImmutableBlock<L>& b : blocks) out.push_back(b.sequence_hash());
  return out;
}

// Reset → Partial → Complete with `tokens` (page_size of them), hashed by the block itself.
template <CacheLevel L>
absl::Status fill_block(MutableBlock<L>& block, std::span<const std::uint32_t> tokens, SaltHash salt,
                        std::optional<SequenceHash> parent) {
  if (absl::Status s = block.init(salt, parent); !s.ok()) return s;
  if (absl::Status s = block.append(tokens); !s.ok()) return s;
  return block.commit();
}

// Allocates one block per identity and applies it: Complete blocks, ready to register.
template <CacheLevel L>
absl::StatusOr<std::vector<MutableBlock<L>>> complete_blocks(BlockPool<L>& pool, std::span<const BlockIdentity> chain) {
  auto blocks = pool.allocate(chain.size());
  if (!blocks.ok()) return blocks.status();
  for (std::size_t i = 0; i < chain.size(); ++i) {
    if (absl::Status s = (*blocks)[i].apply(chain[i]); !s.ok()) return s;
  }
  return blocks;
}

template <CacheLevel L>
absl::StatusOr<MutableBlock<L>> complete_block(BlockPool<L>& pool, const BlockIdentity& identity) {
  auto blocks = complete_blocks(pool, std::span<const BlockIdentity>(&identity, 1));
  if (!blocks.ok()) return blocks.status();
  return std::move(blocks->front());
}

// Allocates, applies and registers `chain` in one go.
template <CacheLevel L>
absl::StatusOr<std::vector<ImmutableBlock<L>>> register_chain(BlockPool<L>& pool,
                                                              std::span<const BlockIdentity> chain) {
  auto blocks = complete_blocks(pool, chain);
  if (!blocks.ok()) return blocks.status();
  return pool.register_blocks(std::span<MutableBlock<L>>(*blocks));
}

// Allocates, fills token by token (init/append/commit) and registers the full blocks of `tokens`.
template <CacheLevel L>
absl::StatusOr<std::vector<ImmutableBlock<L>>> register_tokens(BlockPool<L>& pool,
                                                               std::span<const std::uint32_t> tokens,
                                                               SaltHash salt = SaltHash{0},
                                                               std::optional<SequenceHash> parent = std::nullopt) {
  const std::uint32_t page = pool.page_size();
  auto blocks = pool.allocate(tokens.size() / page);
  if (!blocks.ok()) return blocks.status();
  for (std::size_t i = 0; i < blocks->size(); ++i) {
    if (absl::Status s = fill_block((*blocks)[i], tokens.subspan(i * page, page), salt, parent); !s.ok()) return s;
    parent = (*blocks)[i].identity().sequence_hash;
  }
  return pool.register_blocks(std::span<MutableBlock<L>>(*blocks));
}

}  // namespace kvbm::testing
