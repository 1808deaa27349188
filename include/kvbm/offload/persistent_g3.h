// PersistentG3: the on-disk index that lets a G3 tier survive a restart (g3.persist = true).
//
// File format (one file, `kvbm-g3-persist.bin` in g3.directory; little-endian, x86-64 / aarch64 only):
//   [0, 4 KiB)          superblock: magic "KVBMG3P1", format version (2), record size, block count, the model
//                       (num_layers, outer_dim, page_size, inner_dim, dtype_bytes), block bytes, block stride,
//                       data offset, the identity of the blocks (model fingerprint: xxh3 of the geometry;
//                       g3.namespace, up to 128 bytes), xxh3 checksum of the superblock
//   [4 KiB, data)       one 64-byte header record per block slot, rounded up to 4 KiB:
//                       magic, flags (has parent), generation, sequence hash, parent hash, block hash, data
//                       checksum (xxh3 of the block bytes seeded with the sequence hash, as BlockChecksums),
//                       slot index, xxh3 checksum of the record
//   [data, end)         the block slots (the fully contiguous G3 layout), 4 KiB aligned
// The salt is not stored on its own: it is folded into every sequence hash (and the root block's), which is
// what matching uses.
//
// Write protocol (the header is the commit point): before a slot is written, its record is zeroed
// (invalidate); the block bytes are written; only when that write has completed and its checksum is recorded
// does commit() write the record, with a generation that grows with every commit. A crash at any point leaves
// either no record, or a record whose data checksum no longer matches the bytes (a miss when read), never a
// record that makes wrong bytes come back: reads always verify the checksum.
//
// Start-up: a file with a valid superblock that matches the configuration is scanned; every record whose own
// checksum, magic and slot are intact is re-registered in the G3 pool (when two slots hold the same sequence
// hash, the higher generation wins) and its data checksum restored. A child whose parent is not in G3 is kept:
// the pool allows it and a match can reach it through a parent held in G1 or G2. Data is not read at start-up
// (checked lazily by every read). A superblock of another identity (g3.namespace or model fingerprint) is a
// FailedPrecondition naming both identities and the path; one that does not match otherwise (block count,
// block stride) names the key — the file is never silently discarded; remove it or point g3.directory
// elsewhere. A file of format version 1 (no identity: whose blocks it holds cannot be told) is refused the
// same way, rather than adopted or wiped. A damaged superblock is DataLoss. A new file, or one whose superblock is all
// zeros (creation interrupted), is initialised.
//
// Guarantees: process crash (SIGKILL, abort): every block whose commit() returned is found again, byte-exact.
// Power loss / kernel crash: records are written with pwrite and data with O_DIRECT, neither fsync'ed per block
// (fdatasync happens at clean shutdown), so blocks committed since the last clean shutdown may be lost — but
// never handed out wrong: a record that survived without its data fails its checksum and is a miss.
//
// Thread-safety: invalidate() and commit() may be called from any thread for distinct slots (a slot is written
// by the one transfer that owns it). restore() runs once, before the tier is used.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "kvbm/layout/layout.h"
#include "kvbm/offload/tier.h"
#include "kvbm/pool/block_pool.h"
#include "kvbm/storage/disk_file.h"
#include "kvbm/transfer/block_checksums.h"

namespace kvbm {

struct PersistentG3Stats {
  std::uint64_t restored = 0;           // blocks re-registered at start-up
  std::uint64_t dropped_damaged = 0;    // records with a bad magic, record checksum or slot at start-up
  std::uint64_t dropped_duplicate = 0;  // older records of a sequence hash held by two slots
  std::uint64_t commits = 0;            // records written
  std::uint64_t invalidations = 0;      // records zeroed before their slot was rewritten
  std::uint64_t write_failures = 0;     // record writes that failed (the block stays usable, not persistent)
  double rebuild_seconds = 0;           // time restore() took
};

// As the tier's hooks: before_write() and after_damaged() are invalidate(), after_write() is commit() with
// the tier's checksums, after_reset() is invalidate_all().
class PersistentG3 final : public TierHooks {
 public:
  static constexpr const char* kFileName = "kvbm-g3-persist.bin";
  static constexpr std::uint32_t kRecordBytes = 64;
  static constexpr std::uint32_t kFormatVersion = 2;  // 2: the identity (model fingerprint, namespace)
  static constexpr std::size_t kMaxNamespaceBytes = 128;

  // Bytes to reserve in front of the block data (DiskFile::Options::header_bytes) for `num_blocks` slots.
  [[nodiscard]] static std::uint64_t header_bytes(std::uint32_t num_blocks);

  // Opens (or initialises) the index of `file`, a persistent DiskFile created with header_bytes() for
  // `layout`, whose tier records its checksums in `checksums` (must outlive this), for the blocks of
  // `key_namespace` (g3.namespace, 1 to kMaxNamespaceBytes bytes). See the top of this file for the errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PersistentG3>> open(const DiskFile& file, const Layout& layout,
                                                                          const BlockChecksums* checksums,
                                                                          std::string_view key_namespace);
  ~PersistentG3() override;
  PersistentG3(const PersistentG3&) = delete;
  PersistentG3& operator=(const PersistentG3&) = delete;

  // Re-registers the file's blocks in `pool` (which must be empty and unused) and restores their checksums.
  [[nodiscard]] absl::Status restore(BlockPool<CacheLevel::kG3>& pool, BlockChecksums& checksums);
  // Zeroes the records of slots about to be rewritten. Returns after the writes are in the page cache.
  void invalidate(std::span<const BlockId> slots);
  // Writes the record of a slot whose data write has completed: `identity` and the checksum recorded in
  // `checksums` for it (nothing is written when that checksum is missing or bound to another hash).
  void commit(BlockId slot, const BlockIdentity& identity, const BlockChecksums& checksums);
  // Zeroes every record (the manager's reset()).
  [[nodiscard]] absl::Status invalidate_all();

  void before_write(std::span<const BlockId> slots) override { invalidate(slots); }
  void after_write(BlockId slot, const BlockIdentity& identity) override { commit(slot, identity, *checksums_); }
  [[nodiscard]] absl::Status after_reset() override { return invalidate_all(); }
  void after_damaged(std::span<const BlockId> slots) override { invalidate(slots); }

  [[nodiscard]] PersistentG3Stats stats() const;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  PersistentG3() = default;
  bool write_record(BlockId slot, const void* record);

  const BlockChecksums* checksums_ = nullptr;
  int meta_fd_ = -1;  // buffered fd on the same file, for superblock and records
  int data_fd_ = -1;  // the DiskFile's fd (fdatasync at shutdown)
  std::string path_;
  std::uint32_t num_blocks_ = 0;
  std::atomic<std::uint64_t> generation_{1};
  std::atomic<std::uint64_t> commits_{0}, invalidations_{0}, write_failures_{0};
  std::uint64_t restored_ = 0, dropped_damaged_ = 0, dropped_duplicate_ = 0;  // written by restore() only
  double rebuild_seconds_ = 0;
};

}  // namespace kvbm
