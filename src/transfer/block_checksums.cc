// BlockChecksums: one (tag, checksum) entry per block slot, behind one mutex.
#include "kvbm/transfer/block_checksums.h"

#include <absl/strings/str_cat.h>

#include "kvbm/core/hashing.h"

namespace kvbm {
namespace {

std::string block_out_of_range(BlockId block, std::size_t num_blocks) {
  return absl::StrCat("block ", block.value(), ": out of range, the tier has ", num_blocks, " blocks");
}

}  // namespace

std::uint64_t block_checksum(std::span<const std::byte> bytes, std::uint64_t tag) {
  return xxh3_64(bytes.data(), bytes.size(), tag);
}

BlockChecksums::BlockChecksums(std::uint32_t num_blocks) : entries_(num_blocks) {}

void BlockChecksums::invalidate(BlockId block) {
  MutexLock lock(&mu_);
  if (block.value() < entries_.size()) entries_[block.value()] = Entry{};
}

std::optional<BlockChecksums::Recorded> BlockChecksums::recorded(BlockId block) const {
  MutexLock lock(&mu_);
  if (block.value() >= entries_.size() || !entries_[block.value()].valid) return std::nullopt;
  const Entry& entry = entries_[block.value()];
  return Recorded{entry.tag, entry.checksum};
}

void BlockChecksums::record(BlockId block, std::uint64_t tag, std::uint64_t checksum) {
  MutexLock lock(&mu_);
  if (block.value() < entries_.size()) entries_[block.value()] = Entry{.tag = tag, .checksum = checksum, .valid = true};
}

absl::Status BlockChecksums::verify(BlockId block, std::uint64_t tag, std::uint64_t checksum) const {
  MutexLock lock(&mu_);
  if (block.value() >= entries_.size()) return absl::DataLossError(block_out_of_range(block, entries_.size()));
  const Entry& entry = entries_[block.value()];
  if (!entry.valid) {
    return absl::DataLossError(
        absl::StrCat("block ", block.value(), ": no checksum recorded (never written or overwritten)"));
  }
  if (entry.tag != tag) {
    return absl::DataLossError(absl::StrCat("block ", block.value(), ": checksum mismatch for tag 0x", absl::Hex(tag),
                                            " (recorded under tag 0x", absl::Hex(entry.tag), ")"));
  }
  if (entry.checksum != checksum) {
    return absl::DataLossError(absl::StrCat("block ", block.value(), ": checksum mismatch for tag 0x", absl::Hex(tag),
                                            " (recorded 0x", absl::Hex(entry.checksum), ", read back 0x",
                                            absl::Hex(checksum), ")"));
  }
  return absl::OkStatus();
}

}  // namespace kvbm
