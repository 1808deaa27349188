// The tier-independent logic of MutableBlock / ImmutableBlock (see include/kvbm/pool/block_pool.h).
// A MutableBlock owns its slot exclusively, so everything here runs without the pool lock.
#include <absl/strings/str_cat.h>

#include <algorithm>

#include "kvbm/core/hashing.h"
#include "kvbm/pool/block_pool.h"
#include "pool/pool_internal.h"

namespace kvbm::detail {
namespace {

std::string_view state_name(MutableState state) {
  switch (state) {
    case MutableState::kReset:
      return "Reset";
    case MutableState::kPartial:
      return "Partial";
    case MutableState::kComplete:
      return "Complete";
  }
  return "?";
}

absl::Status wrong_state(std::string_view op, MutableState state, std::string_view wanted) {
  return absl::FailedPreconditionError(absl::StrCat("MutableBlock::", std::string(op), ": block is ",
                                                    std::string(state_name(state)), ", needs ", std::string(wanted)));
}

}  // namespace

absl::Status mutable_init(MutableState& state, std::uint32_t& num_tokens, SaltHash& salt_out, BlockIdentity& identity,
                          SaltHash salt, std::optional<SequenceHash> parent) {
  if (state != MutableState::kReset) return wrong_state("init", state, "Reset");
  state = MutableState::kPartial;
  num_tokens = 0;
  salt_out = salt;
  identity = BlockIdentity{BlockHash{0}, SequenceHash{0}, parent};
  return absl::OkStatus();
}

absl::Status mutable_append(PoolCore* core, BlockId id, MutableState state, std::uint32_t& num_tokens,
                            std::span<const std::uint32_t> tokens) {
  if (state != MutableState::kPartial) return wrong_state("append", state, "Partial (call init first)");
  const std::uint32_t page = page_size(core);
  if (tokens.size() > page - num_tokens) {
    return absl::OutOfRangeError(absl::StrCat("MutableBlock::append: ", tokens.size(),
                                              " token(s) do not fit: block has ", num_tokens, " of page_size ", page));
  }
  std::span<std::uint32_t> row = token_row(core, id);
  if (row.empty()) {
    return absl::FailedPreconditionError(
        "MutableBlock::append: this pool keeps no tokens (keep_tokens = false); use apply() instead");
  }
  std::copy(tokens.begin(), tokens.end(), row.begin() + num_tokens);
  num_tokens += static_cast<std::uint32_t>(tokens.size());
  return absl::OkStatus();
}

absl::Status mutable_commit(PoolCore* core, BlockId id, MutableState& state, std::uint32_t num_tokens, SaltHash salt,
                            BlockIdentity& identity) {
  if (state != MutableState::kPartial) return wrong_state("commit", state, "Partial");
  const std::uint32_t page = page_size(core);
  if (num_tokens != page) {
    return absl::FailedPreconditionError(
        absl::StrCat("MutableBlock::commit: block holds ", num_tokens, " token(s), needs exactly page_size ", page));
  }
  identity.block_hash = compute_block_hash(token_row(core, id), salt);
  identity.sequence_hash = chain_sequence_hash(identity.parent, identity.block_hash, salt);
  set_row_has_tokens(core, id, true);
  state = MutableState::kComplete;
  return absl::OkStatus();
}

absl::Status mutable_apply_tokens(PoolCore* core, BlockId id, MutableState& state, std::uint32_t& num_tokens,
                                  BlockIdentity& identity, const TokenBlock& block) {
  if (state != MutableState::kReset) return wrong_state("apply", state, "Reset");
  const std::uint32_t page = page_size(core);
  if (block.tokens.size() != page) {
    return absl::InvalidArgumentError(absl::StrCat("MutableBlock::apply: token block has ", block.tokens.size(),
                                                   " token(s), this pool's page_size is ", page));
  }
  std::span<std::uint32_t> row = token_row(core, id);
  if (!row.empty()) std::copy(block.tokens.begin(), block.tokens.end(), row.begin());
  set_row_has_tokens(core, id, !row.empty());
  identity = BlockIdentity{block.block_hash, block.sequence_hash, block.parent_sequence_hash};
  num_tokens = page;
  state = MutableState::kComplete;
  return absl::OkStatus();
}

absl::Status mutable_apply_identity(PoolCore* core, BlockId id, MutableState& state, BlockIdentity& identity,
                                    const BlockIdentity& from, std::span<const std::uint32_t> tokens) {
  if (state != MutableState::kReset) return wrong_state("apply", state, "Reset");
  std::span<std::uint32_t> row = token_row(core, id);
  const bool keep = !row.empty() && tokens.size() == row.size();
  if (keep) std::copy(tokens.begin(), tokens.end(), row.begin());
  set_row_has_tokens(core, id, keep);
  identity = from;
  state = MutableState::kComplete;
  return absl::OkStatus();
}

std::span<std::byte> chunk_bytes(const PoolCore* core, BlockId id, std::uint32_t layer, std::uint32_t outer) {
  const TierMemory* memory = tier_memory(core);
  if (memory == nullptr || !memory->host_addressable()) return {};
  const ModelConfig& model = memory->layout().model();
  if (layer >= model.num_layers || outer >= model.outer_dim) return {};
  return memory->chunk(id.value(), layer, outer);
}

DeviceChunk device_chunk_of(const PoolCore* core, BlockId id, std::uint32_t layer, std::uint32_t outer) {
  const TierMemory* memory = tier_memory(core);
  if (memory == nullptr || !memory->device_addressable()) return {};
  const ModelConfig& model = memory->layout().model();
  if (layer >= model.num_layers || outer >= model.outer_dim) return {};
  return memory->device_chunk(id.value(), layer, outer);
}

std::optional<StorageKind> memory_kind(const PoolCore* core) {
  const TierMemory* memory = tier_memory(core);
  if (memory == nullptr) return std::nullopt;
  return memory->storage().kind();
}

int memory_device(const PoolCore* core) {
  const TierMemory* memory = tier_memory(core);
  return memory == nullptr ? -1 : memory->storage().device();
}

}  // namespace kvbm::detail
