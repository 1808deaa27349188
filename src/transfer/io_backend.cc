// POSIX pread/pwrite backend, and the choice of default backend.
#include <unistd.h>

#include <cerrno>

#include "kvbm/transfer/io_backend.h"

namespace kvbm {
namespace {

// One op to completion: loops over partial transfers (and EINTR) until the whole length is done, the
// file ends (0), or an error. A result below the length therefore means EOF or an error after some bytes.
void run_op(IoOp& op) {
  std::uint64_t done = 0;
  while (done < op.length) {
    const std::size_t remaining = op.length - done;
    const off_t offset = static_cast<off_t>(op.offset + done);
    const ssize_t n = op.kind == IoOp::Kind::kRead ? pread(op.fd, op.buffer + done, remaining, offset)
                                                   : pwrite(op.fd, op.buffer + done, remaining, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Bytes already moved are reported; the error is kept only when nothing moved, so a caller that
      // compares result with length still sees a failure either way.
      if (done == 0) {
        op.result = -errno;
        return;
      }
      break;
    }
    if (n == 0) break;
    done += static_cast<std::uint64_t>(n);
  }
  op.result = static_cast<std::int64_t>(done);
}

class PosixIoBackend final : public IoBackend {
 public:
  std::string_view name() const override { return "posix"; }
  void execute(std::span<IoOp> ops) override {
    for (IoOp& op : ops) run_op(op);
  }
};

}  // namespace

std::unique_ptr<IoBackend> make_posix_io_backend() { return std::make_unique<PosixIoBackend>(); }

std::unique_ptr<IoBackend> make_default_io_backend(std::uint32_t queue_depth) {
  absl::StatusOr<std::unique_ptr<IoBackend>> uring = make_uring_io_backend(queue_depth);
  if (uring.ok()) return *std::move(uring);
  return make_posix_io_backend();
}

}  // namespace kvbm
