// FaultInjectingIoBackend: decides each op's fault under the lock from a seeded splitmix64 stream, then
// runs the surviving ops through the inner backend in one batch (outside the lock) and applies the
// read-side effects to the results.
//
// Every op draws the same number of random values whatever the rates, so a seed gives the same stream
// of decisions for the same sequence of ops. Of the failure kinds at most one applies to an op, checked
// in this order: reads EIO, short, corrupt; writes EIO, ENOSPC, short, corrupt. `slow` is independent.
// A complete read of a range that a corrupt write damaged (and nothing rewrote since) is counted as
// read_corrupted_data and gets no corrupt_read flip of its own (a second flip could undo the first).
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "kvbm/transfer/io_backend.h"

namespace kvbm {
namespace {

constexpr std::size_t kDirectAlignment = 4096;

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// True with probability `rate` (rate >= 1 always, rate <= 0 never).
bool draw(std::uint64_t& state, double rate) {
  const double u = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
  return u < rate;
}

// Bytes a short op transfers: half the length, kept 4 KiB aligned when the length is (as O_DIRECT needs),
// which may be 0.
std::uint32_t short_length(std::uint32_t length) {
  std::uint32_t half = length / 2;
  if (length % kDirectAlignment == 0) half -= half % kDirectAlignment;
  return half;
}

enum class Fault : std::uint8_t { kNone, kEio, kEnospc, kShort, kCorrupt };

struct Plan {
  Fault fault = Fault::kNone;
  bool slow = false;
  std::uint64_t position = 0;  // which byte a corrupt op flips (modulo the bytes transferred)
};

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};

}  // namespace

FaultInjectingIoBackend::FaultInjectingIoBackend(std::unique_ptr<IoBackend> inner, Faults faults, std::uint64_t seed)
    : inner_(std::move(inner)), faults_(faults), rng_state_(seed) {}

void FaultInjectingIoBackend::set_faults(const Faults& faults) {
  MutexLock lock(&mu_);
  faults_ = faults;
}

FaultInjectingIoBackend::Counts FaultInjectingIoBackend::counts() const {
  MutexLock lock(&mu_);
  return counts_;
}

std::size_t FaultInjectingIoBackend::damaged_ranges() const {
  MutexLock lock(&mu_);
  return corrupted_.size();
}

void FaultInjectingIoBackend::execute(std::span<IoOp> ops) {
  std::vector<Plan> plans(ops.size());
  std::uint32_t slow_micros = 0;
  {
    MutexLock lock(&mu_);
    slow_micros = faults_.slow_micros;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      Plan& plan = plans[i];
      const bool read = ops[i].kind == IoOp::Kind::kRead;
      const bool eio = draw(rng_state_, read ? faults_.read_eio : faults_.write_eio);
      const bool enospc = draw(rng_state_, read ? 0.0 : faults_.write_enospc);
      const bool short_op = draw(rng_state_, read ? faults_.short_read : faults_.short_write);
      const bool corrupt = draw(rng_state_, read ? faults_.corrupt_read : faults_.corrupt_write);
      plan.slow = draw(rng_state_, faults_.slow);
      plan.position = splitmix64(rng_state_);
      const auto key = std::make_pair(ops[i].fd, ops[i].offset);
      const auto damaged = corrupted_.find(key);
      const bool reads_damage = read && damaged != corrupted_.end() && damaged->second >= ops[i].length;
      if (eio) {
        plan.fault = Fault::kEio;
        ++(read ? counts_.read_eio : counts_.write_eio);
      } else if (enospc) {
        plan.fault = Fault::kEnospc;
        ++counts_.write_enospc;
      } else if (short_op) {
        plan.fault = Fault::kShort;
        ++(read ? counts_.short_read : counts_.short_write);
      } else if (reads_damage) {
        // The bytes on disk are already wrong: a second flip could restore them, so none is injected.
        plan.fault = Fault::kNone;
        ++counts_.read_corrupted_data;
      } else if (corrupt) {
        plan.fault = Fault::kCorrupt;
        ++(read ? counts_.corrupt_read : counts_.corrupt_write);
      }
      if (!read && ops[i].length > 0) {
        // What the disk holds after this write: damaged by a corrupt write; rewritten by a complete one;
        // unchanged by a failed one; partly rewritten (still damaged as far as we know) by a short one.
        if (plan.fault == Fault::kCorrupt) {
          corrupted_[key] = ops[i].length;
        } else if (plan.fault == Fault::kNone) {
          corrupted_.erase(key);
        }
      }
      if (plan.slow) ++counts_.slow;
    }
  }

  // Build the batch the inner backend sees: failed ops are left out, short writes shortened, corrupt
  // writes redirected to a damaged copy of their buffer.
  std::vector<IoOp> inner_ops;
  std::vector<std::size_t> inner_index;  // inner op -> index in ops
  std::vector<std::unique_ptr<std::byte, FreeDeleter>> copies;
  inner_ops.reserve(ops.size());
  inner_index.reserve(ops.size());
  std::uint64_t delay_micros = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    IoOp& op = ops[i];
    const Plan& plan = plans[i];
    if (plan.slow) delay_micros += slow_micros;
    if (plan.fault == Fault::kEio || plan.fault == Fault::kEnospc) {
      op.result = plan.fault == Fault::kEio ? -EIO : -ENOSPC;
      continue;
    }
    IoOp inner = op;
    if (op.kind == IoOp::Kind::kWrite && plan.fault == Fault::kShort) {
      inner.length = short_length(op.length);
    } else if (op.kind == IoOp::Kind::kWrite && plan.fault == Fault::kCorrupt && op.length > 0) {
      const std::size_t padded = (op.length + kDirectAlignment - 1) / kDirectAlignment * kDirectAlignment;
      std::unique_ptr<std::byte, FreeDeleter> copy(
          static_cast<std::byte*>(std::aligned_alloc(kDirectAlignment, padded)));
      if (copy == nullptr) {
        op.result = -ENOMEM;
        continue;
      }
      std::memcpy(copy.get(), op.buffer, op.length);
      copy.get()[plan.position % op.length] ^= std::byte{0xff};
      inner.buffer = copy.get();
      copies.push_back(std::move(copy));
    }
    inner_ops.push_back(inner);
    inner_index.push_back(i);
  }
  if (delay_micros > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_micros));
  if (!inner_ops.empty()) inner_->execute(inner_ops);

  for (std::size_t k = 0; k < inner_ops.size(); ++k) {
    IoOp& op = ops[inner_index[k]];
    const Plan& plan = plans[inner_index[k]];
    std::int64_t result = inner_ops[k].result;
    if (op.kind == IoOp::Kind::kRead && result > 0) {
      if (plan.fault == Fault::kShort) {
        result = std::min<std::int64_t>(result, short_length(op.length));
      } else if (plan.fault == Fault::kCorrupt) {
        op.buffer[plan.position % static_cast<std::uint64_t>(result)] ^= std::byte{0xff};
      }
    }
    op.result = result;
  }
}

}  // namespace kvbm
