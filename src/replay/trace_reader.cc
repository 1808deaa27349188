// JSONL trace readers and writer (kvbm/replay/trace.h).
//
// A trace is read once, one line at a time, into a reused buffer (LineInput), and each line is parsed with
// simdjson's on-demand parser, so memory stays bounded by the longest line (at most kMaxTraceLineBytes)
// whatever the trace's size. A pipe, FIFO or stdin is copied to an unlinked spool file as it is read, so
// rewind() reads the same bytes again; the format is detected from the first line of the same stream.
// Values are read with simdjson error codes (no exceptions); every failure becomes InvalidArgument
// "<path>:<line>: <what>", naming the key that was wrong.
#include <absl/status/status.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>

#include <simdjson.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvbm/core/hashing.h"
#include "kvbm/core/json_escape.h"
#include "kvbm/replay/generator.h"
#include "kvbm/replay/trace.h"

namespace kvbm {
namespace {

namespace od = simdjson::ondemand;

constexpr std::size_t kReadBufferBytes = 1 << 20;

bool is_blank(std::string_view line) { return line.find_first_not_of(" \t\r\n") == std::string_view::npos; }

std::string errno_text(int err) { return std::string(std::strerror(err)); }

// The bytes of one trace, line by line, read once: a regular file; a pipe, FIFO or stdin ("-"), whose bytes
// are copied to an unlinked spool file as they are read so that rewind() can read them again; or text held
// in memory. A line longer than kMaxTraceLineBytes is an error, so a stream without newlines cannot grow
// memory without bound. Not thread-safe (one reader).
class LineInput {
 public:
  LineInput() = default;
  LineInput(const LineInput&) = delete;
  LineInput& operator=(const LineInput&) = delete;
  ~LineInput() {
    if (close_fd_ && fd_ >= 0) ::close(fd_);
    if (spool_fd_ >= 0) ::close(spool_fd_);
  }

  // NotFound when `path` cannot be opened, InvalidArgument for a directory, Internal when a pipe's spool
  // file cannot be made. Messages start with `path`.
  absl::Status open(const std::string& path) {
    if (path == "-") {
      fd_ = STDIN_FILENO;
    } else {
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open trace: ", errno_text(errno)));
      close_fd_ = true;
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      return absl::NotFoundError(absl::StrCat(path, ": cannot open trace: ", errno_text(errno)));
    }
    if (S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": is a directory; --trace takes a JSONL file, '-' for stdin"));
    }
    buffer_ = std::make_unique<char[]>(kReadBufferBytes);
    data_ = buffer_.get();
    if (S_ISREG(st.st_mode)) return absl::OkStatus();
    // Not seekable: keep what is read so rewind() can read it again.
    const char* tmpdir = std::getenv("TMPDIR");
    std::string name = absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp", "/kvbm-trace-XXXXXX");
    spool_fd_ = ::mkostemp(name.data(), O_CLOEXEC);
    if (spool_fd_ < 0) {
      return absl::InternalError(absl::StrCat(path, ": cannot create a spool file (", name, ") for a piped trace: ",
                                              errno_text(errno), "; set TMPDIR to a writable directory"));
    }
    ::unlink(name.c_str());
    return absl::OkStatus();
  }

  void open_text(std::string text) {
    text_ = std::move(text);
    data_ = text_.data();
    end_ = text_.size();
    eof_ = true;
  }

  // The next line, without its '\n', into *line; false at the end of the input. InvalidArgument for a line
  // longer than kMaxTraceLineBytes, DataLoss for a read error (messages without a file:line prefix).
  absl::StatusOr<bool> next_line(std::string* line) {
    line->clear();
    bool any = false;
    while (true) {
      if (begin_ == end_) {
        if (eof_) return any;
        if (absl::Status s = fill(); !s.ok()) return s;
        continue;
      }
      const char* start = data_ + begin_;
      const std::size_t available = end_ - begin_;
      const char* newline = static_cast<const char*>(std::memchr(start, '\n', available));
      const std::size_t take = newline != nullptr ? static_cast<std::size_t>(newline - start) : available;
      if (line->size() + take > kMaxTraceLineBytes) {
        return absl::InvalidArgumentError(absl::StrCat("line longer than the limit of ", kMaxTraceLineBytes,
                                                       " bytes (64 MiB; kMaxTraceLineBytes): one JSON object per "
                                                       "line, lines ended by '\\n'"));
      }
      line->append(start, take);
      any = true;
      begin_ += take;
      if (newline != nullptr) {
        ++begin_;
        return true;
      }
    }
  }

  absl::Status rewind() {
    if (!text_.empty() || fd_ < 0) {
      begin_ = 0;
      return absl::OkStatus();
    }
    if (spool_fd_ >= 0) {
      // Read the rest of the stream (its lines still bounded) into the spool, then read the spool instead.
      std::string rest;
      while (true) {
        absl::StatusOr<bool> more = next_line(&rest);
        if (!more.ok()) return more.status();
        if (!*more) break;
      }
      if (close_fd_) ::close(fd_);
      fd_ = spool_fd_;
      close_fd_ = true;
      spool_fd_ = -1;
    }
    if (::lseek(fd_, 0, SEEK_SET) != 0) {
      return absl::DataLossError(absl::StrCat("cannot seek to the start of the trace: ", errno_text(errno)));
    }
    begin_ = end_ = 0;
    eof_ = false;
    return absl::OkStatus();
  }

 private:
  absl::Status fill() {
    ssize_t n = 0;
    do {
      n = ::read(fd_, buffer_.get(), kReadBufferBytes);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return absl::DataLossError(absl::StrCat("read error: ", errno_text(errno)));
    begin_ = 0;
    end_ = static_cast<std::size_t>(n);
    if (n == 0) eof_ = true;
    for (std::size_t written = 0; spool_fd_ >= 0 && written < end_;) {
      const ssize_t w = ::write(spool_fd_, buffer_.get() + written, end_ - written);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        return absl::DataLossError(absl::StrCat("cannot write the spool file of a piped trace: ", errno_text(errno)));
      }
      written += static_cast<std::size_t>(w);
    }
    return absl::OkStatus();
  }

  int fd_ = -1;
  bool close_fd_ = false;
  int spool_fd_ = -1;  // a pipe's copy, read after rewind(); -1 for files and text
  std::string text_;
  std::unique_ptr<char[]> buffer_;
  const char* data_ = nullptr;  // buffer_ or text_
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool eof_ = false;
};

// simdjson reports "{...}xyz" as a document that ended early; the line's last '}' with more after it says
// what is wrong.
bool has_content_after_object(std::string_view line) {
  const std::size_t close = line.rfind('}');
  return line.starts_with('{') && close != std::string_view::npos &&
         line.find_first_not_of(" \t\r", close + 1) != std::string_view::npos;
}

// A UTF-8 byte order mark, which some editors write at the start of a file; JSON allows a reader to skip it.
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

// A '\r' with more than whitespace after it: the line ends are CR only (old Mac), so "one line" holds many.
bool has_inner_cr(std::string_view line) {
  const std::size_t cr = line.find('\r');
  return cr != std::string_view::npos && line.find_first_not_of(" \t\r", cr) != std::string_view::npos;
}

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

  absl::Status open() { return input_.open(path_); }
  // Reads `text` instead of a file (open_trace_text); path_ names it in errors.
  void open_text(std::string text) { input_.open_text(std::move(text)); }

  // Reads the first non-blank line and sets the format from its keys; next() then parses that same line,
  // so the stream is read once. InvalidArgument (path:line) when the line says neither format.
  absl::Status detect_format() {
    absl::StatusOr<bool> found = next_nonblank_line();
    if (!found.ok()) return found.status();
    if (!*found) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": empty trace (no non-blank line), cannot tell its format"));
    }
    const LineErrors errors(path_, line_number_);
    line_.reserve(line_.size() + simdjson::SIMDJSON_PADDING);
    std::optional<TraceFormat> format;
    bool valid = true;
    od::document doc;
    od::object object;
    if (parser_.iterate(line_.data(), line_.size(), line_.capacity()).get(doc) != simdjson::SUCCESS ||
        doc.get_object().get(object) != simdjson::SUCCESS) {
      valid = false;
    } else {
      for (auto field_result : object) {
        od::field field;
        std::string_view key;
        if (std::move(field_result).get(field) != simdjson::SUCCESS ||
            field.unescaped_key().get(key) != simdjson::SUCCESS) {
          valid = false;
          break;
        }
        if (key == "hash_ids") format = TraceFormat::kMooncake;
        if (key == "tokens") format = TraceFormat::kTokens;
        if (format) break;
      }
    }
    if (!format) {
      // The line's own error (what a Mooncake reader finds wrong with it) says more than "no format".
      if (!valid) {
        TraceRequest unused;
        if (absl::Status status = parse_line_diagnosed(&unused); !status.ok()) return status;
      }
      return errors.error("cannot tell the trace format: no \"hash_ids\" (Mooncake) or \"tokens\" (token-level) key");
    }
    options_.format = *format;
    pending_ = true;
    return absl::OkStatus();
  }
  [[nodiscard]] const TraceOptions& options() const { return options_; }
  void set_block_tokens(std::uint32_t block_tokens) { options_.block_tokens = block_tokens; }

  absl::StatusOr<std::optional<TraceRequest>> next() override {
    if (!pending_) {
      absl::StatusOr<bool> found = next_nonblank_line();
      if (!found.ok()) return found.status();
      if (!*found) return std::optional<TraceRequest>();
    }
    pending_ = false;
    TraceRequest request;
    if (absl::Status status = parse_line_diagnosed(&request); !status.ok()) return status;
    return std::optional<TraceRequest>(std::move(request));
  }

  absl::Status rewind() override {
    if (absl::Status s = input_.rewind(); !s.ok())
      return absl::Status(s.code(), absl::StrCat(path_, ": ", s.message()));
    line_number_ = 0;
    pending_ = false;
    return absl::OkStatus();
  }

 private:
  // parse_line, with what a JSON parser cannot tell: CR-only line ends, content after the object.
  absl::Status parse_line_diagnosed(TraceRequest* request) {
    absl::Status status = parse_line(request);
    if (status.ok()) return status;
    const LineErrors errors(path_, line_number_);
    if (has_inner_cr(line_)) {
      return errors.error(
          "the line ends are CR only ('\\r'); kvbm reads LF or CRLF line ends (convert with dos2unix -c mac)");
    }
    if (absl::StrContains(status.message(), "invalid JSON") && has_content_after_object(line_)) {
      return errors.error("unexpected content after the JSON object (a line holds one object and ends with '}')");
    }
    return status;
  }

  // The next non-blank line into line_ (a UTF-8 byte order mark on line 1 dropped); false at the end.
  absl::StatusOr<bool> next_nonblank_line() {
    while (true) {
      absl::StatusOr<bool> more = input_.next_line(&line_);
      if (!more.ok()) {
        return absl::Status(more.status().code(),
                            absl::StrCat(path_, ":", line_number_ + 1, ": ", more.status().message()));
      }
      if (!*more) return false;
      ++line_number_;
      if (line_number_ == 1 && line_.starts_with(kUtf8Bom)) line_.erase(0, kUtf8Bom.size());
      if (line_number_ == 1 && (line_.starts_with("\xFF\xFE") || line_.starts_with("\xFE\xFF"))) {
        return LineErrors(path_, 1).error(
            "the trace is UTF-16 (it starts with a UTF-16 byte order mark); kvbm reads UTF-8 JSONL");
      }
      if (!is_blank(line_)) return true;
    }
  }

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
    bool has_output_length = false;
    bool has_salt = false;
    // A key given twice would otherwise keep its last value silently.
    const auto first_time = [&errors](bool* seen, std::string_view key) {
      if (*seen) return errors.error(absl::StrCat("duplicate key \"", std::string(key), "\""));
      *seen = true;
      return absl::OkStatus();
    };
    for (auto field_result : object) {
      od::field field;
      if (auto code = std::move(field_result).get(field)) return errors.bad_json(code);
      std::string_view key;
      if (auto code = field.unescaped_key().get(key)) return errors.bad_json(code);
      od::value value = field.value();
      absl::Status status;
      if (key == "timestamp") {
        status = first_time(&has_timestamp, key);
        if (status.ok()) status = read_timestamp(value, errors, &request->timestamp_ms);
      } else if (key == "output_length") {
        status = first_time(&has_output_length, key);
        if (status.ok()) status = read_uint(value, errors, "output_length", kMaxTraceTokens, &request->output_tokens);
      } else if (key == "hash_ids") {
        status = first_time(&has_hash_ids, key);
        if (status.ok() && mooncake) {
          // Read into a reused buffer, then copy once: one allocation per request rather than one per growth.
          scratch_ids_.clear();
          status = read_uint_array(value, errors, "hash_ids", std::numeric_limits<std::uint64_t>::max(),
                                   [&](std::uint64_t id) { scratch_ids_.emplace_back(id); });
          request->blocks.assign(scratch_ids_.begin(), scratch_ids_.end());
        }
      } else if (key == "tokens") {
        status = first_time(&has_tokens, key);
        if (status.ok() && !mooncake) {
          scratch_tokens_.clear();
          status = read_uint_array(
              value, errors, "tokens", std::numeric_limits<std::uint32_t>::max(),
              [&](std::uint64_t token) { scratch_tokens_.push_back(static_cast<std::uint32_t>(token)); });
          request->tokens.assign(scratch_tokens_.begin(), scratch_tokens_.end());
        }
      } else if (mooncake && key == "input_length") {
        status = first_time(&has_input_length, key);
        if (status.ok()) status = read_uint(value, errors, "input_length", kMaxTraceTokens, &request->input_tokens);
      } else if (!mooncake && key == "salt") {
        status = first_time(&has_salt, key);
        if (status.ok()) status = read_salt(value, errors, &request->salt);
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
  LineInput input_;
  bool pending_ = false;  // line_ was read by detect_format() and is next()'s next request
  std::string line_;      // reused; its capacity also holds simdjson's padding
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

absl::StatusOr<OpenedTrace> open_trace_detect(const std::string& path, std::optional<std::uint32_t> block_tokens) {
  if (block_tokens && *block_tokens == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": block_tokens must be > 0, got 0"));
  }
  auto reader = std::make_unique<JsonlTraceReader>(path, TraceOptions{});
  if (absl::Status status = reader->open(); !status.ok()) return status;
  if (absl::Status status = reader->detect_format(); !status.ok()) return status;
  reader->set_block_tokens(block_tokens.value_or(
      reader->options().format == TraceFormat::kTokens ? kDefaultTokenBlockTokens : kDefaultHashBlockTokens));
  OpenedTrace opened{.reader = nullptr, .options = reader->options()};
  opened.reader = std::move(reader);
  return opened;
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
