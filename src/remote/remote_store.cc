// RemoteStore support: keys, the value header, jump consistent hashing, RemoteOp, G4Config checks.
#include "kvbm/remote/remote_store.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_split.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "kvbm/core/little_endian.h"
#include "kvbm/remote/remote_config.h"

namespace kvbm {
namespace {

constexpr char kMagic[4] = {'K', 'V', 'B', '4'};
constexpr std::size_t kChecksumOffset = 48;

// xxh3_64(header[0, 48) ‖ payload, seed = sequence hash).
std::uint64_t value_checksum(const std::byte* header, std::span<const std::byte> payload, std::uint64_t seed) {
  XXH3_state_t state;
  XXH3_64bits_reset_withSeed(&state, seed);
  XXH3_64bits_update(&state, header, kChecksumOffset);
  XXH3_64bits_update(&state, payload.data(), payload.size());
  return XXH3_64bits_digest(&state);
}

}  // namespace

std::uint64_t model_fingerprint(const ModelConfig& model) {
  // Field names are hashed with the values so that reordering fields can never alias two geometries.
  const std::string text = absl::StrFormat(
      "kvbm-g4|format=%d|order=layer,outer,canonical|num_layers=%d|outer_dim=%d|page_size=%d|inner_dim=%d|"
      "dtype_bytes=%d",
      kRemoteFormatVersion, model.num_layers, model.outer_dim, model.page_size, model.inner_dim, model.dtype_bytes);
  return XXH3_64bits_withSeed(text.data(), text.size(), 0);
}

std::string remote_block_key(std::string_view ns, std::uint64_t fingerprint, SequenceHash hash) {
  return absl::StrFormat("%s:%016x:%016x", std::string(ns), fingerprint, hash.value());
}

RemoteValue::RemoteValue(const RemoteBlockInfo& info, std::uint64_t fingerprint, std::size_t payload_bytes)
    : info_(info), bytes_(kRemoteHeaderBytes + payload_bytes, '\0') {
  auto* h = reinterpret_cast<std::byte*>(bytes_.data());
  std::memcpy(h, kMagic, 4);
  store_le<std::uint16_t>(h + 4, kRemoteFormatVersion);
  store_le<std::uint16_t>(h + 6, info.parent ? 1 : 0);
  store_le<std::uint64_t>(h + 8, fingerprint);
  store_le<std::uint64_t>(h + 16, info.sequence_hash.value());
  store_le<std::uint64_t>(h + 24, info.block_hash.value());
  store_le<std::uint64_t>(h + 32, info.parent ? info.parent->value() : 0);
  store_le<std::uint64_t>(h + 40, payload_bytes);
}

std::span<std::byte> RemoteValue::payload() {
  return std::span<std::byte>(reinterpret_cast<std::byte*>(bytes_.data()) + kRemoteHeaderBytes,
                              bytes_.size() - kRemoteHeaderBytes);
}

void RemoteValue::seal() {
  auto* h = reinterpret_cast<std::byte*>(bytes_.data());
  store_le<std::uint64_t>(h + kChecksumOffset, value_checksum(h, payload(), info_.sequence_hash.value()));
}

absl::Status decode_remote_value(std::string_view value, SequenceHash expected, std::uint64_t fingerprint,
                                 std::size_t payload_bytes, DecodedValue* out) {
  const std::string what = absl::StrFormat("G4 value of %016x", expected.value());
  if (value.size() != kRemoteHeaderBytes + payload_bytes) {
    return absl::DataLossError(
        absl::StrCat(what, ": ", value.size(), " bytes, expected ", kRemoteHeaderBytes + payload_bytes));
  }
  const auto* h = reinterpret_cast<const std::byte*>(value.data());
  if (std::memcmp(h, kMagic, 4) != 0) return absl::DataLossError(absl::StrCat(what, ": bad magic"));
  if (load_le<std::uint16_t>(h + 4) != kRemoteFormatVersion) {
    return absl::DataLossError(
        absl::StrCat(what, ": format version ", load_le<std::uint16_t>(h + 4), ", expected ", kRemoteFormatVersion));
  }
  const std::uint16_t flags = load_le<std::uint16_t>(h + 6);
  if ((flags & ~1u) != 0) return absl::DataLossError(absl::StrCat(what, ": unknown flags ", flags));
  if (load_le<std::uint64_t>(h + 8) != fingerprint)
    return absl::DataLossError(absl::StrCat(what, ": another model's block"));
  if (load_le<std::uint64_t>(h + 16) != expected.value())
    return absl::DataLossError(absl::StrCat(what, ": another block's value"));
  if (load_le<std::uint64_t>(h + 40) != payload_bytes)
    return absl::DataLossError(absl::StrCat(what, ": payload length differs"));
  std::span<const std::byte> payload(h + kRemoteHeaderBytes, payload_bytes);
  if (load_le<std::uint64_t>(h + kChecksumOffset) != value_checksum(h, payload, expected.value())) {
    return absl::DataLossError(absl::StrCat(what, ": checksum mismatch"));
  }
  out->info.sequence_hash = expected;
  out->info.block_hash = BlockHash{load_le<std::uint64_t>(h + 24)};
  out->info.parent =
      (flags & 1u) != 0 ? std::optional<SequenceHash>(SequenceHash{load_le<std::uint64_t>(h + 32)}) : std::nullopt;
  out->payload = payload;
  return absl::OkStatus();
}

std::uint32_t jump_consistent_hash(std::uint64_t key, std::uint32_t buckets) {
  std::int64_t b = -1;
  std::int64_t j = 0;
  while (j < static_cast<std::int64_t>(buckets)) {
    b = j;
    key = key * 2862933555777941757ULL + 1;
    j = static_cast<std::int64_t>(static_cast<double>(b + 1) *
                                  (static_cast<double>(std::int64_t{1} << 31) / static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<std::uint32_t>(b);
}

std::size_t RemoteResult::ok_prefix() const {
  std::size_t n = 0;
  while (n < blocks.size() && blocks[n].ok()) ++n;
  return n;
}

// ---- RemoteOp ----

RemoteOp::RemoteOp(std::size_t num_keys, bool fetch)
    : status_(num_keys, absl::DeadlineExceededError("G4: not answered by the deadline")),
      answered_(num_keys, false),
      fetched_(fetch ? num_keys : 0),
      node_(num_keys, 0),
      fetch_(fetch) {}

bool RemoteOp::done() const {
  MutexLock lock(&mu_);
  return parts_left_ == 0;
}

RemoteResult RemoteOp::snapshot() const {
  RemoteResult r;
  r.blocks = status_;
  if (fetch_) r.fetched = fetched_;
  return r;
}

RemoteResult RemoteOp::wait() const {
  MutexLock lock(&mu_);
  while (parts_left_ != 0) cv_.wait(mu_);
  return snapshot();
}

RemoteResult RemoteOp::result_by(std::chrono::steady_clock::time_point deadline) const {
  MutexLock lock(&mu_);
  while (parts_left_ != 0) {
    if (cv_.wait_until(mu_, deadline) == std::cv_status::timeout) break;
  }
  return snapshot();
}

void RemoteOp::expect_parts(std::size_t parts) {
  MutexLock lock(&mu_);
  parts_left_ += parts;
}

void RemoteOp::set(std::size_t index, absl::Status status, RemoteFetched fetched) {
  MutexLock lock(&mu_);
  status_[index] = std::move(status);
  answered_[index] = true;
  if (fetch_) fetched_[index] = std::move(fetched);
}

void RemoteOp::set_all(std::span<const std::size_t> indices, const absl::Status& status) {
  MutexLock lock(&mu_);
  for (std::size_t i : indices) {
    status_[i] = status;
    answered_[i] = true;
  }
}

void RemoteOp::part_done() {
  {
    MutexLock lock(&mu_);
    if (parts_left_ > 0) --parts_left_;
  }
  cv_.notify_all();
}

std::string_view remote_health_name(RemoteHealth health) {
  switch (health) {
    case RemoteHealth::kAvailable:
      return "available";
    case RemoteHealth::kDegraded:
      return "degraded";
    case RemoteHealth::kUnavailable:
      return "unavailable";
  }
  return "?";
}

// ---- G4Config ----

absl::StatusOr<std::vector<RemoteEndpoint>> parse_remote_endpoints(std::string_view text) {
  std::vector<RemoteEndpoint> out;
  for (absl::string_view part : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    const std::string entry(part);
    const std::size_t colon = entry.rfind(':');
    std::uint32_t port = 0;
    if (entry.empty() || colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(absl::string_view(entry).substr(colon + 1), &port) || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("g4.endpoints must be a comma-separated list of host:port (port in [1, 65535]), got entry '",
                       entry, "' in '", std::string(text), "'"));
    }
    RemoteEndpoint e{entry.substr(0, colon), static_cast<std::uint16_t>(port)};
    if (std::find(out.begin(), out.end(), e) != out.end()) {
      return absl::InvalidArgumentError(absl::StrCat("g4.endpoints lists '", entry, "' twice"));
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<absl::Status> G4Config::check() const {
  std::vector<absl::Status> errors;
  if (!enabled()) return errors;
  if (auto e = parse_remote_endpoints(endpoints); !e.ok()) errors.push_back(e.status());
  if (key_namespace.empty() || key_namespace.size() > 128 ||
      key_namespace.find_first_of(" \t\r\n") != std::string::npos) {
    errors.push_back(absl::InvalidArgumentError(
        absl::StrCat("g4.namespace must be 1 to 128 characters without whitespace, got '", key_namespace, "'")));
  }
  auto range = [&](const char* key, std::uint64_t v, std::uint64_t lo, std::uint64_t hi) {
    if (v < lo || v > hi) {
      errors.push_back(
          absl::InvalidArgumentError(absl::StrCat(key, " must be an integer in [", lo, ", ", hi, "], got ", v)));
    }
  };
  range("g4.deadline_ms", deadline_ms, 1, 60000);
  range("g4.connect_timeout_ms", connect_timeout_ms, 1, 60000);
  range("g4.io_timeout_ms", io_timeout_ms, 1, 600000);
  range("g4.max_batch_blocks", max_batch_blocks, 1, 4096);
  return errors;
}

}  // namespace kvbm
