// IoBackend: batched reads and writes of file byte ranges — the only way kvbm touches a disk tier.
//
// Implementations: io_uring (batched submissions, the default where the kernel allows it), POSIX
// pread/pwrite (the fallback), and FaultInjectingIoBackend, which wraps another backend and makes
// operations fail (EIO, ENOSPC), come up short, run slow, or corrupt bytes — for tests and fault soaks.
//
// Thread-safety: execute() may be called from several threads at once.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string_view>

#include "kvbm/core/mutex.h"

namespace kvbm {

struct IoOp {
  enum class Kind : std::uint8_t { kRead, kWrite };
  Kind kind = Kind::kRead;
  int fd = -1;
  std::uint64_t offset = 0;
  std::byte* buffer = nullptr;  // for O_DIRECT: 4 KiB aligned, as are offset and length
  std::uint32_t length = 0;
  // Set by execute(): bytes transferred (may be short), or -errno.
  std::int64_t result = 0;
};

class IoBackend {
 public:
  virtual ~IoBackend() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  // Performs every op and sets its result. Never throws; a failure is a negative result per op.
  virtual void execute(std::span<IoOp> ops) = 0;
};

[[nodiscard]] std::unique_ptr<IoBackend> make_posix_io_backend();
// Unavailable when io_uring cannot be set up here (old kernel, seccomp, RLIMIT_MEMLOCK).
[[nodiscard]] absl::StatusOr<std::unique_ptr<IoBackend>> make_uring_io_backend(std::uint32_t queue_depth = 64);
// io_uring when available, else POSIX.
[[nodiscard]] std::unique_ptr<IoBackend> make_default_io_backend(std::uint32_t queue_depth = 64);

// Wraps a backend and injects faults. Rates are probabilities in [0, 1] drawn per op from a seeded RNG,
// so a run is reproducible. Every injected fault is counted, and so are complete reads that return bytes
// an earlier corrupt write left on disk (ranges tracked by exact (fd, offset), as kvbm's one-I/O-per-block
// disk path issues them): together they let a test account for every failure its caller reports.
class FaultInjectingIoBackend final : public IoBackend {
 public:
  struct Faults {
    double read_eio = 0;       // read fails with -EIO
    double write_eio = 0;      // write fails with -EIO
    double write_enospc = 0;   // write fails with -ENOSPC
    double short_read = 0;     // read returns fewer bytes than asked
    double short_write = 0;    // write stores and reports fewer bytes than asked
    double corrupt_read = 0;   // read succeeds but one byte in the buffer is flipped
    double corrupt_write = 0;  // write succeeds but one byte on disk differs from the buffer
    double slow = 0;           // op delayed by slow_micros
    std::uint32_t slow_micros = 1000;
  };
  struct Counts {
    std::uint64_t read_eio = 0, write_eio = 0, write_enospc = 0, short_read = 0, short_write = 0, corrupt_read = 0,
                  corrupt_write = 0, slow = 0;
    // Not an injection of its own: complete reads that returned bytes a corrupt write left on disk (the
    // range was not rewritten since). Such a read is never also counted as corrupt_read.
    std::uint64_t read_corrupted_data = 0;
    [[nodiscard]] std::uint64_t total() const {
      return read_eio + write_eio + write_enospc + short_read + short_write + corrupt_read + corrupt_write + slow;
    }
    // Ops that fail outright (negative or short result): what a caller counts as I/O errors.
    [[nodiscard]] std::uint64_t failed_ops() const {
      return read_eio + write_eio + write_enospc + short_read + short_write;
    }
    // Complete reads that handed back damaged bytes: what a checksumming caller counts as DataLoss.
    [[nodiscard]] std::uint64_t damaged_reads() const { return corrupt_read + read_corrupted_data; }
  };

  FaultInjectingIoBackend(std::unique_ptr<IoBackend> inner, Faults faults, std::uint64_t seed);
  std::string_view name() const override { return "fault_injecting"; }
  void execute(std::span<IoOp> ops) override;
  void set_faults(const Faults& faults);
  [[nodiscard]] Counts counts() const;
  // Ranges a corrupt write damaged that no complete write has rewritten since.
  [[nodiscard]] std::size_t damaged_ranges() const;

 private:
  std::unique_ptr<IoBackend> inner_;
  mutable Mutex mu_;
  Faults faults_ ABSL_GUARDED_BY(mu_);
  std::uint64_t rng_state_ ABSL_GUARDED_BY(mu_);
  Counts counts_ ABSL_GUARDED_BY(mu_);
  // Byte ranges (fd, offset) -> length that a corrupt write damaged and no complete write has rewritten.
  std::map<std::pair<int, std::uint64_t>, std::uint32_t> corrupted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvbm
