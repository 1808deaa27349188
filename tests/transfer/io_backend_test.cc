#include "kvbm/transfer/io_backend.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "kvbm/storage/disk_file.h"

namespace kvbm {
namespace {

constexpr std::size_t kPage = 4096;

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte, FreeDeleter>;

AlignedBuffer aligned_buffer(std::size_t bytes) {
  return AlignedBuffer(static_cast<std::byte*>(std::aligned_alloc(kPage, bytes)));
}

void fill_random(std::byte* data, std::size_t bytes, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<std::byte>(rng());
}

IoOp op(IoOp::Kind kind, int fd, std::uint64_t offset, std::byte* buffer, std::uint32_t length) {
  return IoOp{.kind = kind, .fd = fd, .offset = offset, .buffer = buffer, .length = length, .result = 12345};
}

std::unique_ptr<DiskFile> make_file(std::uint64_t bytes) {
  auto file = DiskFile::create({bytes}, {.unlink_after_open = true});
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? *std::move(file) : nullptr;
}

enum class BackendKind { kPosix, kUring };

std::string backend_name(const testing::TestParamInfo<BackendKind>& info) {
  return info.param == BackendKind::kPosix ? "posix" : "uring";
}

class IoBackendTest : public testing::TestWithParam<BackendKind> {
 protected:
  static constexpr std::uint32_t kQueueDepth = 8;

  void SetUp() override {
    if (GetParam() == BackendKind::kPosix) {
      backend_ = make_posix_io_backend();
      return;
    }
    auto uring = make_uring_io_backend(kQueueDepth);
    if (!uring.ok()) GTEST_SKIP() << "io_uring is not available on this machine: " << uring.status();
    backend_ = *std::move(uring);
  }

  std::unique_ptr<IoBackend> backend_;
};

TEST_P(IoBackendTest, WriteThenReadBackIsByteExact) {
  constexpr std::size_t kFileBytes = 64 * kPage;
  auto file = make_file(kFileBytes);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(backend_->name(), GetParam() == BackendKind::kPosix ? "posix" : "io_uring");
  // Spans of 1..8 pages at scattered, non-overlapping offsets.
  const std::vector<std::pair<std::uint64_t, std::uint32_t>> spans = {
      {0, kPage}, {3 * kPage, 2 * kPage}, {10 * kPage, 8 * kPage}, {63 * kPage, kPage}, {30 * kPage, 5 * kPage}};
  std::vector<AlignedBuffer> src, dst;
  std::vector<IoOp> writes, reads;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const auto [offset, length] = spans[i];
    src.push_back(aligned_buffer(length));
    dst.push_back(aligned_buffer(length));
    fill_random(src.back().get(), length, i + 1);
    std::memset(dst.back().get(), 0, length);
    writes.push_back(op(IoOp::Kind::kWrite, file->fd(), offset, src.back().get(), length));
    reads.push_back(op(IoOp::Kind::kRead, file->fd(), offset, dst.back().get(), length));
  }
  backend_->execute(writes);
  for (const IoOp& w : writes) EXPECT_EQ(w.result, w.length);
  backend_->execute(reads);
  for (std::size_t i = 0; i < spans.size(); ++i) {
    ASSERT_EQ(reads[i].result, reads[i].length) << i;
    EXPECT_EQ(std::memcmp(src[i].get(), dst[i].get(), spans[i].second), 0) << i;
  }
}

TEST_P(IoBackendTest, ManyMoreOpsThanTheQueueDepth) {
  constexpr std::size_t kOps = 10 * kQueueDepth + 3;
  auto file = make_file(kOps * kPage);
  ASSERT_NE(file, nullptr);
  AlignedBuffer src = aligned_buffer(kOps * kPage);
  AlignedBuffer dst = aligned_buffer(kOps * kPage);
  fill_random(src.get(), kOps * kPage, 42);
  std::memset(dst.get(), 0, kOps * kPage);
  std::vector<IoOp> writes, reads;
  for (std::size_t i = 0; i < kOps; ++i) {
    // Reverse order, so completion order and file order differ.
    const std::size_t page = kOps - 1 - i;
    writes.push_back(op(IoOp::Kind::kWrite, file->fd(), page * kPage, src.get() + page * kPage, kPage));
    reads.push_back(op(IoOp::Kind::kRead, file->fd(), page * kPage, dst.get() + page * kPage, kPage));
  }
  backend_->execute(writes);
  for (const IoOp& w : writes) ASSERT_EQ(w.result, static_cast<std::int64_t>(kPage));
  backend_->execute(reads);
  for (const IoOp& r : reads) ASSERT_EQ(r.result, static_cast<std::int64_t>(kPage));
  EXPECT_EQ(std::memcmp(src.get(), dst.get(), kOps * kPage), 0);
}

TEST_P(IoBackendTest, ReadingPastEndOfFileIsShortNotSuccess) {
  auto file = make_file(4 * kPage);
  ASSERT_NE(file, nullptr);
  AlignedBuffer buffer = aligned_buffer(4 * kPage);
  std::vector<IoOp> ops = {
      op(IoOp::Kind::kRead, file->fd(), 2 * kPage, buffer.get(), 4 * kPage),  // straddles EOF
      op(IoOp::Kind::kRead, file->fd(), 8 * kPage, buffer.get(), kPage),      // wholly past EOF
      op(IoOp::Kind::kRead, -1, 0, buffer.get(), kPage),                      // bad fd
      op(IoOp::Kind::kWrite, file->fd(), 0, buffer.get(), 0),                 // empty
  };
  backend_->execute(ops);
  EXPECT_EQ(ops[0].result, static_cast<std::int64_t>(2 * kPage));
  EXPECT_EQ(ops[1].result, 0);
  EXPECT_EQ(ops[2].result, -EBADF);
  EXPECT_EQ(ops[3].result, 0);
}

TEST_P(IoBackendTest, ConcurrentExecuteFromFourThreads) {
  constexpr int kThreads = 4;
  constexpr std::size_t kPagesPerThread = 32;
  constexpr int kRounds = 20;
  auto file = make_file(kThreads * kPagesPerThread * kPage);
  ASSERT_NE(file, nullptr);
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::size_t bytes = kPagesPerThread * kPage;
      const std::uint64_t base = t * bytes;
      AlignedBuffer src = aligned_buffer(bytes);
      AlignedBuffer dst = aligned_buffer(bytes);
      for (int round = 0; round < kRounds; ++round) {
        fill_random(src.get(), bytes, static_cast<std::uint64_t>(t * 1000 + round));
        std::vector<IoOp> writes, reads;
        for (std::size_t p = 0; p < kPagesPerThread; ++p) {
          writes.push_back(op(IoOp::Kind::kWrite, file->fd(), base + p * kPage, src.get() + p * kPage, kPage));
          reads.push_back(op(IoOp::Kind::kRead, file->fd(), base + p * kPage, dst.get() + p * kPage, kPage));
        }
        backend_->execute(writes);
        backend_->execute(reads);
        for (std::size_t p = 0; p < kPagesPerThread; ++p) {
          if (writes[p].result != static_cast<std::int64_t>(kPage) ||
              reads[p].result != static_cast<std::int64_t>(kPage)) {
            ++failures[t];
          }
        }
        if (std::memcmp(src.get(), dst.get(), bytes) != 0) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

INSTANTIATE_TEST_SUITE_P(Backends, IoBackendTest, testing::Values(BackendKind::kPosix, BackendKind::kUring),
                         backend_name);

TEST(IoBackendFactoryTest, UringRejectsBadQueueDepth) {
  auto uring = make_uring_io_backend(0);
  ASSERT_FALSE(uring.ok());
  EXPECT_EQ(uring.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(uring.status().message()), testing::HasSubstr("got 0"));
}

TEST(IoBackendFactoryTest, DefaultIsUringWhereAvailable) {
  const bool uring_ok = make_uring_io_backend().ok();
  std::unique_ptr<IoBackend> backend = make_default_io_backend();
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->name(), uring_ok ? "io_uring" : "posix");
}

// ---- FaultInjectingIoBackend ----

class FaultInjectionTest : public testing::Test {
 protected:
  static constexpr std::size_t kOps = 16;
  static constexpr std::size_t kBytes = kOps * 2 * kPage;

  void SetUp() override {
    file_ = make_file(kBytes);
    ASSERT_NE(file_, nullptr);
    pattern_ = aligned_buffer(kBytes);
    scratch_ = aligned_buffer(kBytes);
    fill_random(pattern_.get(), kBytes, 7);
    // Lay the pattern down through a plain backend.
    std::vector<IoOp> ops = {op(IoOp::Kind::kWrite, file_->fd(), 0, pattern_.get(), kBytes)};
    make_posix_io_backend()->execute(ops);
    ASSERT_EQ(ops[0].result, static_cast<std::int64_t>(kBytes));
  }

  // kOps ops of two pages each, covering the file.
  std::vector<IoOp> ops(IoOp::Kind kind, std::byte* buffer) const {
    std::vector<IoOp> result;
    for (std::size_t i = 0; i < kOps; ++i) {
      result.push_back(op(kind, file_->fd(), i * 2 * kPage, buffer + i * 2 * kPage, 2 * kPage));
    }
    return result;
  }

  // The file's bytes, read through a plain backend.
  std::vector<std::byte> file_contents() const {
    AlignedBuffer buffer = aligned_buffer(kBytes);
    std::vector<IoOp> read = {op(IoOp::Kind::kRead, file_->fd(), 0, buffer.get(), kBytes)};
    make_posix_io_backend()->execute(read);
    EXPECT_EQ(read[0].result, static_cast<std::int64_t>(kBytes));
    return std::vector<std::byte>(buffer.get(), buffer.get() + kBytes);
  }

  static std::size_t differing_bytes(const std::byte* a, const std::byte* b, std::size_t n) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < n; ++i) count += a[i] != b[i] ? 1 : 0;
    return count;
  }

  std::unique_ptr<DiskFile> file_;
  AlignedBuffer pattern_;
  AlignedBuffer scratch_;
};

TEST_F(FaultInjectionTest, RateZeroIsTransparent) {
  FaultInjectingIoBackend backend(make_posix_io_backend(), {}, 1);
  std::memset(scratch_.get(), 0, kBytes);
  std::vector<IoOp> reads = ops(IoOp::Kind::kRead, scratch_.get());
  backend.execute(reads);
  for (const IoOp& r : reads) EXPECT_EQ(r.result, static_cast<std::int64_t>(2 * kPage));
  EXPECT_EQ(std::memcmp(scratch_.get(), pattern_.get(), kBytes), 0);
  std::vector<IoOp> writes = ops(IoOp::Kind::kWrite, pattern_.get());
  backend.execute(writes);
  for (const IoOp& w : writes) EXPECT_EQ(w.result, static_cast<std::int64_t>(2 * kPage));
  EXPECT_EQ(backend.counts().total(), 0u);
}

TEST_F(FaultInjectionTest, ReadEio) {
  FaultInjectingIoBackend backend(make_posix_io_backend(), {.read_eio = 1.0}, 1);
  std::memset(scratch_.get(), 0, kBytes);
  std::vector<IoOp> reads = ops(IoOp::Kind::kRead, scratch_.get());
  backend.execute(reads);
  for (const IoOp& r : reads) EXPECT_EQ(r.result, -EIO);
  const std::vector<std::byte> zeros(kBytes, std::byte{0});
  EXPECT_EQ(std::memcmp(scratch_.get(), zeros.data(), kBytes), 0) << "the read was not performed";
  EXPECT_EQ(backend.counts().read_eio, kOps);
  EXPECT_EQ(backend.counts().total(), kOps);
  // Writes are unaffected by read faults.
  std::vector<IoOp> writes = ops(IoOp::Kind::kWrite, pattern_.get());
  backend.execute(writes);
  for (const IoOp& w : writes) EXPECT_EQ(w.result, static_cast<std::int64_t>(2 * kPage));
}

TEST_F(FaultInjectionTest, WriteEioAndEnospcDoNotWrite) {
  for (const bool enospc : {false, true}) {
    SCOPED_TRACE(enospc ? "ENOSPC" : "EIO");
    FaultInjectingIoBackend::Faults faults;
    (enospc ? faults.write_enospc : faults.write_eio) = 1.0;
    FaultInjectingIoBackend backend(make_posix_io_backend(), faults, 1);
    std::memset(scratch_.get(), 0xab, kBytes);
    std::vector<IoOp> writes = ops(IoOp::Kind::kWrite, scratch_.get());
    backend.execute(writes);
    for (const IoOp& w : writes) EXPECT_EQ(w.result, enospc ? -ENOSPC : -EIO);
    const std::vector<std::byte> contents = file_contents();
    EXPECT_EQ(std::memcmp(contents.data(), pattern_.get(), kBytes), 0) << "nothing was written";
    EXPECT_EQ(enospc ? backend.counts().write_enospc : backend.counts().write_eio, kOps);
    EXPECT_EQ(backend.counts().total(), kOps);
  }
}

TEST_F(FaultInjectionTest, ShortWriteStoresAndReportsHalf) {
  FaultInjectingIoBackend backend(make_posix_io_backend(), {.short_write = 1.0}, 1);
  std::memset(scratch_.get(), 0xcd, kBytes);
  std::vector<IoOp> writes = ops(IoOp::Kind::kWrite, scratch_.get());
  backend.execute(writes);
  for (const IoOp& w : writes) EXPECT_EQ(w.result, static_cast<std::int64_t>(kPage));
  const std::vector<std::byte> contents = file_contents();
  for (std::size_t i = 0; i < kOps; ++i) {
    const std::size_t base = i * 2 * kPage;
    EXPECT_EQ(std::memcmp(contents.data() + base, scratch_.get() + base, kPage), 0) << "first half written " << i;
    EXPECT_EQ(std::memcmp(contents.data() + base + kPage, pattern_.get() + base + kPage, kPage), 0)
        << "second half untouched " << i;
  }
  EXPECT_EQ(backend.counts().short_write, kOps);
  EXPECT_EQ(backend.counts().total(), kOps);
}

TEST_F(FaultInjectionTest, ShortReadReportsFewerBytes) {
  FaultInjectingIoBackend backend(make_posix_io_backend(), {.short_read = 1.0}, 1);
  std::vector<IoOp> reads = ops(IoOp::Kind::kRead, scratch_.get());
  backend.execute(reads);
  for (const IoOp& r : reads) {
    EXPECT_GE(r.result, 0);
    EXPECT_LT(r.result, static_cast<std::int64_t>(r.length));
  }
  EXPECT_EQ(backend.counts().short_read, kOps);
  EXPECT_EQ(backend.counts().total(), kOps);
}

TEST_F(FaultInjectionTest, CorruptReadFlipsOneByteInTheBuffer) {
  FaultInjectingIoBackend backend(make_posix_io_backend(), {.corrupt_read = 1.0}, 1);
  std::vector<IoOp> reads = ops(IoOp::Kind::kRead, scratch_.get());
  backend.execute(reads);
  for (std::size_t i = 0; i < kOps; ++i) {
    EXPECT_EQ(reads[i].result, static_cast<std::int64_t>(2 * kPage));
    const std::size_t base = i * 2 * kPage;
    EXPECT_EQ(differing_bytes(scratch_.get() + base, pattern_.get() + base, 2 * kPage), 1u) << i;
  }
  const std::vector<std::byte> contents = file_contents();
  EXPECT_EQ(std::memcmp(contents.data(), pattern_.get(), kBytes), 0) << "the file itself is intact";
  EXPECT_EQ(backend.counts().corrupt_read, kOps);
  EXPECT_EQ(backend.counts().total(), kOps);
}

TEST_F(FaultInjectionTest, CorruptWriteStoresOneDifferentByteAndReportsSuccess) {
  FaultInjectingIoBackend backend(make_posix_io_backend(), {.corrupt_write = 1.0}, 1);
  fill_random(scratch_.get(), kBytes, 99);
  std::vector<std::byte> source(scratch_.get(), scratch_.get() + kBytes);
  std::vector<IoOp> writes = ops(IoOp::Kind::kWrite, scratch_.get());
  backend.execute(writes);
  for (const IoOp& w : writes) EXPECT_EQ(w.result, static_cast<std::int64_t>(2 * kPage));
  EXPECT_EQ(std::memcmp(source.data(), scratch_.get(), kBytes), 0) << "the caller's buffer is untouched";
  const std::vector<std::byte> contents = file_contents();
  for (std::size_t i = 0; i < kOps; ++i) {
    const std::size_t base = i * 2 * kPage;
    EXPECT_EQ(differing_bytes(contents.data() + base, source.data() + base, 2 * kPage), 1u) << i;
  }
  EXPECT_EQ(backend.counts().corrupt_write, kOps);
  EXPECT_EQ(backend.counts().total(), kOps);
}

TEST_F(FaultInjectionTest, SlowDelaysButSucceeds) {
  FaultInjectingIoBackend backend(make_posix_io_backend(), {.slow = 1.0, .slow_micros = 2000}, 1);
  std::vector<IoOp> reads = ops(IoOp::Kind::kRead, scratch_.get());
  const auto start = std::chrono::steady_clock::now();
  backend.execute(reads);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  for (const IoOp& r : reads) EXPECT_EQ(r.result, static_cast<std::int64_t>(2 * kPage));
  EXPECT_EQ(std::memcmp(scratch_.get(), pattern_.get(), kBytes), 0);
  // A lower bound only (sleeps never end early); no upper bound in a unit test.
  EXPECT_GE(elapsed, std::chrono::microseconds(2000));
  EXPECT_EQ(backend.counts().slow, kOps);
  EXPECT_EQ(backend.counts().total(), kOps);
}

TEST_F(FaultInjectionTest, SetFaultsChangesRates) {
  FaultInjectingIoBackend backend(make_posix_io_backend(), {.read_eio = 1.0}, 1);
  backend.set_faults({});
  std::vector<IoOp> reads = ops(IoOp::Kind::kRead, scratch_.get());
  backend.execute(reads);
  for (const IoOp& r : reads) EXPECT_EQ(r.result, static_cast<std::int64_t>(2 * kPage));
  EXPECT_EQ(backend.counts().total(), 0u);
}

TEST_F(FaultInjectionTest, SeededRunsAreReproducible) {
  const FaultInjectingIoBackend::Faults faults{.read_eio = 0.2, .short_read = 0.2, .corrupt_read = 0.2};
  auto run = [&](std::uint64_t seed) {
    FaultInjectingIoBackend backend(make_posix_io_backend(), faults, seed);
    std::vector<std::int64_t> results;
    std::vector<std::byte> bytes;
    for (int round = 0; round < 8; ++round) {
      std::memset(scratch_.get(), 0, kBytes);
      std::vector<IoOp> reads = ops(IoOp::Kind::kRead, scratch_.get());
      backend.execute(reads);
      for (const IoOp& r : reads) results.push_back(r.result);
      bytes.insert(bytes.end(), scratch_.get(), scratch_.get() + kBytes);
    }
    const auto c = backend.counts();
    return std::make_tuple(results, bytes, c.read_eio, c.short_read, c.corrupt_read);
  };
  const auto a = run(123);
  const auto b = run(123);
  const auto c = run(456);
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  // 128 ops at three rates of 0.2: every kind fires at least once (the chance it does not is < 1e-9).
  EXPECT_GT(std::get<2>(a), 0u);
  EXPECT_GT(std::get<3>(a), 0u);
  EXPECT_GT(std::get<4>(a), 0u);
}

TEST_F(FaultInjectionTest, WrapsUringToo) {
  auto uring = make_uring_io_backend(4);
  if (!uring.ok()) GTEST_SKIP() << "io_uring is not available on this machine: " << uring.status();
  FaultInjectingIoBackend backend(*std::move(uring), {.corrupt_write = 1.0}, 5);
  std::vector<IoOp> writes = ops(IoOp::Kind::kWrite, pattern_.get());
  backend.execute(writes);
  for (const IoOp& w : writes) EXPECT_EQ(w.result, static_cast<std::int64_t>(2 * kPage));
  const std::vector<std::byte> contents = file_contents();
  EXPECT_EQ(differing_bytes(contents.data(), pattern_.get(), kBytes), kOps);
}

}  // namespace
}  // namespace kvbm
