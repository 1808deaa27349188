// DiskFile: one preallocated file per G3 tier.
//
// Creation order matters for the guarantees in the header: the directory is checked and its free space
// compared with the whole file size before anything is created, so a tier that cannot fit fails without
// leaving a file behind; space is then reserved with fallocate so a later write cannot hit ENOSPC
// mid-offload. O_DIRECT is tried first; a file system that refuses it (EINVAL at open) gets buffered I/O.
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <thread>

#include "kvbm/core/size.h"
#include "kvbm/storage/disk_file.h"

namespace kvbm {
namespace {

std::atomic<std::uint64_t> g_file_counter{0};

std::uint64_t round_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

std::string default_directory() {
  const char* tmpdir = std::getenv("TMPDIR");
  if (tmpdir != nullptr && tmpdir[0] != '\0') return tmpdir;
  return "/tmp";
}

absl::Status no_space_error(const std::string& dir, std::uint64_t wanted, std::uint64_t free_bytes) {
  return absl::ResourceExhaustedError(absl::StrCat("G3 disk directory '", dir, "': needs ", wanted, " bytes (",
                                                   format_size(wanted), "), ", free_bytes, " bytes free"));
}

struct FreeSpace {
  bool known = false;  // false: the file system reports no capacity (ramfs, some FUSE and network ones)
  std::uint64_t bytes = 0;
};

absl::StatusOr<FreeSpace> free_space(const std::string& dir) {
  struct statvfs vfs {};
  if (statvfs(dir.c_str(), &vfs) != 0) {
    const int err = errno;
    return absl::InvalidArgumentError(
        absl::StrCat("G3 disk directory '", dir, "': cannot query free space: ", std::strerror(err)));
  }
  if (vfs.f_blocks == 0) return FreeSpace{};
  const std::uint64_t frsize = vfs.f_frsize != 0 ? vfs.f_frsize : vfs.f_bsize;
  const std::uint64_t blocks = vfs.f_bavail;
  if (frsize != 0 && blocks > std::numeric_limits<std::uint64_t>::max() / frsize) {
    return FreeSpace{.known = true, .bytes = std::numeric_limits<std::uint64_t>::max()};
  }
  return FreeSpace{.known = true, .bytes = blocks * frsize};
}

// Reserves `bytes` in `fd`: fallocate where the file system supports it, else ftruncate (which only sets
// the size; the free-space check before it is then the only guarantee).
absl::Status reserve(int fd, const std::string& dir, std::uint64_t bytes) {
  // fallocate(2) rather than posix_fallocate: glibc emulates the latter with one small write per block,
  // which O_DIRECT refuses and which would be slow on a large tier anyway.
  int rc = 0;
  do {
    rc = fallocate(fd, 0, 0, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
  } while (rc == EINTR);
  if (rc == 0) return absl::OkStatus();
  if (rc == ENOSPC || rc == EFBIG) {
    const absl::StatusOr<FreeSpace> free_now = free_space(dir);
    return no_space_error(dir, bytes, free_now.ok() ? free_now->bytes : 0);
  }
  if (rc == EOPNOTSUPP || rc == ENOSYS) {
    if (ftruncate(fd, static_cast<off_t>(bytes)) == 0) return absl::OkStatus();
    const int err = errno;
    return absl::InternalError(
        absl::StrCat("G3 disk directory '", dir, "': cannot size file to ", bytes, " bytes: ", std::strerror(err)));
  }
  return absl::InternalError(
      absl::StrCat("G3 disk directory '", dir, "': cannot reserve ", bytes, " bytes: ", std::strerror(rc)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<DiskFile>> DiskFile::create(std::vector<std::uint64_t> region_sizes, Options options) {
  if (region_sizes.empty()) return absl::InvalidArgumentError("DiskFile needs at least one region, got 0");
  std::vector<std::uint64_t> offsets;
  offsets.reserve(region_sizes.size());
  constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 62;
  if (options.header_bytes > kMaxBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiskFile header_bytes ", options.header_bytes, " must be at most 2^62"));
  }
  std::uint64_t end = round_up(options.header_bytes, kAlignment);
  for (std::size_t i = 0; i < region_sizes.size(); ++i) {
    if (region_sizes[i] == 0) {
      return absl::InvalidArgumentError(absl::StrCat("DiskFile region ", i, " size must be > 0, got 0"));
    }
    if (region_sizes[i] > kMaxBytes || end > kMaxBytes - round_up(region_sizes[i], kAlignment)) {
      return absl::InvalidArgumentError(absl::StrCat("DiskFile region ", i, " size ", region_sizes[i],
                                                     ": total file size must be at most 2^62 bytes"));
    }
    offsets.push_back(end);
    end += round_up(region_sizes[i], kAlignment);
  }
  const std::uint64_t file_bytes = end;

  if (!options.file_name.empty()) {
    if (options.file_name.find('/') != std::string::npos || options.file_name == "." || options.file_name == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("DiskFile file_name must be a file name without '/', got '", options.file_name, "'"));
    }
    if (options.unlink_after_open) {
      return absl::InvalidArgumentError("DiskFile: a persistent file (file_name) cannot be unlink_after_open");
    }
  }
  if (options.name_prefix.empty() || options.name_prefix.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DiskFile name_prefix must be a non-empty file name without '/', got '", options.name_prefix, "'"));
  }
  const std::string dir = options.directory.empty() ? default_directory() : options.directory;
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    return absl::InvalidArgumentError(
        absl::StrCat("G3 disk directory '", dir, "' is not usable: ", std::strerror(err)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("G3 disk directory '", dir, "' is not a directory"));
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    const int err = errno;
    return absl::InvalidArgumentError(
        absl::StrCat("G3 disk directory '", dir, "' is not writable: ", std::strerror(err)));
  }
  // Where the file system reports no capacity, the reservation below is the only check.
  absl::StatusOr<FreeSpace> available = free_space(dir);
  if (!available.ok()) return available.status();

  std::unique_ptr<DiskFile> file(new DiskFile());
  file->region_sizes_ = std::move(region_sizes);
  file->region_offsets_ = std::move(offsets);
  file->file_bytes_ = file_bytes;
  if (!options.file_name.empty())
    return open_persistent(std::move(file), dir, options, available->known, available->bytes);
  if (available->known && available->bytes < file_bytes) return no_space_error(dir, file_bytes, available->bytes);

  std::random_device random_device;
  constexpr int kMaxNameAttempts = 16;
  for (int attempt = 0; attempt < kMaxNameAttempts && file->fd_ < 0; ++attempt) {
    const std::uint64_t random = (std::uint64_t{random_device()} << 32) | random_device();
    std::string path = absl::StrCat(dir, dir.ends_with('/') ? "" : "/", options.name_prefix, "-", getpid(), "-",
                                    g_file_counter.fetch_add(1, std::memory_order_relaxed), "-",
                                    absl::Hex(random, absl::kZeroPad16), ".bin");
    constexpr int kFlags = O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC;
    bool direct = options.direct_io;
    int fd = open(path.c_str(), kFlags | (direct ? O_DIRECT : 0), 0600);
    if (fd < 0 && direct && errno == EINVAL) {
      // The file system refuses O_DIRECT. Linux creates the file before it checks the flag, and O_EXCL
      // guarantees that file is ours, so remove it and create it again for buffered I/O.
      (void)unlink(path.c_str());
      direct = false;
      fd = open(path.c_str(), kFlags, 0600);
    }
    if (fd < 0) {
      const int err = errno;
      if (err == EEXIST) continue;
      return absl::InvalidArgumentError(
          absl::StrCat("G3 disk directory '", dir, "': cannot create '", path, "': ", std::strerror(err)));
    }
    file->fd_ = fd;
    file->direct_io_ = direct;
    file->path_ = std::move(path);
  }
  if (file->fd_ < 0) {
    return absl::InternalError(
        absl::StrCat("G3 disk directory '", dir, "': no unused file name after ", kMaxNameAttempts, " attempts"));
  }
  // From here on the destructor closes and removes the file on every error path.
  if (options.unlink_after_open) {
    if (unlink(file->path_.c_str()) != 0) {
      const int err = errno;
      return absl::InternalError(absl::StrCat("G3 disk file '", file->path_, "': cannot unlink: ", std::strerror(err)));
    }
    file->unlinked_ = true;
  }
  if (absl::Status status = reserve(file->fd_, dir, file_bytes); !status.ok()) return status;
  return file;
}

namespace {

// flock(LOCK_EX) on fd, waiting up to kLockGraceMs for a holder to let go; 0 or the errno. A manager killed
// with writes in flight can hold the lock for a moment after it was reaped — seen once in CI (ASan build,
// tests in parallel): a restart right after SIGKILL and waitpid found the lock held, most likely by the
// killed process's io_uring requests, which the kernel releases asynchronously. A supervisor that restarts
// a crashed manager at once must not be told the file is in use by another manager.
int lock_exclusive(int fd) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(DiskFile::kLockGraceMs);
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK || std::chrono::steady_clock::now() >= deadline) return err;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<DiskFile>> DiskFile::open_persistent(std::unique_ptr<DiskFile> file,
                                                                    const std::string& dir, const Options& options,
                                                                    bool space_known, std::uint64_t space_bytes) {
  std::string path = absl::StrCat(dir, dir.ends_with('/') ? "" : "/", options.file_name);
  constexpr int kFlags = O_CREAT | O_RDWR | O_CLOEXEC;
  bool direct = options.direct_io;
  int fd = open(path.c_str(), kFlags | (direct ? O_DIRECT : 0), 0600);
  if (fd < 0 && direct && errno == EINVAL) {
    direct = false;
    fd = open(path.c_str(), kFlags, 0600);
  }
  if (fd < 0) {
    const int err = errno;
    return absl::InvalidArgumentError(
        absl::StrCat("G3 disk directory '", dir, "': cannot open '", path, "': ", std::strerror(err)));
  }
  file->fd_ = fd;
  file->direct_io_ = direct;
  file->persistent_ = true;
  file->path_ = std::move(path);
  // The destructor closes the fd and keeps the file on every path from here on.
  if (const int err = lock_exclusive(fd); err != 0) {
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "G3 persistent file '", file->path_, "' is in use by another kvbm manager (flock, still held after ",
          DiskFile::kLockGraceMs, " ms); give each manager its own g3.directory"));
    }
    return absl::InternalError(absl::StrCat("G3 persistent file '", file->path_, "': flock: ", std::strerror(err)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    return absl::InternalError(absl::StrCat("G3 persistent file '", file->path_, "': fstat: ", std::strerror(err)));
  }
  file->previous_bytes_ = static_cast<std::uint64_t>(st.st_size);
  file->existed_ = st.st_size > 0;
  file->directory_ = dir;
  // A file that existed is not resized here: its owner first checks that its contents belong to this
  // configuration (a refused start must leave the file as it was), then calls reserve_rest().
  if (!file->existed_) {
    if (space_known && space_bytes < file->file_bytes_) return no_space_error(dir, file->file_bytes_, space_bytes);
    if (absl::Status status = reserve(file->fd_, dir, file->file_bytes_); !status.ok()) return status;
  }
  return file;
}

absl::Status DiskFile::reserve_rest() {
  if (!persistent_ || previous_bytes_ >= file_bytes_) return absl::OkStatus();
  absl::StatusOr<FreeSpace> available = free_space(directory_);
  if (!available.ok()) return available.status();
  const std::uint64_t missing = file_bytes_ - previous_bytes_;
  if (available->known && available->bytes < missing) return no_space_error(directory_, missing, available->bytes);
  return reserve(fd_, directory_, file_bytes_);
}

absl::StatusOr<std::unique_ptr<DiskFile>> DiskFile::for_layout(const Layout& layout, Options options) {
  return create(layout.region_sizes(), std::move(options));
}

DiskFile::~DiskFile() {
  if (fd_ >= 0) (void)close(fd_);
  if (!unlinked_ && !persistent_ && !path_.empty()) (void)unlink(path_.c_str());
}

}  // namespace kvbm
