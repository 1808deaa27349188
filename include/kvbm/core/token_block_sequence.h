// TokenBlockSequence: the tokens of one request, split into full blocks of page_size tokens with their
// block and sequence hashes, plus a partial tail.
//
// Thread-safety: none; one sequence belongs to one request. Appending is amortised O(1) per token and
// hashes each block exactly once, when it fills.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "kvbm/core/types.h"

namespace kvbm {

namespace internal {

// std::allocator whose no-argument construct() default-initialises, so that vector::resize leaves
// trivial elements unwritten. TokenBlockSequence grows its token storage this way and then writes the
// tokens in the same pass that hashes them, instead of zeroing 4 bytes per token first.
template <typename T>
class DefaultInitAllocator : public std::allocator<T> {
 public:
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>& /*other*/) noexcept {}  // NOLINT(google-explicit-constructor)

  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    std::construct_at(p, std::forward<Args>(args)...);
  }
};

}  // namespace internal

// One full block of a sequence. `tokens` points into the owning TokenBlockSequence and is valid until
// the sequence is next modified.
struct TokenBlock {
  std::span<const std::uint32_t> tokens;
  BlockHash block_hash;
  SequenceHash sequence_hash;
  std::optional<SequenceHash> parent_sequence_hash;  // nullopt for the first block
};

class TokenBlockSequence {
 public:
  // REQUIRES: page_size > 0 (else InvalidArgument).
  [[nodiscard]] static absl::StatusOr<TokenBlockSequence> create(std::uint32_t page_size, SaltHash salt = SaltHash{0},
                                                                 std::span<const std::uint32_t> tokens = {});

  void append(std::uint32_t token);
  // REQUIRES: `tokens` does not point into this sequence (its storage may move while they are read).
  void append(std::span<const std::uint32_t> tokens);
  // Removes the last `count` tokens (clamped to the length); full blocks that lose a token are unhashed.
  void pop(std::size_t count = 1);
  // Keeps the first `length` tokens (no-op when already shorter).
  void truncate(std::size_t length);

  [[nodiscard]] std::uint32_t page_size() const { return page_size_; }
  [[nodiscard]] SaltHash salt_hash() const { return salt_; }
  [[nodiscard]] std::size_t num_tokens() const { return tokens_.size(); }
  [[nodiscard]] std::size_t num_full_blocks() const { return block_hashes_.size(); }
  [[nodiscard]] std::span<const std::uint32_t> tokens() const { return tokens_; }
  // The i-th full block. REQUIRES: i < num_full_blocks().
  [[nodiscard]] TokenBlock block(std::size_t i) const;
  [[nodiscard]] std::vector<TokenBlock> blocks() const;
  // Sequence hashes of every full block, in order: what `match` takes.
  [[nodiscard]] std::span<const SequenceHash> sequence_hashes() const { return sequence_hashes_; }
  [[nodiscard]] std::span<const BlockHash> block_hashes() const { return block_hashes_; }
  // Tokens after the last full block (fewer than page_size).
  [[nodiscard]] std::span<const std::uint32_t> partial_tokens() const;

 private:
  TokenBlockSequence(std::uint32_t page_size, SaltHash salt) : page_size_(page_size), salt_(salt) {}
  void hash_new_full_blocks();

  std::uint32_t page_size_;
  SaltHash salt_;
  std::vector<std::uint32_t, internal::DefaultInitAllocator<std::uint32_t>> tokens_;
  std::vector<BlockHash> block_hashes_;
  std::vector<SequenceHash> sequence_hashes_;
};

}  // namespace kvbm
