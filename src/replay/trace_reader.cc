// JSONL trace readers and writer (kvbm/replay/trace.h).
//
// A file is read one line at a time into a reused buffer and each line is parsed with simdjson's
// on-demand parser, so memory stays bounded by the longest line whatever the file's size. Values are
// read with simdjson error codes (no exceptions); every failure becomes InvalidArgument
// "<path>:<line>: <what>", naming the key that was wrong.
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include <simdjson.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvbm/core/hashing.h"
#include "kvbm/core/json_escape.h"
#include "kvbm/replay/trace.h"

namespace kvbm {
namespace {

namespace od = simdjson::ondemand;

constexpr std::size_t kReadBufferBytes = 1 << 20;

bool is_blank(std::string_view line) { return line.find_first_not_of(" \t\r\n") == std::string_view::npos; }

std::string json_type_name(od::json_type type) {
  switch (type) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "an unknown value";
}

// Builds the "<path>:<line>: ..." errors for one line.
class LineErrors {
 public:
  LineErrors(const std::string& path, std::uint64_t line) : path_(path), line_(line) {}

  [[nodiscard]] absl::Status error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_, ": ", what));
  }
  [[nodiscard]] absl::Status bad_json(simdjson::error_code code) const {
    return error(absl::StrCat("invalid JSON: ", std::string(simdjson::error_message(code))));
  }
  // `name` must be an integer in [0, max]; says what `value` is instead.
  [[nodiscard]] absl::Status bad_integer(od::value& value, const std::string& name, std::uint64_t max) const {
    const std::string expected = absl::StrCat("\"", name, "\" must be an integer in [0, ", max, "]");
    od::json_type type{};
    if (auto code = value.type().get(type)) return bad_json(code);
    if (type != od::json_type::number) return error(absl::StrCat(expected, ", got ", json_type_name(type)));
    std::string_view raw;
    raw = value.raw_json_token();
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\r')) raw.remove_suffix(1);
    return error(absl::StrCat(expected, ", got ", std::string(raw)));
  }

 private:
  const std::string& path_;
  std::uint64_t line_;
};

// Reads a non-negative integer no larger than `max`.
absl::Status read_uint(od::value& value, const LineErrors& errors, const std::string& name, std::uint64_t max,
                       std::uint64_t* out) {
  std::uint64_t v = 0;
  if (value.get_uint64().get(v) != simdjson::SUCCESS || v > max) return errors.bad_integer(value, name, max);
  *out = v;
  return absl::OkStatus();
}

absl::Status read_timestamp(od::value& value, const LineErrors& errors, double* out) {
  double v = 0;
  if (value.get_double().get(v) != simdjson::SUCCESS || !std::isfinite(v) || v < 0) {
    od::json_type type{};
    if (auto code = value.type().get(type)) return errors.bad_json(code);
    if (type != od::json_type::number) {
      return errors.error(absl::StrCat("\"timestamp\" must be a number of milliseconds, got ", json_type_name(type)));
    }
    std::string_view raw;
    raw = value.raw_json_token();
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\r')) raw.remove_suffix(1);
    return errors.error(absl::StrCat("\"timestamp\" must be a finite number >= 0, got ", std::string(raw)));
  }
  *out = v;
  return absl::OkStatus();
}

// Reads an array of integers in [0, max], calling push(v) for each.
template <typename Push>
absl::Status read_uint_array(od::value& value, const LineErrors& errors, const std::string& name, std::uint64_t max,
                             Push push) {
  od::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) {
    od::json_type type{};
    if (auto code = value.type().get(type)) return errors.bad_json(code);
    return errors.error(absl::StrCat("\"", name, "\" must be an array of integers, got ", json_type_name(type)));
  }
  std::size_t index = 0;
  for (auto element_result : array) {
    od::value element;
    if (auto code = std::move(element_result).get(element)) return errors.bad_json(code);
    std::uint64_t v = 0;
    if (element.get_uint64().get(v) != simdjson::SUCCESS || v > max) {
      return errors.bad_integer(element, absl::StrCat(name, "[", index, "]"), max);
    }
    push(v);
    ++index;
  }
  return absl::OkStatus();
}

class JsonlTraceReader final : public TraceReader {
 public:
  JsonlTraceReader(std::string path, TraceOptions options) : path_(std::move(path)), options_(options) {}

  absl::Status open() {
    buffer_ = std::make_unique<char[]>(kReadBufferBytes);
    file_.rdbuf()->pubsetbuf(buffer_.get(), kReadBufferBytes);
    file_.open(path_, std::ios::in | std::ios::binary);
    if (!file_.is_open()) {
      return absl::NotFoundError(absl::StrCat(path_, ": cannot open trace: ", std::string(std::strerror(errno))));
    }
    return absl::OkStatus();
  }
  // Reads `text` instead of a file (open_trace_text); path_ names it in errors.
  void open_text(std::string text) {
    text_.str(std::move(text));
    in_ = &text_;
  }

  absl::StatusOr<std::optional<TraceRequest>> next() override {
    while (std::getline(*in_, line_)) {
      ++line_number_;
      if (is_blank(line_)) continue;
      TraceRequest request;
      if (absl::Status status = parse_line(&request); !status.ok()) return status;
      return std::optional<TraceRequest>(std::move(request));
    }
    if (in_->bad()) return absl::DataLossError(absl::StrCat(path_, ":", line_number_ + 1, ": read error"));
    return std::optional<TraceRequest>();
  }

  absl::Status rewind() override {
    in_->clear();
    in_->seekg(0);
    if (!*in_) return absl::DataLossError(absl::StrCat(path_, ": cannot seek to the start of the trace"));
    line_number_ = 0;
    return absl::OkStatus();
  }

 private:
  absl::Status parse_line(TraceRequest* request) {
    const LineErrors errors(path_, line_number_);
    line_.reserve(line_.size() + simdjson::SIMDJSON_PADDING);
    od::document doc;
    if (auto code = parser_.iterate(line_.data(), line_.size(), line_.capacity()).get(doc)) {
      return errors.bad_json(code);
    }
    od::object object;
    if (auto code = doc.get_object().get(object)) {
      if (code == simdjson::INCORRECT_TYPE) return errors.error("expected a JSON object");
      return errors.bad_json(code);
    }
    const bool mooncake = options_.format == TraceFormat::kMooncake;
    bool has_timestamp = false;
    bool has_input_length = false;
    bool has_hash_ids = false;
    bool has_tokens = false;
    for (auto field_result : object) {
      od::field field;
      if (auto code = std::move(field_result).get(field)) return errors.bad_json(code);
      std::string_view key;
      if (auto code = field.unescaped_key().get(key)) return errors.bad_json(code);
      od::value value = field.value();
      absl::Status status;
      if (key == "timestamp") {
        has_timestamp = true;
        status = read_timestamp(value, errors, &request->timestamp_ms);
      } else if (key == "output_length") {
        status = read_uint(value, errors, "output_length", std::numeric_limits<std::uint64_t>::max(),
                           &request->output_tokens);
      } else if (mooncake && key == "input_length") {
        has_input_length = true;
        status =
            read_uint(value, errors, "input_length", std::numeric_limits<std::uint64_t>::max(), &request->input_tokens);
      } else if (mooncake && key == "hash_ids") {
        has_hash_ids = true;
        // Read into a reused buffer, then copy once: one allocation per request rather than one per growth.
        scratch_ids_.clear();
        status = read_uint_array(value, errors, "hash_ids", std::numeric_limits<std::uint64_t>::max(),
                                 [&](std::uint64_t id) { scratch_ids_.emplace_back(id); });
        request->blocks.assign(scratch_ids_.begin(), scratch_ids_.end());
      } else if (!mooncake && key == "tokens") {
        has_tokens = true;
        scratch_tokens_.clear();
        status =
            read_uint_array(value, errors, "tokens", std::numeric_limits<std::uint32_t>::max(),
                            [&](std::uint64_t token) { scratch_tokens_.push_back(static_cast<std::uint32_t>(token)); });
        request->tokens.assign(scratch_tokens_.begin(), scratch_tokens_.end());
      } else if (!mooncake && key == "salt") {
        status = read_salt(value, errors, &request->salt);
      } else if (key == "tokens") {
        has_tokens = true;
      } else if (key == "hash_ids") {
        has_hash_ids = true;
      }
      if (!status.ok()) return status;
    }
    if (const char* rest = nullptr; doc.current_location().get(rest) == simdjson::SUCCESS) {
      return errors.error("unexpected content after the JSON object");
    }
    if (!has_timestamp) return errors.error("missing key \"timestamp\"");
    if (mooncake) {
      if (!has_hash_ids) {
        return errors.error(has_tokens ? "missing key \"hash_ids\" (the line has \"tokens\": a token-level trace?)"
                                       : "missing key \"hash_ids\"");
      }
      if (!has_input_length) return errors.error("missing key \"input_length\"");
      return absl::OkStatus();
    }
    if (!has_tokens) {
      return errors.error(has_hash_ids ? "missing key \"tokens\" (the line has \"hash_ids\": a Mooncake trace?)"
                                       : "missing key \"tokens\"");
    }
    request->input_tokens = request->tokens.size();
    const std::size_t num_blocks = request->tokens.size() / options_.block_tokens;
    request->blocks.resize(num_blocks);
    block_hashes_.resize(num_blocks);
    hash_blocks(request->tokens, options_.block_tokens, compute_salt_hash(request->salt), std::nullopt,
                block_hashes_.data(), request->blocks.data());
    return absl::OkStatus();
  }

  static absl::Status read_salt(od::value& value, const LineErrors& errors, std::string* out) {
    // is_null() is a simdjson_result<bool>: read its error code (a malformed token such as `nul:` would
    // otherwise throw through the bool conversion; found by token_trace_fuzz).
    bool is_null = false;
    if (auto code = value.is_null().get(is_null)) return errors.bad_json(code);
    if (is_null) {
      out->clear();
      return absl::OkStatus();
    }
    std::string_view salt;
    if (value.get_string().get(salt) != simdjson::SUCCESS) {
      od::json_type type{};
      if (auto code = value.type().get(type)) return errors.bad_json(code);
      return errors.error(absl::StrCat("\"salt\" must be a string, got ", json_type_name(type)));
    }
    out->assign(salt);
    return absl::OkStatus();
  }

  std::string path_;
  TraceOptions options_;
  std::unique_ptr<char[]> buffer_;  // the ifstream's read buffer; outlives file_ (declared before it)
  std::ifstream file_;
  std::istringstream text_;
  std::istream* in_ = &file_;
  std::string line_;  // reused; its capacity also holds simdjson's padding
  std::uint64_t line_number_ = 0;
  od::parser parser_;
  std::vector<BlockHash> block_hashes_;  // scratch for hash_blocks
  std::vector<SequenceHash> scratch_ids_;
  std::vector<std::uint32_t> scratch_tokens_;
};

class VectorTraceReader final : public TraceReader {
 public:
  explicit VectorTraceReader(std::vector<TraceRequest> requests) : requests_(std::move(requests)) {}

  absl::StatusOr<std::optional<TraceRequest>> next() override {
    if (position_ == requests_.size()) return std::optional<TraceRequest>();
    return std::optional<TraceRequest>(requests_[position_++]);
  }
  absl::Status rewind() override {
    position_ = 0;
    return absl::OkStatus();
  }

 private:
  std::vector<TraceRequest> requests_;
  std::size_t position_ = 0;
};

template <typename T>
void append_number(std::string* out, T value) {
  char digits[64];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  (void)ec;  // 64 characters hold any u64 or shortest-form double
  out->append(digits, end);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TraceReader>> open_trace(const std::string& path, TraceOptions options) {
  if (options.block_tokens == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": block_tokens must be > 0, got 0"));
  }
  auto reader = std::make_unique<JsonlTraceReader>(path, options);
  if (absl::Status status = reader->open(); !status.ok()) return status;
  return std::unique_ptr<TraceReader>(std::move(reader));
}

absl::StatusOr<std::unique_ptr<TraceReader>> open_trace_text(std::string text, TraceOptions options,
                                                             const std::string& name) {
  if (options.block_tokens == 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": block_tokens must be > 0, got 0"));
  }
  auto reader = std::make_unique<JsonlTraceReader>(name, options);
  reader->open_text(std::move(text));
  return std::unique_ptr<TraceReader>(std::move(reader));
}

absl::StatusOr<TraceFormat> detect_trace_format(const std::string& path) {
  std::ifstream in(path, std::ios::in | std::ios::binary);
  if (!in.is_open()) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open trace: ", std::string(std::strerror(errno))));
  }
  std::string line;
  std::uint64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (is_blank(line)) continue;
    const LineErrors errors(path, line_number);
    od::parser parser;
    const simdjson::padded_string padded(line);
    od::document doc;
    if (auto code = parser.iterate(padded).get(doc)) return errors.bad_json(code);
    od::object object;
    if (doc.get_object().get(object) != simdjson::SUCCESS) return errors.error("expected a JSON object");
    for (auto field_result : object) {
      od::field field;
      if (auto code = std::move(field_result).get(field)) return errors.bad_json(code);
      std::string_view key;
      if (auto code = field.unescaped_key().get(key)) return errors.bad_json(code);
      if (key == "hash_ids") return TraceFormat::kMooncake;
      if (key == "tokens") return TraceFormat::kTokens;
    }
    return errors.error("cannot tell the trace format: no \"hash_ids\" (Mooncake) or \"tokens\" (token-level) key");
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": empty trace, cannot tell its format"));
}

absl::StatusOr<std::vector<TraceRequest>> read_requests(TraceReader& reader) {
  std::vector<TraceRequest> out;
  while (true) {
    auto next = reader.next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) return out;
    out.push_back(**std::move(next));
  }
}

std::unique_ptr<TraceReader> make_vector_trace(std::vector<TraceRequest> requests) {
  return std::make_unique<VectorTraceReader>(std::move(requests));
}

absl::Status write_trace(TraceReader& reader, const std::string& path, TraceFormat format) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot create trace"));
  }
  std::string out;
  out.reserve(2 * kReadBufferBytes);
  const auto flush = [&]() -> absl::Status {
    if (!out.empty() && std::fwrite(out.data(), 1, out.size(), file.get()) != out.size()) {
      return absl::ErrnoToStatus(errno, absl::StrCat(path, ": write failed"));
    }
    out.clear();
    return absl::OkStatus();
  };
  for (std::uint64_t index = 0;; ++index) {
    absl::StatusOr<std::optional<TraceRequest>> next = reader.next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    const TraceRequest& request = **next;
    out.append("{\"timestamp\": ");
    append_number(&out, request.timestamp_ms);
    if (format == TraceFormat::kMooncake) {
      out.append(", \"input_length\": ");
      append_number(&out, request.input_tokens);
      out.append(", \"output_length\": ");
      append_number(&out, request.output_tokens);
      out.append(", \"hash_ids\": [");
      for (std::size_t i = 0; i < request.blocks.size(); ++i) {
        if (i > 0) out.append(", ");
        append_number(&out, request.blocks[i].value());
      }
      out.append("]}\n");
    } else {
      if (request.tokens.empty() && !request.blocks.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(path, ": request ", index,
                                                          " has blocks but no tokens; a hash-level trace cannot be "
                                                          "written in the tokens format (use mooncake)"));
      }
      out.append(", \"output_length\": ");
      append_number(&out, request.output_tokens);
      if (!request.salt.empty()) {
        out.append(", \"salt\": ");
        append_json_string(&out, request.salt);
      }
      out.append(", \"tokens\": [");
      for (std::size_t i = 0; i < request.tokens.size(); ++i) {
        if (i > 0) out.push_back(',');
        append_number(&out, request.tokens[i]);
      }
      out.append("]}\n");
    }
    if (out.size() >= kReadBufferBytes) {
      if (absl::Status status = flush(); !status.ok()) return status;
    }
  }
  if (absl::Status status = flush(); !status.ok()) return status;
  if (std::fclose(file.release()) != 0) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": close failed"));
  return absl::OkStatus();
}

}  // namespace kvbm
