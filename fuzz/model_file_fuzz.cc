// libFuzzer target: the model file parser of `kvbm replay --model FILE.toml` (parse_model_file) and the
// model it describes (apply_model_dims). Invariants: a parse error is InvalidArgument starting with
// "line N: "; a parsed file gives a model or an InvalidArgument, and a model's geometry validates and has
// as many bytes per block as its formula says.
#include <string>

#include "fuzz_check.h"
#include "kvbm/replay/model_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto dims = kvbm::parse_model_file(text);
  if (!dims.ok()) {
    KVBM_FUZZ_CHECK(absl::IsInvalidArgument(dims.status()), "%s", std::string(dims.status().message()).c_str());
    KVBM_FUZZ_CHECK(dims.status().message().rfind("line ", 0) == 0, "%s",
                    std::string(dims.status().message()).c_str());
    return 0;
  }
  const std::uint32_t tokens = dims->page_size.value_or(16);
  auto model = kvbm::apply_model_dims(std::nullopt, *dims, tokens, /*from_flags=*/false);
  if (!model.ok()) {
    KVBM_FUZZ_CHECK(absl::IsInvalidArgument(model.status()), "%s", std::string(model.status().message()).c_str());
    return 0;
  }
  KVBM_FUZZ_CHECK(model->geometry.validate().ok(), "%s", model->geometry.to_string().c_str());
  KVBM_FUZZ_CHECK(model->geometry.page_size == tokens, "%s", model->geometry.to_string().c_str());
  KVBM_FUZZ_CHECK(!model->formula().empty() && !model->to_json().empty(), "%s", model->to_json().c_str());
  return 0;
}
