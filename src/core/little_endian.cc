#include "kvbm/core/little_endian.h"

#include <absl/strings/str_cat.h>

#include <string>

namespace kvbm {

absl::Status LeReader::read_bytes(std::string* value, std::size_t n, std::string_view field) {
  if (remaining() < n) return truncated(field);
  value->assign(in_.substr(pos_, n));
  pos_ += n;
  return absl::OkStatus();
}

absl::Status LeReader::truncated(std::string_view field) const {
  return absl::InvalidArgumentError(absl::StrCat(std::string(what_), ": truncated at byte ", pos_, " of ", in_.size(),
                                                 " (reading ", std::string(field), ")"));
}

}  // namespace kvbm
