// Python eviction policies (docs/custom_eviction.md, "Python"): a class with the hooks of EvictionPolicy,
// run behind a C++ adapter that is registered as a user policy for the length of one metadata replay.
//
// Threads and the GIL: kvbm.replay(data=False) drives the pools from its own calling thread only (an
// InlineScheduler runs the tier chain's work inline; no transfer engine exists without bytes), with the GIL
// released. Every hook takes the GIL, calls Python, and gives it back. Data replays are refused: there the
// tier chain calls hooks on background threads under pool locks, and a hook waiting for the GIL there could
// stall the engine-facing paths.
//
// Errors: a hook never throws into the pool. The first Python exception of any hook is kept, with the hook's
// name; from then on no adapter of the run calls Python (each one's C++ LRU stand-in chooses its victims)
// and the replay stops at its next request (PolicyStopTrace). The binding then raises that exception to the
// caller.
#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>

#include <atomic>
#include <cstdio>
#include <utility>
#include <vector>

#include "bindings.h"
#include "kvbm/pool/eviction_policy.h"

namespace kvbm::python {
namespace {

// kvbm.InactiveBlockInfo: a struct sequence (a named tuple made in C, like os.stat_result), so that building
// one per insert() costs one allocation.
PyTypeObject* g_info_type = nullptr;

PyStructSequence_Field g_info_fields[] = {
    {"priority", "retention priority from registration, 0 (evict first) .. 100"},
    {"is_leaf", "no cached child depends on this block (always True unless uses_lineage)"},
    {"is_tail", "the block that ended its request (released first of its request)"},
    {"depth", "0 for a chain root, parent's depth + 1 (always 0 unless uses_depth)"},
    {"sequence_hash", "the block's sequence hash (u64)"},
    {nullptr, nullptr},
};

PyStructSequence_Desc g_info_desc = {
    "kvbm.InactiveBlockInfo",
    "What the pool knows about a block entering the inactive set (EvictionPolicy.insert's `info`).",
    g_info_fields,
    5,
};

// A new reference to an InactiveBlockInfo, or null with a Python error set.
PyObject* make_info(const InactiveBlockInfo& info) {
  PyObject* o = PyStructSequence_New(g_info_type);
  if (o == nullptr) return nullptr;
  PyObject* items[] = {PyLong_FromUnsignedLong(info.priority), PyBool_FromLong(info.is_leaf ? 1 : 0),
                       PyBool_FromLong(info.is_tail ? 1 : 0), PyLong_FromUnsignedLong(info.depth),
                       PyLong_FromUnsignedLongLong(info.sequence_hash)};
  bool ok = true;
  for (Py_ssize_t i = 0; i < 5; ++i) {
    if (items[i] == nullptr) ok = false;
    PyStructSequence_SetItem(o, i, items[i]);  // steals; a null item is left null and the object dropped
  }
  if (!ok) {
    Py_DECREF(o);
    return nullptr;
  }
  return o;
}

// An attribute that may be a plain value or a method returning one (`uses_lineage = True` or
// `def uses_lineage(self): return True`).
bool flag_attribute(const py::object& obj, const char* name) {
  if (!py::hasattr(obj, name)) return false;
  py::object v = obj.attr(name);
  if (PyCallable_Check(v.ptr()) != 0) v = v();
  return py::bool_(v);
}

std::atomic<std::uint64_t> g_registrations{0};

// "py:<qualname, lower-cased, other characters '_'>:<n>", within the 64 characters a policy name may have.
std::string registered_name_for(const py::object& cls) {
  std::string qualname = py::str(py::getattr(cls, "__qualname__", py::getattr(cls, "__name__", py::str("policy"))));
  qualname = absl::AsciiStrToLower(qualname);
  for (char& c : qualname) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) c = '_';
  }
  if (qualname.size() > 40) qualname.resize(40);
  return absl::StrCat("py:", qualname, ":", g_registrations.fetch_add(1) + 1);
}

}  // namespace

// What every adapter of one replay shares: the class, and the first exception a hook raised. `error` and
// `hook` are written and read with the GIL held; `failed` is also read by the replay thread without it.
struct PythonPolicyRun {
  py::object cls;
  std::string display_name;
  std::atomic<bool> failed{false};
  std::string hook;  // "insert()", ...: the hook that raised first
  py::object error;  // its exception

  ~PythonPolicyRun() {
    py::gil_scoped_acquire gil;
    cls = py::object();
    error = py::object();
  }

  // Keeps the Python error that is set (the first one of the run) and clears it. REQUIRES: the GIL, an error set.
  void fail(const char* hook_name) {
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    PyErr_Fetch(&type, &value, &tb);
    if (failed.load(std::memory_order_relaxed)) {
      Py_XDECREF(type);
      Py_XDECREF(value);
      Py_XDECREF(tb);
      return;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != nullptr && value != nullptr) PyException_SetTraceback(value, tb);
    Py_XDECREF(tb);
    Py_XDECREF(type);
    error = value != nullptr ? py::reinterpret_steal<py::object>(value) : py::none();
    hook = hook_name;
    failed.store(true, std::memory_order_relaxed);
  }
};

namespace {

// One pool's policy: an instance of the Python class, its hooks looked up once. Beside it, a C++ LRU over
// the same set (and which of its blocks are pinned): once the run has failed, the Python hooks are no longer
// called and this LRU chooses, so the pool finishes its request without a victim to overrule. Called only
// under the owning pool's lock, from the replay's thread.
class PythonEvictionPolicy final : public EvictionPolicy {
 public:
  // REQUIRES: the GIL.
  PythonEvictionPolicy(std::shared_ptr<PythonPolicyRun> run, std::uint32_t capacity)
      : run_(std::move(run)), stand_in_(make_eviction_policy(EvictionPolicyKind::kLru, capacity)), state_(capacity) {
    if (run_->failed.load(std::memory_order_relaxed)) return;
    PyObject* obj = PyObject_CallFunction(run_->cls.ptr(), "I", static_cast<unsigned>(capacity));
    if (obj == nullptr) {
      run_->fail("__init__(capacity)");
      return;
    }
    policy_ = py::reinterpret_steal<py::object>(obj);
    try {
      insert_ = policy_.attr("insert");
      erase_ = policy_.attr("erase");
      touch_ = policy_.attr("touch");
      evict_ = policy_.attr("evict");
      if (py::hasattr(policy_, "pin")) pin_ = policy_.attr("pin");
      if (py::hasattr(policy_, "unpin")) unpin_ = policy_.attr("unpin");
      if (py::hasattr(policy_, "set_leaf")) set_leaf_ = policy_.attr("set_leaf");
      uses_lineage_ = flag_attribute(policy_, "uses_lineage");
      uses_depth_ = flag_attribute(policy_, "uses_depth");
      pins_keep_state_ = flag_attribute(policy_, "pins_keep_state");
    } catch (py::error_already_set& e) {
      e.restore();
      run_->fail("__init__(capacity)");
      clear();
    }
  }
  ~PythonEvictionPolicy() override {
    py::gil_scoped_acquire gil;
    clear();
  }
  PythonEvictionPolicy(const PythonEvictionPolicy&) = delete;
  PythonEvictionPolicy& operator=(const PythonEvictionPolicy&) = delete;

  std::string_view name() const override { return run_->display_name; }

  void insert(BlockId id, const InactiveBlockInfo& info) override {
    stand_in_->insert(id, info);  // lru's insert also takes a block back that was pinned
    state_[id.value()] = kInSet;
    call_with_info(insert_, "insert()", id, info);
  }
  void erase(BlockId id) override {
    if (std::exchange(state_[id.value()], kOut) == kInSet) stand_in_->erase(id);
    call_id(erase_, "erase()", id);
  }
  void touch(BlockId id) override {
    if (state_[id.value()] == kInSet) stand_in_->touch(id);
    call_id(touch_, "touch()", id);
  }
  void pin(BlockId id) override {
    if (state_[id.value()] == kInSet) {
      stand_in_->pin(id);
      state_[id.value()] = kPinned;
    }
    if (pin_) {
      call_id(pin_, "pin()", id);
    } else {
      call_id(erase_, "erase()", id);
    }
  }
  void unpin(BlockId id, const InactiveBlockInfo& info) override {
    if (state_[id.value()] == kPinned) {
      stand_in_->unpin(id, info);
      state_[id.value()] = kInSet;
    }
    if (unpin_) {
      call_with_info(unpin_, "unpin()", id, info);
    } else {
      call_with_info(insert_, "insert()", id, info);
    }
  }
  void set_leaf(BlockId id, bool is_leaf) override {
    if (!set_leaf_ || !live()) return;
    py::gil_scoped_acquire gil;
    if (!live()) return;
    PyObject* args[] = {PyLong_FromUnsignedLong(id.value()), is_leaf ? Py_True : Py_False};
    if (args[0] == nullptr) return run_->fail("set_leaf()");
    finish(PyObject_Vectorcall(set_leaf_.ptr(), args, 2, nullptr), "set_leaf()");
    Py_DECREF(args[0]);
  }
  bool uses_lineage() const override { return uses_lineage_; }
  bool uses_depth() const override { return uses_depth_; }
  bool pins_keep_state() const override { return pins_keep_state_; }

  std::optional<BlockId> evict() override {
    const std::optional<BlockId> chosen = python_evict();
    if (!live()) return stand_in_evict();
    // A block of the set leaves it; anything else is for the guard to overrule (it then calls erase()).
    if (chosen && chosen->value() < state_.size() && state_[chosen->value()] == kInSet) {
      state_[chosen->value()] = kOut;
      stand_in_->erase(*chosen);
    }
    return chosen;
  }
  std::size_t size() const override { return stand_in_->size(); }
  // The adapter's own state; the Python object's memory is not counted.
  std::size_t memory_bytes() const override {
    return sizeof(*this) + stand_in_->memory_bytes() + state_.capacity() * sizeof(std::uint8_t);
  }

 private:
  std::optional<BlockId> python_evict() {
    if (!live()) return std::nullopt;
    py::gil_scoped_acquire gil;
    if (!live()) return std::nullopt;
    PyObject* r = PyObject_Vectorcall(evict_.ptr(), nullptr, 0, nullptr);
    if (r == nullptr) {
      run_->fail("evict()");
      return std::nullopt;
    }
    const py::object result = py::reinterpret_steal<py::object>(r);
    if (result.is_none()) return std::nullopt;
    if (PyLong_Check(r) == 0) {
      PyErr_Format(PyExc_TypeError, "evict() must return a block id (int) or None, got %s", Py_TYPE(r)->tp_name);
      run_->fail("evict()");
      return std::nullopt;
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(r, &overflow);
    // Not a block id at all: the guard overrules it like any id outside the set.
    if (overflow != 0 || v < 0 || v > static_cast<long long>(UINT32_MAX)) return BlockId{UINT32_MAX};
    return BlockId{static_cast<std::uint32_t>(v)};
  }
  std::optional<BlockId> stand_in_evict() {
    const std::optional<BlockId> victim = stand_in_->evict();
    if (victim) state_[victim->value()] = kOut;
    return victim;
  }
  bool live() const { return static_cast<bool>(policy_) && !run_->failed.load(std::memory_order_relaxed); }
  void clear() {
    policy_ = py::object();
    insert_ = erase_ = touch_ = evict_ = pin_ = unpin_ = set_leaf_ = py::object();
  }
  // A hook's result: dropped; a raised exception: kept for the caller. REQUIRES: the GIL.
  void finish(PyObject* result, const char* hook) {
    if (result == nullptr) {
      run_->fail(hook);
    } else {
      Py_DECREF(result);
    }
  }
  void call_id(const py::object& fn, const char* hook, BlockId id) {
    if (!live()) return;
    py::gil_scoped_acquire gil;
    if (!live()) return;
    PyObject* arg = PyLong_FromUnsignedLong(id.value());
    if (arg == nullptr) return run_->fail(hook);
    finish(PyObject_Vectorcall(fn.ptr(), &arg, 1, nullptr), hook);
    Py_DECREF(arg);
  }
  void call_with_info(const py::object& fn, const char* hook, BlockId id, const InactiveBlockInfo& info) {
    if (!live()) return;
    py::gil_scoped_acquire gil;
    if (!live()) return;
    PyObject* args[] = {PyLong_FromUnsignedLong(id.value()), make_info(info)};
    if (args[0] != nullptr && args[1] != nullptr) {
      finish(PyObject_Vectorcall(fn.ptr(), args, 2, nullptr), hook);
    } else {
      run_->fail(hook);
    }
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
  }

  const std::shared_ptr<PythonPolicyRun> run_;
  py::object policy_;  // the instance; null when inert
  py::object insert_, erase_, touch_, evict_;
  py::object pin_, unpin_, set_leaf_;  // null when the class has none
  bool uses_lineage_ = false;
  bool uses_depth_ = false;
  bool pins_keep_state_ = false;
  static constexpr std::uint8_t kOut = 0, kInSet = 1, kPinned = 2;
  const std::unique_ptr<EvictionPolicy> stand_in_;  // lru over the same set
  std::vector<std::uint8_t> state_;                 // per slot: kOut, kInSet, kPinned
};

}  // namespace

PythonPolicyRegistration::PythonPolicyRegistration(const py::object& cls) : run_(std::make_shared<PythonPolicyRun>()) {
  for (const char* hook : {"insert", "erase", "touch", "evict"}) {
    if (!py::hasattr(cls, hook) || PyCallable_Check(cls.attr(hook).ptr()) == 0) {
      throw py::type_error(absl::StrCat("eviction: the policy class ", std::string(py::str(cls)), " needs a method '",
                                        hook, "' (insert, erase, touch and evict; see docs/custom_eviction.md)"));
    }
  }
  run_->cls = cls;
  const py::object name = py::getattr(cls, "name", py::none());
  run_->display_name = py::isinstance<py::str>(name) ? name.cast<std::string>()
                                                     : py::str(py::getattr(cls, "__name__", cls)).cast<std::string>();
  registered_name_ = registered_name_for(cls);
  check(register_eviction_policy(registered_name_, [run = run_](std::uint32_t capacity) {
    py::gil_scoped_acquire gil;
    return std::unique_ptr<EvictionPolicy>(std::make_unique<PythonEvictionPolicy>(run, capacity));
  }));
}

PythonPolicyRegistration::~PythonPolicyRegistration() {
  // The registry's copy of the factory holds `run_`; dropping it destroys Python objects (the destructor of
  // PythonPolicyRun takes the GIL itself).
  (void)unregister_eviction_policy(registered_name_);
}

const std::string& PythonPolicyRegistration::display_name() const { return run_->display_name; }

bool PythonPolicyRegistration::failed() const { return run_->failed.load(std::memory_order_relaxed); }

void PythonPolicyRegistration::raise_if_failed() const {
  if (!failed()) return;
  const py::object error = run_->error;
  const py::object type = py::type::of(error);
  const std::string message =
      absl::StrCat("eviction policy '", run_->display_name, "': ", run_->hook, " raised ",
                   std::string(py::str(type.attr("__name__"))), ": ", std::string(py::str(error)));
  // The same exception type with the hook in its message, chained to the original (its traceback shows the
  // policy's line); a type that cannot be made from one message becomes RuntimeError.
  py::object raised;
  try {
    raised = type(message);
  } catch (py::error_already_set&) {
  }
  if (!raised || PyExceptionInstance_Check(raised.ptr()) == 0)
    raised = py::reinterpret_borrow<py::object>(PyExc_RuntimeError)(message);
  PyException_SetCause(raised.ptr(), error.inc_ref().ptr());  // steals the reference
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(raised.ptr())), raised.ptr());
  throw py::error_already_set();
}

PolicyStopTrace::PolicyStopTrace(TraceReader& inner, const PythonPolicyRegistration* policy)
    : inner_(inner), policy_(policy) {}

absl::StatusOr<std::optional<TraceRequest>> PolicyStopTrace::next() {
  if (policy_ != nullptr && policy_->failed()) return absl::CancelledError("eviction policy raised an exception");
  return inner_.next();
}

absl::Status PolicyStopTrace::rewind() { return inner_.rewind(); }

void bind_eviction(py::module_& m) {
  if (g_info_type == nullptr) {
    g_info_type = PyStructSequence_NewType(&g_info_desc);
    if (g_info_type == nullptr) throw py::error_already_set();
  }
  m.attr("InactiveBlockInfo") = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(g_info_type));
}

}  // namespace kvbm::python
