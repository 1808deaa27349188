#include "kvbm/core/model_config.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/string_view.h>

namespace kvbm {
namespace {

absl::Status check_range(absl::string_view field, std::uint32_t value, std::uint32_t lo, std::uint32_t hi) {
  if (value < lo || value > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("ModelConfig.", field, " must be in [", lo, ", ", hi, "], got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ModelConfig::validate() const {
  if (auto s = check_range("num_layers", num_layers, 1, kMaxLayers); !s.ok()) return s;
  if (auto s = check_range("outer_dim", outer_dim, 1, 2); !s.ok()) return s;
  if (auto s = check_range("page_size", page_size, 1, kMaxPageSize); !s.ok()) return s;
  if (auto s = check_range("inner_dim", inner_dim, 1, kMaxInnerDim); !s.ok()) return s;
  return check_range("dtype_bytes", dtype_bytes, 1, kMaxDtypeBytes);
}

std::string ModelConfig::to_string() const {
  return absl::StrCat("ModelConfig{num_layers=", num_layers, ", outer_dim=", outer_dim, ", page_size=", page_size,
                      ", inner_dim=", inner_dim, ", dtype_bytes=", dtype_bytes, ", bytes_per_block=", bytes_per_block(),
                      "}");
}

}  // namespace kvbm
