// Shared pieces of the `kvbm` Python module (issue 6/8): error mapping, argument conversion, and the
// Python-side owners of kvbm handles.
//
// Lifetime: every Python object that holds a kvbm handle (MutableBlock, ImmutableBlock, MatchResult,
// OnboardOperation, WeakBlock, and the NumPy/DLPack views of block memory) also holds a shared_ptr to
// the ManagerState, so the C++ manager — and the memory the views point into — outlives them all,
// whatever order Python drops them in.
//
// GIL: calls that can block (allocation with write-back, registration, onboarding waits, flush, reset,
// replay) release it; kvbm's own threads take it only to deliver events to the Python callback.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kvbm/events/event_manager.h"
#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/replay/trace.h"

namespace kvbm::python {

namespace py = pybind11;

// Raises the Python exception for a non-OK status, with kvbm's message:
//   InvalidArgument, OutOfRange, AlreadyExists  → ValueError
//   ResourceExhausted                           → MemoryError
//   NotFound                                    → KeyError
//   DataLoss, Unavailable, PermissionDenied     → OSError (IOError): the bytes or the device failed
//   FailedPrecondition, Internal, Unknown, rest → RuntimeError
[[noreturn]] void throw_status(const absl::Status& status);
inline void check(const absl::Status& status) {
  if (!status.ok()) throw_status(status);
}
template <typename T>
T value_or_throw(absl::StatusOr<T>&& result) {
  if (!result.ok()) throw_status(result.status());
  return *std::move(result);
}

// Token ids and hashes arrive as any sequence of ints or a NumPy array (converted, not copied, when it
// already is a C-contiguous array of that type).
using TokenArray = py::array_t<std::uint32_t, py::array::c_style | py::array::forcecast>;
using HashArray = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>;
inline std::span<const std::uint32_t> token_span(const TokenArray& tokens) {
  return {tokens.data(), static_cast<std::size_t>(tokens.size())};
}
// FileNotFoundError naming `what` and the path when `path` does not exist (the C++ side says NotFound,
// which would surface as KeyError).
void require_file(const std::string& path, const char* what);
// Token ids as u32, checked: an id outside [0, 2^32 - 1] raises ValueError (a cast would wrap it onto
// another id, and 2^32 would hash as 0); anything but integers raises TypeError. `what` names the argument.
TokenArray to_tokens(const py::handle& tokens, const char* what = "tokens");
std::vector<SequenceHash> to_hashes(const HashArray& hashes);

// Readable argument errors for the entry points engines call. pybind11's own TypeError for a wrong argument
// type ("incompatible function arguments" and every overload with C++ type names) names neither the argument
// nor what it should be; these take the argument as a py::object and raise
// TypeError "<fn>(): <arg> must be <expected>, got <Python type>" (ValueError for a negative count).
[[noreturn]] void throw_arg_type(const char* fn, const std::string& arg, const std::string& expected,
                                 const py::handle& got);
// An int >= 0 (not a bool).
std::uint64_t arg_count(const py::handle& value, const char* fn, const char* arg);
std::optional<std::uint64_t> arg_optional_count(const py::handle& value, const char* fn, const char* arg);
std::string arg_str(const py::handle& value, const char* fn, const char* arg);
bool arg_bool(const py::handle& value, const char* fn, const char* arg);
// Sequence hashes: a list or tuple of ints, or an integer array (not str, bytes, a dict or a set).
HashArray arg_hashes(const py::handle& value, const char* fn, const char* arg = "hashes");
// Whether `value` is an iterable of items: not a str, bytes, dict or set (which iterate, but are not what a
// list argument means).
bool is_item_iterable(const py::handle& value);
// A list (any iterable of items) of `T`, a bound class whose Python name is `type_name`; None items are
// nullptr when `allow_none`.
template <typename T>
std::vector<T*> arg_list_of(const py::handle& value, const char* fn, const char* arg, const char* type_name,
                            bool allow_none = false) {
  if (!is_item_iterable(value)) throw_arg_type(fn, arg, std::string("a list of kvbm.") + type_name, value);
  std::vector<T*> out;
  std::size_t i = 0;
  for (const py::handle item : py::iter(value)) {
    if (item.is_none() && allow_none) {
      out.push_back(nullptr);
    } else if (py::isinstance<T>(item)) {
      out.push_back(item.cast<T*>());
    } else {
      throw_arg_type(fn, std::string(arg) + "[" + std::to_string(i) + "]", std::string("a kvbm.") + type_name, item);
    }
    ++i;
  }
  return out;
}
// A `T` (a bound class named `type_name`).
template <typename T>
T& arg_of(const py::handle& value, const char* fn, const char* arg, const char* type_name) {
  if (!py::isinstance<T>(value)) throw_arg_type(fn, arg, std::string("a kvbm.") + type_name, value);
  return *value.cast<T*>();
}

// A salt given as None (no salt), an int (a salt hash) or str/bytes (hashed with compute_salt_hash).
SaltHash to_salt_hash(const py::object& salt);
// "g1" | "g2" | "g3" | "g4" (case-insensitive) → CacheLevel; ValueError otherwise.
CacheLevel to_level(const std::string& name);
py::dict status_dict(const PoolStatus& status);

// Set once the interpreter starts shutting down (atexit): kvbm's threads then stop calling into Python.
extern std::atomic<bool> g_finalizing;

// One manager and what it needs. Destroyed when the last Python object referring to it goes.
struct ManagerState {
  py::object on_event;                   // the callback (None when there is none); destroyed with the GIL
  std::unique_ptr<EventManager> events;  // when on_event is set; destroyed after the manager
  std::unique_ptr<KvBlockManager> kvbm;  // declared last: destroyed first
  ManagerState() = default;
  ManagerState(const ManagerState&) = delete;
  ManagerState& operator=(const ManagerState&) = delete;
  // Joins kvbm's threads with the GIL released (the event thread may be waiting for it).
  ~ManagerState();
};
using StatePtr = std::shared_ptr<ManagerState>;

// Python owners of handles. A handle of one of these is valid until released, registered or consumed.
struct PyMutableBlock {
  StatePtr state;
  G1MutableBlock block;
};
struct PyImmutableBlock {
  StatePtr state;
  G1Block block;
};
struct PyWeakBlock {
  StatePtr state;
  WeakBlock<CacheLevel::kG1> weak;
};
// A complete block of a TokenBlockSequence, owning its tokens (the C++ TokenBlock only points into the
// sequence).
struct PyTokenBlock {
  std::vector<std::uint32_t> tokens;
  std::uint64_t block_hash = 0;
  std::uint64_t sequence_hash = 0;
  std::optional<std::uint64_t> parent;
  [[nodiscard]] TokenBlock view() const {
    return TokenBlock{tokens, BlockHash{block_hash}, SequenceHash{sequence_hash},
                      parent ? std::optional<SequenceHash>(SequenceHash{*parent}) : std::nullopt};
  }
};
PyTokenBlock to_py_block(const TokenBlock& block);

py::list wrap_blocks(const StatePtr& state, std::vector<G1Block>&& blocks);

// A Python eviction policy class registered as a user policy (a unique "py:<qualname>:<n>" name) for the
// life of this object: one metadata replay (eviction.cc, docs/custom_eviction.md "Python"). Made and
// destroyed with the GIL held; TypeError when the class lacks a required hook.
struct PythonPolicyRun;
class PythonPolicyRegistration {
 public:
  explicit PythonPolicyRegistration(const py::object& cls);
  ~PythonPolicyRegistration();  // unregisters
  PythonPolicyRegistration(const PythonPolicyRegistration&) = delete;
  PythonPolicyRegistration& operator=(const PythonPolicyRegistration&) = delete;

  [[nodiscard]] const std::string& registered_name() const { return registered_name_; }
  // The class's `name` attribute when it is a str, else its __name__: what reports show.
  [[nodiscard]] const std::string& display_name() const;
  // Whether a hook raised (readable without the GIL).
  [[nodiscard]] bool failed() const;
  // Raises the first exception a hook raised, as its type with the hook in the message. REQUIRES: the GIL.
  void raise_if_failed() const;

 private:
  std::shared_ptr<PythonPolicyRun> run_;
  std::string registered_name_;
};

// A trace that ends the replay (Cancelled) at the next request once the policy has failed.
class PolicyStopTrace final : public TraceReader {
 public:
  PolicyStopTrace(TraceReader& inner, const PythonPolicyRegistration* policy);
  [[nodiscard]] absl::StatusOr<std::optional<TraceRequest>> next() override;
  [[nodiscard]] absl::Status rewind() override;

 private:
  TraceReader& inner_;
  const PythonPolicyRegistration* policy_;  // null: never stops
};

void bind_eviction(py::module_& m);
void bind_config(py::module_& m);
void bind_sequences(py::module_& m);
void bind_blocks(py::module_& m);
void bind_manager(py::module_& m);
void bind_replay(py::module_& m);

// Resolves a manager's configuration argument: None (defaults), a dict, a TOML path or a Config.
KvbmConfig to_config(const py::object& config);

}  // namespace kvbm::python
