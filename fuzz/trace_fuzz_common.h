// Shared body of the two trace-parser fuzz targets: the input is a JSONL trace (after one option byte
// for token traces). Invariants: no crash, hang or sanitizer report; every error is InvalidArgument
// naming the trace and a line ("<fuzz>:N: ..."); reading stops at the first error; rewind() reads the
// same requests and the same error again; token requests hold tokens.size() / block_tokens blocks. The same
// bytes through a pipe (the path of `--trace -`, FIFOs and `<(...)`: read once, spooled for rewind) give
// the same requests and the same error, and format detection on a pipe never fails otherwise than with
// InvalidArgument.
#pragma once

#include <unistd.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fuzz_check.h"
#include "kvbm/replay/trace.h"

namespace kvbm::fuzz {

struct TraceRun {
  std::vector<TraceRequest> requests;
  absl::Status error;
};

inline TraceRun read_all(TraceReader& reader) {
  TraceRun run;
  // A line yields at most one request; the input's size bounds the loop.
  for (;;) {
    auto next = reader.next();
    if (!next.ok()) {
      run.error = next.status();
      return run;
    }
    if (!next->has_value()) return run;
    run.requests.push_back(std::move(**next));
  }
}

// `text` written into a pipe by a thread, read through its /dev/fd path.
class PipedText {
 public:
  explicit PipedText(const std::string& text) {
    std::signal(SIGPIPE, SIG_IGN);  // the reader may stop at an error before the writer is done
    KVBM_FUZZ_CHECK(::pipe(fds_) == 0, "pipe failed");
    writer_ = std::thread([this, text] {
      for (std::size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(fds_[1], text.data() + done, text.size() - done);
        if (n <= 0) break;  // the reader stopped at an error and closed its end
        done += static_cast<std::size_t>(n);
      }
      ::close(fds_[1]);
    });
  }
  ~PipedText() {
    ::close(fds_[0]);
    writer_.join();
  }
  [[nodiscard]] std::string path() const { return "/dev/fd/" + std::to_string(fds_[0]); }

 private:
  int fds_[2] = {-1, -1};
  std::thread writer_;
};

// The message without its "<name>:" prefix.
inline std::string_view after_name(const absl::Status& status, std::string_view name) {
  std::string_view message(status.message().data(), status.message().size());
  if (message.starts_with(name)) message.remove_prefix(name.size());
  return message;
}

inline void fuzz_piped(const std::string& text, TraceOptions options, const TraceRun& expected) {
  {
    PipedText piped(text);
    auto reader = open_trace(piped.path(), options);
    KVBM_FUZZ_CHECK(reader.ok(), "open_trace on a pipe: %s", std::string(reader.status().message()).c_str());
    for (int pass = 0; pass < 2; ++pass) {
      const TraceRun run = read_all(**reader);
      KVBM_FUZZ_CHECK(run.requests == expected.requests, "pass %d through a pipe read %zu requests, text %zu", pass,
                      run.requests.size(), expected.requests.size());
      KVBM_FUZZ_CHECK(run.error.code() == expected.error.code() &&
                          after_name(run.error, piped.path()) == after_name(expected.error, "<fuzz>"),
                      "a pipe gave another error: %s", std::string(run.error.message()).c_str());
      KVBM_FUZZ_CHECK((*reader)->rewind().ok(), "rewind of a pipe failed");
    }
  }
  PipedText piped(text);
  auto detected = open_trace_detect(piped.path());
  if (!detected.ok()) {
    KVBM_FUZZ_CHECK(detected.status().code() == absl::StatusCode::kInvalidArgument, "detect on a pipe: %s",
                    std::string(detected.status().message()).c_str());
    return;
  }
  const TraceRun run = read_all(*detected->reader);
  KVBM_FUZZ_CHECK(run.error.ok() || run.error.code() == absl::StatusCode::kInvalidArgument, "detected read: %s",
                  std::string(run.error.message()).c_str());
}

inline void fuzz_trace(std::string text, TraceOptions options) {
  const std::string original = text;
  auto reader = open_trace_text(std::move(text), options, "<fuzz>");
  KVBM_FUZZ_CHECK(reader.ok(), "open_trace_text: %s", std::string(reader.status().message()).c_str());
  const TraceRun first = read_all(**reader);
  if (!first.error.ok()) {
    KVBM_FUZZ_CHECK(first.error.code() == absl::StatusCode::kInvalidArgument, "error code %d: %s",
                    static_cast<int>(first.error.code()), std::string(first.error.message()).c_str());
    KVBM_FUZZ_CHECK(first.error.message().rfind("<fuzz>:", 0) == 0, "error does not name the trace: %s",
                    std::string(first.error.message()).c_str());
  }
  for (const TraceRequest& r : first.requests) {
    if (options.format == TraceFormat::kTokens) {
      KVBM_FUZZ_CHECK(r.blocks.size() == r.tokens.size() / options.block_tokens, "%zu blocks for %zu tokens",
                      r.blocks.size(), r.tokens.size());
      KVBM_FUZZ_CHECK(r.input_tokens == r.tokens.size(), "input_tokens");
    } else {
      KVBM_FUZZ_CHECK(r.tokens.empty() && r.salt.empty(), "a Mooncake request with tokens");
    }
  }
  KVBM_FUZZ_CHECK((*reader)->rewind().ok(), "rewind failed");
  const TraceRun second = read_all(**reader);
  KVBM_FUZZ_CHECK(second.requests == first.requests, "rewind read %zu requests, first pass %zu", second.requests.size(),
                  first.requests.size());
  KVBM_FUZZ_CHECK(second.error == first.error, "rewind gave another error");
  fuzz_piped(original, options, first);
}

}  // namespace kvbm::fuzz
