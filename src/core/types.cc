#include "kvbm/core/types.h"

namespace kvbm {

std::string_view cache_level_name(CacheLevel level) {
  switch (level) {
    case CacheLevel::kG1:
      return "G1";
    case CacheLevel::kG2:
      return "G2";
    case CacheLevel::kG3:
      return "G3";
    case CacheLevel::kG4:
      return "G4";
  }
  return "G?";
}

std::string_view cache_level_medium(CacheLevel level) {
  switch (level) {
    case CacheLevel::kG1:
      return "GPU";
    case CacheLevel::kG2:
      return "CPU";
    case CacheLevel::kG3:
      return "DISK";
    case CacheLevel::kG4:
      return "REMOTE";
  }
  return "UNKNOWN";
}

}  // namespace kvbm
