// PersistentG3: see include/kvbm/offload/persistent_g3.h for the format and the guarantees.
#include "kvbm/offload/persistent_g3.h"

#include <absl/strings/str_cat.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kvbm/core/hashing.h"

namespace kvbm {
namespace {

constexpr std::uint64_t kSuperblockBytes = 4096;
constexpr char kSuperMagic[8] = {'K', 'V', 'B', 'M', 'G', '3', 'P', '1'};
constexpr std::uint32_t kRecordMagic = 0x5242564bu;  // "KVBR"
constexpr std::uint32_t kFlagHasParent = 1u;
constexpr std::uint64_t kRecordSeed = 0x6b76626d2d726563ull;
constexpr std::uint64_t kSuperSeed = 0x6b76626d2d737570ull;

struct Superblock {
  char magic[8];
  std::uint32_t version;
  std::uint32_t record_bytes;
  std::uint32_t num_blocks;
  std::uint32_t num_layers;
  std::uint32_t outer_dim;
  std::uint32_t page_size;
  std::uint32_t inner_dim;
  std::uint32_t dtype_bytes;
  std::uint64_t block_bytes;
  std::uint64_t block_stride;
  std::uint64_t data_offset;
  // Format version 2: whose blocks these are.
  std::uint64_t model_fingerprint;  // model_fingerprint() of the geometry
  std::uint32_t namespace_bytes;    // length of key_namespace
  std::uint32_t reserved;
  char key_namespace[PersistentG3::kMaxNamespaceBytes];  // g3.namespace, zero-padded
  std::uint64_t checksum;                                // xxh3 of the bytes before it
};
static_assert(sizeof(Superblock) == 216);
// Where format version 1 kept what every version starts with (magic, version).
constexpr std::size_t kVersionEnd = offsetof(Superblock, record_bytes);

struct Record {
  std::uint32_t magic;
  std::uint32_t flags;
  std::uint64_t generation;
  std::uint64_t sequence_hash;
  std::uint64_t parent_hash;
  std::uint64_t block_hash;
  std::uint64_t checksum;  // of the block bytes, seeded with the sequence hash
  std::uint64_t slot;
  std::uint64_t record_checksum;  // xxh3 of the bytes before it
};
static_assert(sizeof(Record) == PersistentG3::kRecordBytes);

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::uint64_t record_checksum(const Record& r) { return xxh3_64(&r, offsetof(Record, record_checksum), kRecordSeed); }
std::uint64_t super_checksum(const Superblock& s) { return xxh3_64(&s, offsetof(Superblock, checksum), kSuperSeed); }

absl::Status io_error(const std::string& path, const char* what, int err) {
  return absl::InternalError(absl::StrCat("G3 persistent file '", path, "': ", what, ": ", std::strerror(err)));
}

// Full pread/pwrite (retrying short transfers and EINTR). 0 or an errno.
int pread_all(int fd, void* buf, std::size_t len, std::uint64_t off) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    const ssize_t n = ::pread(fd, p, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;  // past the end: the file is shorter than its superblock says
    p += n;
    len -= static_cast<std::size_t>(n);
    off += static_cast<std::uint64_t>(n);
  }
  return 0;
}

int pwrite_all(int fd, const void* buf, std::size_t len, std::uint64_t off) {
  const auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    const ssize_t n = ::pwrite(fd, p, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    p += n;
    len -= static_cast<std::size_t>(n);
    off += static_cast<std::uint64_t>(n);
  }
  return 0;
}

// The model's geometry as one u64 (field names hashed with the values, so that no reordering aliases two).
std::uint64_t model_fingerprint(const ModelConfig& m) {
  const std::string text =
      absl::StrCat("kvbm-g3|num_layers=", m.num_layers, "|outer_dim=", m.outer_dim, "|page_size=", m.page_size,
                   "|inner_dim=", m.inner_dim, "|dtype_bytes=", m.dtype_bytes);
  return xxh3_64(text.data(), text.size(), 0);
}

std::string_view namespace_of(const Superblock& s) {
  return std::string_view(s.key_namespace, std::min<std::size_t>(s.namespace_bytes, sizeof(s.key_namespace)));
}

// "g3.namespace 'x' (model fingerprint 0x...)"
std::string identity(const Superblock& s) {
  return absl::StrCat("g3.namespace '", std::string(namespace_of(s)), "' (model fingerprint 0x",
                      absl::Hex(s.model_fingerprint, absl::kZeroPad16), ")");
}

Superblock make_superblock(const Layout& layout, std::uint64_t data_offset, std::string_view key_namespace) {
  Superblock s{};
  std::memcpy(s.magic, kSuperMagic, sizeof(kSuperMagic));
  s.version = PersistentG3::kFormatVersion;
  s.record_bytes = PersistentG3::kRecordBytes;
  s.num_blocks = layout.num_blocks();
  const ModelConfig& m = layout.model();
  s.num_layers = m.num_layers;
  s.outer_dim = m.outer_dim;
  s.page_size = m.page_size;
  s.inner_dim = m.inner_dim;
  s.dtype_bytes = m.dtype_bytes;
  s.block_bytes = m.bytes_per_block();
  std::uint64_t total = 0;
  for (std::uint64_t r : layout.region_sizes()) total += r;
  s.block_stride = layout.num_blocks() == 0 ? 0 : total / layout.num_blocks();
  s.data_offset = data_offset;
  s.model_fingerprint = model_fingerprint(m);
  s.namespace_bytes = static_cast<std::uint32_t>(key_namespace.size());
  std::memcpy(s.key_namespace, key_namespace.data(), key_namespace.size());
  s.checksum = super_checksum(s);
  return s;
}

// The first field of `file` that differs from `want`, as "key: file has X, the config has Y"; empty if none.
std::string mismatch(const Superblock& file, const Superblock& want) {
  auto field = [](const char* key, std::uint64_t f, std::uint64_t w) -> std::string {
    if (f == w) return {};
    return absl::StrCat(key, ": the file was written with ", f, ", the configuration has ", w);
  };
  for (const std::string& m :
       {field("format version", file.version, want.version), field("record size", file.record_bytes, want.record_bytes),
        field("g3.num_blocks (or g3.bytes)", file.num_blocks, want.num_blocks),
        field("model.num_layers", file.num_layers, want.num_layers),
        field("model.outer_dim", file.outer_dim, want.outer_dim),
        field("model.page_size", file.page_size, want.page_size),
        field("model.inner_dim", file.inner_dim, want.inner_dim),
        field("model.dtype_bytes", file.dtype_bytes, want.dtype_bytes),
        field("block bytes", file.block_bytes, want.block_bytes),
        field("g3.alignment (block stride)", file.block_stride, want.block_stride),
        field("data offset", file.data_offset, want.data_offset)}) {
    if (!m.empty()) return m;
  }
  return {};
}

}  // namespace

std::uint64_t PersistentG3::header_bytes(std::uint32_t num_blocks) {
  return kSuperblockBytes + round_up(std::uint64_t{num_blocks} * kRecordBytes, DiskFile::kAlignment);
}

absl::StatusOr<std::unique_ptr<PersistentG3>> PersistentG3::open(const DiskFile& file, const Layout& layout,
                                                                 const BlockChecksums* checksums,
                                                                 std::string_view key_namespace) {
  if (key_namespace.empty() || key_namespace.size() > kMaxNamespaceBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("g3.namespace must be 1 to ", kMaxNamespaceBytes, " characters, got ", key_namespace.size()));
  }
  const std::uint64_t header = header_bytes(layout.num_blocks());
  if (file.region_offset(0) != header) {
    return absl::InvalidArgumentError(absl::StrCat("G3 persistent file '", file.path(), "': data starts at ",
                                                   file.region_offset(0), ", expected ", header));
  }
  std::unique_ptr<PersistentG3> p(new PersistentG3());
  p->checksums_ = checksums;
  p->path_ = file.path();
  p->num_blocks_ = layout.num_blocks();
  p->data_fd_ = file.fd();
  p->meta_fd_ = ::open(file.path().c_str(), O_RDWR | O_CLOEXEC);
  if (p->meta_fd_ < 0) return io_error(p->path_, "open", errno);

  const Superblock want = make_superblock(layout, header, key_namespace);
  Superblock have{};
  bool fresh = !file.existed();
  if (!fresh) {
    if (file.previous_bytes() < kVersionEnd) {
      fresh = true;
    } else if (int err = pread_all(p->meta_fd_, &have, std::min<std::uint64_t>(sizeof(have), file.previous_bytes()), 0);
               err != 0) {
      return io_error(p->path_, "read superblock", err);
    } else {
      static const Superblock zero{};
      fresh = std::memcmp(&have, &zero, sizeof(have)) == 0;  // creation interrupted before the superblock
    }
  }
  if (!fresh) {
    if (std::memcmp(have.magic, kSuperMagic, sizeof(kSuperMagic)) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("G3 persistent file '", p->path_,
                       "' is not a kvbm persistent G3 file (bad magic); remove it or choose "
                       "another g3.directory"));
    }
    if (have.version != kFormatVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("G3 persistent file '", p->path_, "' was written in format version ", have.version,
                       "; this kvbm reads ", kFormatVersion,
                       have.version < kFormatVersion
                           ? ", which records whose blocks the file holds (g3.namespace, model fingerprint): "
                             "an older file cannot tell, so it is not adopted"
                           : "",
                       "; remove the file to start with an empty G3, or use another g3.directory"));
    }
    if (have.checksum != super_checksum(have)) {
      return absl::DataLossError(absl::StrCat("G3 persistent file '", p->path_,
                                              "': the superblock is damaged (checksum mismatch); remove the file to "
                                              "start with an empty G3"));
    }
    if (have.model_fingerprint != want.model_fingerprint || namespace_of(have) != namespace_of(want)) {
      std::string m = mismatch(have, want);
      return absl::FailedPreconditionError(
          absl::StrCat("G3 persistent file '", p->path_, "' holds the blocks of ", identity(have),
                       ", the configuration is ", identity(want), m.empty() ? "" : absl::StrCat(" (", m, ")"),
                       "; give each model its own g3.namespace and g3.directory, or remove the file to start "
                       "with an empty G3"));
    }
    if (std::string m = mismatch(have, want); !m.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("G3 persistent file '", p->path_, "' does not match the configuration: ", m,
                       "; remove the file to start with an empty G3, or use another g3.directory"));
    }
    return p;
  }
  // Initialise: zero every record, then write the superblock (the file is valid from that point on).
  std::vector<char> zeros(1 << 20, 0);
  for (std::uint64_t off = kSuperblockBytes; off < header; off += zeros.size()) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), header - off));
    if (int err = pwrite_all(p->meta_fd_, zeros.data(), n, off); err != 0) return io_error(p->path_, "zero", err);
  }
  if (::fdatasync(p->meta_fd_) != 0) return io_error(p->path_, "fdatasync", errno);
  if (int err = pwrite_all(p->meta_fd_, &want, sizeof(want), 0); err != 0) {
    return io_error(p->path_, "write superblock", err);
  }
  if (::fdatasync(p->meta_fd_) != 0) return io_error(p->path_, "fdatasync", errno);
  return p;
}

PersistentG3::~PersistentG3() {
  if (data_fd_ >= 0) (void)::fdatasync(data_fd_);
  if (meta_fd_ >= 0) {
    (void)::fdatasync(meta_fd_);
    (void)::close(meta_fd_);
  }
}

absl::Status PersistentG3::restore(BlockPool<CacheLevel::kG3>& pool, BlockChecksums& checksums) {
  const auto started = std::chrono::steady_clock::now();
  if (pool.num_blocks() != num_blocks_) {
    return absl::InvalidArgumentError(
        absl::StrCat("PersistentG3::restore: pool has ", pool.num_blocks(), " blocks, the file ", num_blocks_));
  }
  // Scan the records in 1 MiB chunks; keep the newest valid record per sequence hash.
  std::vector<Record> keep(num_blocks_);
  std::vector<bool> valid(num_blocks_, false);
  std::unordered_map<std::uint64_t, std::uint32_t> by_hash;  // sequence hash -> slot
  std::vector<std::uint32_t> superseded;
  by_hash.reserve(num_blocks_);
  constexpr std::uint32_t kChunk = (1u << 20) / kRecordBytes;
  std::vector<Record> chunk(kChunk);
  std::uint64_t max_generation = 0;
  for (std::uint32_t first = 0; first < num_blocks_; first += kChunk) {
    const std::uint32_t n = std::min(kChunk, num_blocks_ - first);
    if (int err = pread_all(meta_fd_, chunk.data(), std::size_t{n} * kRecordBytes,
                            kSuperblockBytes + std::uint64_t{first} * kRecordBytes);
        err != 0) {
      return io_error(path_, "read records", err);
    }
    for (std::uint32_t i = 0; i < n; ++i) {
      const Record& r = chunk[i];
      const std::uint32_t slot = first + i;
      if (r.magic == 0 && r.record_checksum == 0) continue;  // empty or invalidated
      if (r.magic != kRecordMagic || r.record_checksum != record_checksum(r) || r.slot != slot ||
          (r.flags & ~kFlagHasParent) != 0 || ((r.flags & kFlagHasParent) && r.parent_hash == r.sequence_hash)) {
        ++dropped_damaged_;
        continue;
      }
      max_generation = std::max(max_generation, r.generation);
      auto [it, inserted] = by_hash.try_emplace(r.sequence_hash, slot);
      if (!inserted) {
        ++dropped_duplicate_;
        if (keep[it->second].generation >= r.generation) {
          superseded.push_back(slot);
          continue;
        }
        superseded.push_back(it->second);
        valid[it->second] = false;
        it->second = slot;
      }
      keep[slot] = r;
      valid[slot] = true;
    }
  }
  generation_.store(max_generation + 1, std::memory_order_relaxed);
  // Older copies will never be used: clear them so that the next start sees one record per hash.
  std::vector<BlockId> stale;
  stale.reserve(superseded.size());
  for (std::uint32_t slot : superseded) stale.push_back(BlockId{slot});
  invalidate(stale);
  invalidations_.store(0, std::memory_order_relaxed);  // count only invalidations of running service

  // Take every slot (the pool is empty, so these are all of them), fill the kept ones, register them newest
  // first (so that release() leaves the newest most recently used), and let the others go back to free.
  auto all = pool.allocate(num_blocks_);
  if (!all.ok()) return all.status();
  std::vector<MutableBlock<CacheLevel::kG3>*> by_slot(num_blocks_, nullptr);
  for (MutableBlock<CacheLevel::kG3>& b : *all) by_slot[b.id().value()] = &b;
  std::vector<std::uint32_t> order;
  for (std::uint32_t slot = 0; slot < num_blocks_; ++slot) {
    if (valid[slot]) order.push_back(slot);
  }
  std::sort(order.begin(), order.end(),
            [&](std::uint32_t a, std::uint32_t b) { return keep[a].generation > keep[b].generation; });
  std::vector<MutableBlock<CacheLevel::kG3>> blocks;
  blocks.reserve(order.size());
  for (std::uint32_t slot : order) {
    const Record& r = keep[slot];
    MutableBlock<CacheLevel::kG3>* b = by_slot[slot];
    if (b == nullptr) return absl::InternalError(absl::StrCat("PersistentG3::restore: slot ", slot, " not allocated"));
    BlockIdentity identity{
        BlockHash{r.block_hash}, SequenceHash{r.sequence_hash},
        (r.flags & kFlagHasParent) ? std::optional<SequenceHash>(SequenceHash{r.parent_hash}) : std::nullopt};
    if (absl::Status s = b->apply(identity); !s.ok()) return s;
    checksums.record(BlockId{slot}, r.sequence_hash, r.checksum);
    blocks.push_back(std::move(*b));
  }
  auto registered = pool.register_blocks(blocks);
  if (!registered.ok()) return registered.status();
  restored_ = registered->size();
  pool.release(*std::move(registered));
  all->clear();  // the slots without a record go back to free
  rebuild_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return absl::OkStatus();
}

bool PersistentG3::write_record(BlockId slot, const void* record) {
  if (slot.value() >= num_blocks_) return false;
  const int err =
      pwrite_all(meta_fd_, record, kRecordBytes, kSuperblockBytes + std::uint64_t{slot.value()} * kRecordBytes);
  if (err != 0) {
    write_failures_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void PersistentG3::invalidate(std::span<const BlockId> slots) {
  static const Record zero{};
  for (BlockId slot : slots) {
    if (write_record(slot, &zero)) invalidations_.fetch_add(1, std::memory_order_relaxed);
  }
}

void PersistentG3::commit(BlockId slot, const BlockIdentity& identity, const BlockChecksums& checksums) {
  const std::optional<BlockChecksums::Recorded> recorded = checksums.recorded(slot);
  if (!recorded || recorded->tag != identity.sequence_hash.value()) return;
  Record r{};
  r.magic = kRecordMagic;
  r.flags = identity.parent ? kFlagHasParent : 0;
  r.generation = generation_.fetch_add(1, std::memory_order_relaxed);
  r.sequence_hash = identity.sequence_hash.value();
  r.parent_hash = identity.parent ? identity.parent->value() : 0;
  r.block_hash = identity.block_hash.value();
  r.checksum = recorded->checksum;
  r.slot = slot.value();
  r.record_checksum = record_checksum(r);
  if (write_record(slot, &r)) commits_.fetch_add(1, std::memory_order_relaxed);
}

absl::Status PersistentG3::invalidate_all() {
  std::vector<char> zeros(1 << 20, 0);
  const std::uint64_t end = header_bytes(num_blocks_);
  for (std::uint64_t off = kSuperblockBytes; off < end; off += zeros.size()) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), end - off));
    if (int err = pwrite_all(meta_fd_, zeros.data(), n, off); err != 0) return io_error(path_, "zero records", err);
  }
  return absl::OkStatus();
}

PersistentG3Stats PersistentG3::stats() const {
  PersistentG3Stats s;
  s.restored = restored_;
  s.dropped_damaged = dropped_damaged_;
  s.dropped_duplicate = dropped_duplicate_;
  s.commits = commits_.load(std::memory_order_relaxed);
  s.invalidations = invalidations_.load(std::memory_order_relaxed);
  s.write_failures = write_failures_.load(std::memory_order_relaxed);
  s.rebuild_seconds = rebuild_seconds_;
  return s;
}

}  // namespace kvbm
