// DiskFile: the storage of a G3 (local disk) tier — one file in a configured directory.
//
// Regions are laid back to back in the file, each starting on a 4 KiB boundary. The CPU cannot address
// the bytes (host_region() is empty): transfers read and write them through an IoBackend, using fd()
// and region_offset(). Space is reserved up front with fallocate (ftruncate where the file system does
// not support it), and a directory without room for the whole tier is an error at construction — never
// later, mid-offload. The file is opened O_DIRECT unless the file system refuses it (then buffered I/O,
// direct_io() says which), mode 0600, and removed when the DiskFile is destroyed (or right after opening
// with unlink_after_open, so a crash leaves nothing behind).
//
// Persistent files (Options::file_name set, used by g3.persist): the file has that fixed name, is opened
// when it exists (created otherwise), locked with flock(LOCK_EX) so a second process cannot use it at
// the same time (a lock still held after kLockGraceMs is an error; see disk_file.cc), and kept when the
// DiskFile is destroyed. header_bytes (rounded up to 4 KiB) are reserved in front of region 0 for the
// caller's metadata (see offload/persistent_g3.h). A new file is reserved at once; one that existed keeps
// its size until the caller, having accepted its contents, calls reserve_rest() — so a start refused for
// a mismatched file leaves that file untouched.
//
// Thread-safety: immutable after construction; concurrent I/O on distinct byte ranges is safe.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvbm/storage/storage.h"

namespace kvbm {

class DiskFile final : public Storage {
 public:
  static constexpr std::uint64_t kAlignment = 4096;
  // How long opening a persistent file waits for another holder of its lock before it fails.
  static constexpr int kLockGraceMs = 2000;

  struct Options {
    std::string directory;           // empty: the system temp dir ($TMPDIR, else /tmp)
    bool direct_io = true;           // try O_DIRECT first
    bool unlink_after_open = false;  // remove the directory entry immediately; the fd keeps the data
    std::string name_prefix = "kvbm-g3";
    // Non-empty: a persistent file of exactly this name (no '/'); see the top of this file.
    std::string file_name;
    std::uint64_t header_bytes = 0;  // reserved before region 0, rounded up to kAlignment
  };

  // InvalidArgument for bad sizes or a directory that is not a writable directory; ResourceExhausted
  // naming the directory, the bytes wanted and the bytes free when the space cannot be reserved.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DiskFile>> create(std::vector<std::uint64_t> region_sizes,
                                                                        Options options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DiskFile>> for_layout(const Layout& layout, Options options);
  ~DiskFile() override;
  DiskFile(const DiskFile&) = delete;
  DiskFile& operator=(const DiskFile&) = delete;

  StorageKind kind() const override { return StorageKind::kDisk; }
  std::size_t num_regions() const override { return region_sizes_.size(); }
  std::uint64_t region_size(std::size_t index) const override { return region_sizes_[index]; }
  std::span<std::byte> host_region(std::size_t) const override { return {}; }

  [[nodiscard]] int fd() const { return fd_; }
  // File offset of region `index` (a multiple of kAlignment).
  [[nodiscard]] std::uint64_t region_offset(std::size_t index) const { return region_offsets_[index]; }
  [[nodiscard]] bool direct_io() const { return direct_io_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::uint64_t file_bytes() const { return file_bytes_; }
  // Persistent files: whether the file existed before this DiskFile opened it, and its size then.
  [[nodiscard]] bool existed() const { return existed_; }
  [[nodiscard]] std::uint64_t previous_bytes() const { return previous_bytes_; }
  // Persistent files that existed: reserves the bytes the file lacks up to file_bytes() (ResourceExhausted
  // as create() when they do not fit). OK at once for a file already that large, and for other files.
  [[nodiscard]] absl::Status reserve_rest();

 private:
  DiskFile() = default;
  static absl::StatusOr<std::unique_ptr<DiskFile>> open_persistent(std::unique_ptr<DiskFile> file,
                                                                   const std::string& dir, const Options& options,
                                                                   bool space_known, std::uint64_t space_bytes);
  int fd_ = -1;
  bool direct_io_ = false;
  bool unlinked_ = false;
  bool persistent_ = false;
  bool existed_ = false;
  std::uint64_t previous_bytes_ = 0;
  std::string directory_;  // persistent files: where reserve_rest() checks the free space
  std::string path_;
  std::uint64_t file_bytes_ = 0;
  std::vector<std::uint64_t> region_sizes_;
  std::vector<std::uint64_t> region_offsets_;
};

}  // namespace kvbm
