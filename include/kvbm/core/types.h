// Strong types for the identifiers kvbm passes around (DESIGN.md §1).
//
// A block id of one tier, a block hash and a sequence hash are all integers underneath; giving each its
// own type means passing one where another is meant is a compile error rather than a wrong cache hit.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <type_traits>

namespace kvbm {

// StrongId<Tag, Rep>: an integer with a name. Explicit construction, equality and ordering only; no
// arithmetic and no implicit conversion to or from Rep or to another StrongId.
template <typename Tag, typename Rep>
class StrongId {
 public:
  using rep_type = Rep;
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep value) : value_(value) {}
  [[nodiscard]] constexpr Rep value() const { return value_; }
  friend constexpr bool operator==(StrongId, StrongId) = default;
  friend constexpr auto operator<=>(StrongId, StrongId) = default;
  template <typename H>
  friend H AbslHashValue(H h, StrongId id) {
    return H::combine(std::move(h), id.value_);
  }

 private:
  Rep value_{};
};

struct BlockIdTag {};
struct BlockHashTag {};
struct SequenceHashTag {};
struct SaltHashTag {};

// Index of a block slot inside one tier's pool; meaningless across tiers.
using BlockId = StrongId<BlockIdTag, std::uint32_t>;
// xxh3_64 of one block's tokens (seeded with the salt hash).
using BlockHash = StrongId<BlockHashTag, std::uint64_t>;
// Names a whole prefix: the chain of block hashes up to and including this block.
using SequenceHash = StrongId<SequenceHashTag, std::uint64_t>;
// xxh3_64 of the salt bytes; 0 when there is no salt.
using SaltHash = StrongId<SaltHashTag, std::uint64_t>;

static_assert(!std::is_convertible_v<BlockHash, SequenceHash>, "hash kinds must not mix");
static_assert(!std::is_convertible_v<std::uint64_t, SequenceHash>, "no implicit hash from an integer");
static_assert(!std::is_convertible_v<SequenceHash, std::uint64_t>, "no implicit integer from a hash");
static_assert(!std::is_convertible_v<std::uint32_t, BlockId>, "no implicit block id");
static_assert(sizeof(SequenceHash) == 8 && std::is_trivially_copyable_v<SequenceHash>);

// Storage tiers, fastest first. G1 is device memory (system memory on a machine with no GPU).
enum class CacheLevel : std::uint8_t { kG1 = 0, kG2 = 1, kG3 = 2, kG4 = 3 };
inline constexpr int kNumCacheLevels = 4;

// "G1".."G4".
[[nodiscard]] std::string_view cache_level_name(CacheLevel level);
// The event wire name of a tier (specs/kv-events-wire-format.md): "GPU", "CPU", "DISK", "REMOTE".
[[nodiscard]] std::string_view cache_level_medium(CacheLevel level);

}  // namespace kvbm

template <typename Tag, typename Rep>
struct std::hash<kvbm::StrongId<Tag, Rep>> {
  std::size_t operator()(kvbm::StrongId<Tag, Rep> id) const noexcept { return std::hash<Rep>{}(id.value()); }
};
