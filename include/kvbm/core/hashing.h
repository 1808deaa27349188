// Token block hashing, bit-compatible with NVIDIA Dynamo (DESIGN.md §1).
//
//   block hash    = xxh3_64(tokens as little-endian u32 bytes, seed = salt_hash)
//   sequence hash = block hash for the first block; for later blocks
//                   xxh3_64(le_u64(parent_sequence_hash) ‖ le_u64(block_hash), seed = salt_hash)
//   salt hash     = xxh3_64(salt bytes, seed 0); 0 when there is no salt
//
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "kvbm/core/types.h"

namespace kvbm {

[[nodiscard]] BlockHash compute_block_hash(std::span<const std::uint32_t> tokens, SaltHash salt);
[[nodiscard]] SequenceHash compute_sequence_hash(SequenceHash parent, BlockHash block, SaltHash salt);
// The sequence hash of a block with or without a parent.
[[nodiscard]] inline SequenceHash chain_sequence_hash(std::optional<SequenceHash> parent, BlockHash block,
                                                      SaltHash salt) {
  return parent ? compute_sequence_hash(*parent, block, salt) : SequenceHash{block.value()};
}

// Hashes the tokens.size() / page_size full blocks of `tokens` (a partial tail is ignored) in one pass:
// block_out[i] is block i's block hash and seq_out[i] its sequence hash, chained from `parent` (nullopt
// when block 0 starts the sequence). Bit-identical to compute_block_hash + chain_sequence_hash per block,
// but with XXH3 inlined into the loop; this is the path TokenBlockSequence takes. With `tokens_out`, the
// hashed full blocks are also copied there in the same pass, so that a caller storing the tokens reads
// them once.
// REQUIRES: page_size > 0; block_out and seq_out each have room for tokens.size() / page_size entries;
// tokens_out, when given, for that many blocks of tokens, and overlaps no input.
void hash_blocks(std::span<const std::uint32_t> tokens, std::uint32_t page_size, SaltHash salt,
                 std::optional<SequenceHash> parent, BlockHash* block_out, SequenceHash* seq_out,
                 std::uint32_t* tokens_out = nullptr);

// xxh3_64(salt, seed 0); SaltHash{0} for an empty salt.
[[nodiscard]] SaltHash compute_salt_hash(std::string_view salt);

// The salt hash that separates a tenant salt and a LoRA adapter: blocks computed under another adapter
// must never match. With neither, 0. With only a salt, compute_salt_hash(salt). With a LoRA name the
// hashed bytes are `salt` ‖ 0x00 ‖ "lora:" ‖ lora_name — the NUL cannot occur in either name, so no
// (salt, lora) pair collides with another or with a plain salt.
[[nodiscard]] SaltHash derive_salt_hash(std::string_view salt, std::string_view lora_name);

// Raw xxh3_64 with a seed, for callers (tests, benchmarks, checksums) that need the primitive itself.
[[nodiscard]] std::uint64_t xxh3_64(const void* data, std::size_t len, std::uint64_t seed);

}  // namespace kvbm
