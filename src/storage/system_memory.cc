// SystemMemory: anonymous private mmap per region.
//
// Anonymous mappings are always zero on first touch, so `zero_fill` does not change the bytes a caller
// reads; it guarantees the zeroes are *resident*: every page is pre-faulted here, so the first transfer
// into the tier does not pay page faults. With zero_fill = false pages are faulted lazily on first use.
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "kvbm/storage/storage.h"

namespace kvbm {
namespace {

constexpr std::size_t kPageBytes = 4096;

}  // namespace

absl::StatusOr<std::unique_ptr<SystemMemory>> SystemMemory::create(std::vector<std::uint64_t> region_sizes,
                                                                   Options options) {
  const std::size_t a = options.alignment;
  if (a < kPageBytes || (a & (a - 1)) != 0 || a > (std::size_t{1} << 40)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SystemMemory.alignment must be a power of two in [4096, 2^40], got ", options.alignment));
  }
  if (region_sizes.empty()) return absl::InvalidArgumentError("SystemMemory needs at least one region, got 0");
  for (std::size_t i = 0; i < region_sizes.size(); ++i) {
    if (region_sizes[i] == 0) {
      return absl::InvalidArgumentError(absl::StrCat("SystemMemory region ", i, " size must be > 0, got 0"));
    }
    if (region_sizes[i] > std::numeric_limits<std::size_t>::max() / 4) {
      return absl::ResourceExhaustedError(
          absl::StrCat("SystemMemory region ", i, ": cannot allocate ", region_sizes[i], " bytes"));
    }
  }

  std::unique_ptr<SystemMemory> memory(new SystemMemory());
  memory->regions_.reserve(region_sizes.size());
  memory->mapped_bytes_.reserve(region_sizes.size());
  for (std::size_t i = 0; i < region_sizes.size(); ++i) {
    const std::size_t size = static_cast<std::size_t>(region_sizes[i]);
    const std::size_t mapped = (size + a - 1) & ~(a - 1);
    // mmap returns page-aligned memory; for a larger alignment over-map by (alignment - page) and trim.
    const std::size_t slack = a - kPageBytes;
    void* raw = mmap(nullptr, mapped + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
      const int err = errno;
      return absl::ResourceExhaustedError(absl::StrCat("SystemMemory region ", i, ": cannot map ", mapped, " bytes (",
                                                       size, " requested): ", std::strerror(err)));
    }
    const auto base = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = (base + a - 1) & ~(std::uintptr_t{a} - 1);
    const std::size_t head = aligned - base;
    if (head > 0) munmap(raw, head);
    if (slack - head > 0) munmap(reinterpret_cast<void*>(aligned + mapped), slack - head);
    auto* bytes = reinterpret_cast<std::byte*>(aligned);
    memory->regions_.emplace_back(bytes, size);
    memory->mapped_bytes_.push_back(mapped);

    if (options.huge_pages) {
      // Best effort: the kernel may have THP disabled; the memory works either way.
      (void)madvise(bytes, mapped, MADV_HUGEPAGE);
    }
    if (options.zero_fill) {
      // Pre-fault every page. The bytes are already zero; writing zero makes the page resident.
      for (std::size_t offset = 0; offset < mapped; offset += kPageBytes) {
        *reinterpret_cast<volatile std::byte*>(bytes + offset) = std::byte{0};
      }
    }
  }
  return memory;
}

absl::StatusOr<std::unique_ptr<SystemMemory>> SystemMemory::for_layout(const Layout& layout, Options options) {
  return create(layout.region_sizes(), options);
}

SystemMemory::~SystemMemory() {
  for (std::size_t i = 0; i < regions_.size(); ++i) munmap(regions_[i].data(), mapped_bytes_[i]);
}

}  // namespace kvbm
