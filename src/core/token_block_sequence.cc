#include "kvbm/core/token_block_sequence.h"

#include <absl/status/status.h>

#include <algorithm>

#include "kvbm/core/hashing.h"

namespace kvbm {

absl::StatusOr<TokenBlockSequence> TokenBlockSequence::create(std::uint32_t page_size, SaltHash salt,
                                                              std::span<const std::uint32_t> tokens) {
  if (page_size == 0) {
    return absl::InvalidArgumentError("TokenBlockSequence page_size must be > 0, got 0");
  }
  TokenBlockSequence sequence(page_size, salt);
  sequence.append(tokens);
  return sequence;
}

void TokenBlockSequence::append(std::uint32_t token) {
  tokens_.push_back(token);
  hash_new_full_blocks();
}

void TokenBlockSequence::append(std::span<const std::uint32_t> tokens) {
  // First complete the partial block, if any, through the ordinary path.
  const std::size_t tail = tokens_.size() % page_size_;
  const std::size_t to_fill = std::min(tokens.size(), tail == 0 ? std::size_t{0} : page_size_ - tail);
  if (to_fill > 0) {
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(to_fill));
    hash_new_full_blocks();
    tokens = tokens.subspan(to_fill);
  }
  // Whole blocks are copied in by the pass that hashes them: the tokens are read once.
  const std::size_t num_blocks = tokens.size() / page_size_;
  if (num_blocks > 0) {
    const std::size_t block_tokens = num_blocks * page_size_;
    const std::size_t old_tokens = tokens_.size();
    const std::size_t old_blocks = block_hashes_.size();
    tokens_.resize(old_tokens + block_tokens);  // left unwritten (DefaultInitAllocator)
    block_hashes_.resize(old_blocks + num_blocks);
    sequence_hashes_.resize(old_blocks + num_blocks);
    const std::optional<SequenceHash> parent =
        old_blocks == 0 ? std::nullopt : std::optional<SequenceHash>(sequence_hashes_[old_blocks - 1]);
    hash_blocks(tokens.first(block_tokens), page_size_, salt_, parent, block_hashes_.data() + old_blocks,
                sequence_hashes_.data() + old_blocks, tokens_.data() + old_tokens);
    tokens = tokens.subspan(block_tokens);
  }
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
}

void TokenBlockSequence::pop(std::size_t count) { truncate(tokens_.size() - std::min(count, tokens_.size())); }

void TokenBlockSequence::truncate(std::size_t length) {
  if (length >= tokens_.size()) return;
  tokens_.resize(length);
  const std::size_t full = length / page_size_;
  block_hashes_.resize(std::min(block_hashes_.size(), full));
  sequence_hashes_.resize(std::min(sequence_hashes_.size(), full));
}

void TokenBlockSequence::hash_new_full_blocks() {
  const std::size_t hashed = block_hashes_.size();
  const std::size_t full = tokens_.size() / page_size_;
  if (full == hashed) return;
  // resize, not reserve(full): an exact reserve per filled block would reallocate on every block when
  // tokens arrive one by one.
  block_hashes_.resize(full);
  sequence_hashes_.resize(full);
  const std::optional<SequenceHash> parent =
      hashed == 0 ? std::nullopt : std::optional<SequenceHash>(sequence_hashes_[hashed - 1]);
  const std::span<const std::uint32_t> new_tokens(tokens_.data() + hashed * page_size_, (full - hashed) * page_size_);
  hash_blocks(new_tokens, page_size_, salt_, parent, block_hashes_.data() + hashed, sequence_hashes_.data() + hashed);
}

TokenBlock TokenBlockSequence::block(std::size_t i) const {
  return TokenBlock{
      .tokens = std::span<const std::uint32_t>(tokens_.data() + i * page_size_, page_size_),
      .block_hash = block_hashes_[i],
      .sequence_hash = sequence_hashes_[i],
      .parent_sequence_hash = i == 0 ? std::nullopt : std::optional<SequenceHash>(sequence_hashes_[i - 1]),
  };
}

std::vector<TokenBlock> TokenBlockSequence::blocks() const {
  std::vector<TokenBlock> out;
  out.reserve(num_full_blocks());
  for (std::size_t i = 0; i < num_full_blocks(); ++i) out.push_back(block(i));
  return out;
}

std::span<const std::uint32_t> TokenBlockSequence::partial_tokens() const {
  const std::size_t start = num_full_blocks() * page_size_;
  return std::span<const std::uint32_t>(tokens_).subspan(start);
}

}  // namespace kvbm
