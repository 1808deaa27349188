// Block handles and their memory as NumPy arrays (buffer protocol) and DLPack tensors, without copies.
//
// A view pins what it points into: a view of an ImmutableBlock holds its own reference to the block (so
// the block stays registered and is never evicted and reused while the view exists, even after the
// handle's reset()); a view of a MutableBlock holds the MutableBlock object. Both hold the manager.
//
// DLPack before 1.0 cannot mark a tensor read-only: a consumer of an ImmutableBlock's chunk_view() must
// not write through it (NumPy arrays from chunk()/view() are read-only and enforce it).
//
// Device memory (a G1 with memory = "device"): chunk_view() exports the chunk's device address as a
// (kDLCUDA, device) tensor, so torch.from_dlpack gives a CUDA tensor without a copy. NumPy views, chunk() and
// chunk_checksum() need host bytes and say so. kvbm's own copies into G1 have finished (synchronised on the
// host) before a handle is returned, so the consumer's stream has nothing to wait for: __dlpack__ ignores it.
#include <absl/strings/ascii.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>

#include "bindings.h"
#include "dlpack.h"
#include "kvbm/core/hashing.h"

namespace kvbm::python {
namespace {

// An element type given by the caller: a NumPy dtype (or anything np.dtype() takes), a torch dtype, or
// "bfloat16" (DLPack only: NumPy has no bfloat16).
struct ElementType {
  DLDataType dl{1, 8, 1};
  py::object numpy = py::none();  // None for bfloat16
  std::size_t itemsize = 1;
  std::string name = "uint8";
};

ElementType parse_dtype(const py::object& dtype) {
  std::string text = py::str(dtype).cast<std::string>();
  if (absl::StartsWith(text, "torch.")) text = text.substr(6);
  ElementType out;
  if (absl::AsciiStrToLower(text) == "bfloat16") {
    out.dl = {4, 16, 1};
    out.itemsize = 2;
    out.name = "bfloat16";
    return out;
  }
  py::dtype dt = py::isinstance<py::str>(dtype) || absl::StartsWith(py::str(dtype).cast<std::string>(), "torch.")
                     ? py::dtype(text)
                     : py::dtype::from_args(dtype);
  std::uint8_t code = 0;
  switch (dt.kind()) {
    case 'i':
      code = 0;
      break;
    case 'u':
      code = 1;
      break;
    case 'f':
      code = 2;
      break;
    case 'c':
      code = 5;
      break;
    default:
      throw py::value_error(absl::StrCat("dtype must be an integer, float or complex type, got ", text));
  }
  out.itemsize = static_cast<std::size_t>(dt.itemsize());
  out.dl = {code, static_cast<std::uint8_t>(out.itemsize * 8), 1};
  out.numpy = dt;
  out.name = py::str(dt).cast<std::string>();
  return out;
}

// Shape of a region of `nbytes` (rows of page_size tokens) seen as `type`: (..., page_size, columns).
std::int64_t columns(std::uint64_t nbytes, std::uint64_t rows, const ElementType& type) {
  const std::uint64_t row_bytes = nbytes / rows;
  if (row_bytes % type.itemsize != 0) {
    throw py::value_error(absl::StrCat("a token row of ", row_bytes, " bytes is not a whole number of ", type.name,
                                       " elements (", type.itemsize, " bytes)"));
  }
  return static_cast<std::int64_t>(row_bytes / type.itemsize);
}

// A typed window on block memory, with the object that keeps it valid.
struct Region {
  std::byte* data = nullptr;  // a device address when device is kDLCUDA: never dereferenced here
  DLDevice device{kDLCPU, 0};
  std::vector<std::int64_t> shape;  // elements; C order
  ElementType type;
  bool readonly = false;
  py::object owner;  // pins the memory
};

py::array to_numpy(const Region& r, const py::handle& base) {
  if (r.device.device_type != kDLCPU) {
    throw py::value_error(absl::StrCat("this chunk is in GPU memory (CUDA device ", r.device.device_id,
                                       "): NumPy cannot view it; use chunk_view() and torch.from_dlpack"));
  }
  if (r.type.numpy.is_none()) {
    throw py::value_error("NumPy has no " + r.type.name + ": use chunk_view() and torch.from_dlpack");
  }
  std::vector<py::ssize_t> shape(r.shape.begin(), r.shape.end());
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t stride = static_cast<py::ssize_t>(r.type.itemsize);
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  py::array arr(r.type.numpy.cast<py::dtype>(), shape, strides, r.data, base);
  if (r.readonly) arr.attr("setflags")(py::arg("write") = false);
  return arr;
}

// The object chunk_view() returns: a zero-copy tensor export (DLPack, and NumPy's __array__).
struct ChunkView {
  Region region;
};

struct DlpackContext {
  py::object owner;  // the ChunkView
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;
};

void dlpack_deleter(DLManagedTensor* tensor) {
  auto* ctx = static_cast<DlpackContext*>(tensor->manager_ctx);
  if (Py_IsInitialized() != 0) {
    py::gil_scoped_acquire gil;
    delete ctx;
  }  // else: the interpreter is gone; leaking the context is all that is safe
  delete tensor;
}

void dlpack_capsule_destructor(PyObject* capsule) {
  // A consumer renames the capsule "used_dltensor" and calls the deleter itself.
  if (PyCapsule_IsValid(capsule, "dltensor") == 0) return;
  auto* tensor = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
  tensor->deleter(tensor);
}

py::capsule to_dlpack(const py::object& self) {
  const ChunkView& view = self.cast<const ChunkView&>();
  auto* ctx = new DlpackContext{self, view.region.shape, std::vector<std::int64_t>(view.region.shape.size())};
  std::int64_t stride = 1;
  for (std::size_t i = ctx->shape.size(); i-- > 0;) {
    ctx->strides[i] = stride;
    stride *= ctx->shape[i];
  }
  auto* tensor = new DLManagedTensor{};
  tensor->dl_tensor.data = view.region.data;
  tensor->dl_tensor.device = view.region.device;
  tensor->dl_tensor.ndim = static_cast<std::int32_t>(ctx->shape.size());
  tensor->dl_tensor.dtype = view.region.type.dl;
  tensor->dl_tensor.shape = ctx->shape.data();
  tensor->dl_tensor.strides = ctx->strides.data();
  tensor->dl_tensor.byte_offset = 0;
  tensor->manager_ctx = ctx;
  tensor->deleter = dlpack_deleter;
  PyObject* capsule = PyCapsule_New(tensor, "dltensor", dlpack_capsule_destructor);
  if (capsule == nullptr) {
    dlpack_deleter(tensor);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(capsule);
}

// ---- Block memory ----

const ModelConfig& model_of(const StatePtr& state) { return state->kvbm->model(); }

void check_indices(const ModelConfig& model, std::uint32_t layer, std::uint32_t outer) {
  if (layer >= model.num_layers) {
    throw py::value_error(absl::StrCat("layer must be < num_layers (", model.num_layers, "), got ", layer));
  }
  if (outer >= model.outer_dim) {
    throw py::value_error(absl::StrCat("outer must be < outer_dim (", model.outer_dim, "), got ", outer));
  }
}

// Where one chunk's bytes are: host bytes, or a device address.
struct ChunkMemory {
  std::byte* data = nullptr;
  std::uint64_t size = 0;
  DLDevice device{kDLCPU, 0};
};

template <typename Block>
ChunkMemory chunk_memory(const Block& block, std::uint32_t layer, std::uint32_t outer) {
  const std::optional<StorageKind> kind = block.memory_kind();
  if (!kind) throw py::value_error("this manager's G1 has no memory bound to its blocks");
  const std::optional<DLDevice> device = dlpack_device(*kind, block.device_id());
  if (!device) {
    throw py::value_error(
        absl::StrCat("G1 memory of kind ", std::string(storage_kind_name(*kind)), " cannot be viewed"));
  }
  if (device->device_type == kDLCUDA) {
    const DeviceChunk chunk = block.device_chunk(layer, outer);
    return {reinterpret_cast<std::byte*>(chunk.address), chunk.size, *device};  // NOLINT: an address, not read
  }
  const auto bytes = block.chunk(layer, outer);
  return {const_cast<std::byte*>(bytes.data()), bytes.size(), *device};  // NOLINT: read-only views use flags
}

// Host bytes of a chunk, for reading here: ValueError for device memory.
std::span<const std::byte> host_bytes(const ChunkMemory& chunk, const char* what) {
  if (chunk.device.device_type != kDLCPU) {
    throw py::value_error(absl::StrCat(what, " reads host memory; this G1 is GPU memory (CUDA device ",
                                       chunk.device.device_id, "): use chunk_view() and torch.from_dlpack"));
  }
  return {chunk.data, chunk.size};
}

// One chunk: (page_size, columns).
Region chunk_region(const StatePtr& state, const ChunkMemory& chunk, const py::object& dtype, bool readonly,
                    py::object owner) {
  if (chunk.data == nullptr || chunk.size == 0) {
    throw py::value_error("this manager's G1 has no memory bound to its blocks");
  }
  const ModelConfig& model = model_of(state);
  Region r;
  r.type = parse_dtype(dtype);
  r.data = chunk.data;
  r.device = chunk.device;
  r.shape = {static_cast<std::int64_t>(model.page_size), columns(chunk.size, model.page_size, r.type)};
  r.readonly = readonly;
  r.owner = std::move(owner);
  return r;
}

// The whole block: (num_layers, outer_dim, page_size, columns). Only for layouts that keep a block in one piece.
Region block_region(const StatePtr& state, const ChunkMemory& first_chunk, const py::object& dtype, bool readonly,
                    py::object owner) {
  if (!state->kvbm->g1_layout().block_is_contiguous()) {
    throw py::value_error(absl::StrCat("view(): the G1 layout (", state->kvbm->g1_layout().name(),
                                       ") does not keep a block in one piece; use chunk(layer, outer)"));
  }
  const ModelConfig& model = model_of(state);
  Region r = chunk_region(state, first_chunk, dtype, readonly, std::move(owner));
  r.shape.insert(r.shape.begin(),
                 {static_cast<std::int64_t>(model.num_layers), static_cast<std::int64_t>(model.outer_dim)});
  return r;
}

G1MutableBlock& live(PyMutableBlock& b) {
  if (!b.block.valid()) {
    PyErr_SetString(PyExc_RuntimeError, "MutableBlock was released or registered");
    throw py::error_already_set();
  }
  return b.block;
}
const G1Block& live(const PyImmutableBlock& b) {
  if (!b.block.valid()) {
    PyErr_SetString(PyExc_RuntimeError, "ImmutableBlock was released");
    throw py::error_already_set();
  }
  return b.block;
}

// A view of an ImmutableBlock holds its own reference to the block.
py::object pin(const PyImmutableBlock& b) {
  auto* copy = new PyImmutableBlock{b.state, b.block};
  return py::capsule(copy, [](void* p) { delete static_cast<PyImmutableBlock*>(p); });
}

Region mutable_chunk(const py::object& self, std::uint32_t layer, std::uint32_t outer, const py::object& dtype) {
  PyMutableBlock& b = self.cast<PyMutableBlock&>();
  check_indices(model_of(b.state), layer, outer);
  return chunk_region(b.state, chunk_memory(live(b), layer, outer), dtype, false, self);
}
Region immutable_chunk(const PyImmutableBlock& b, std::uint32_t layer, std::uint32_t outer, const py::object& dtype) {
  check_indices(model_of(b.state), layer, outer);
  return chunk_region(b.state, chunk_memory(live(b), layer, outer), dtype, true, pin(b));
}

// xxh3_64 of a chunk's bytes, read by kvbm through the handle (no Python buffer involved).
template <typename Block>
std::uint64_t chunk_checksum(const Block& block, std::uint32_t layer, std::uint32_t outer) {
  const std::span<const std::byte> bytes = host_bytes(chunk_memory(block, layer, outer), "chunk_checksum()");
  if (bytes.empty()) throw py::value_error("this manager's G1 has no memory bound to its blocks");
  return xxh3_64(bytes.data(), bytes.size(), 0);
}

const char* state_name(MutableState s) {
  switch (s) {
    case MutableState::kReset:
      return "reset";
    case MutableState::kPartial:
      return "partial";
    case MutableState::kComplete:
      return "complete";
  }
  return "?";
}

py::object optional_hash(const std::optional<SequenceHash>& h) {
  return h ? py::object(py::int_(h->value())) : py::object(py::none());
}

std::string memory_kind_name(const std::optional<StorageKind>& kind) {
  return kind ? std::string(storage_kind_name(*kind)) : std::string("none");
}

constexpr const char* kDtypeDoc =
    "dtype: a NumPy dtype (default uint8) or 'bfloat16' (DLPack only); each token row of the chunk "
    "(inner_dim × dtype_bytes bytes) must be a whole number of elements.";

}  // namespace

py::list wrap_blocks(const StatePtr& state, std::vector<G1Block>&& blocks) {
  py::list out;
  for (G1Block& b : blocks) out.append(py::cast(PyImmutableBlock{state, std::move(b)}));
  return out;
}

void bind_blocks(py::module_& m) {
  py::class_<ChunkView>(m, "ChunkView", R"doc(
A zero-copy tensor view of block memory: ``np.from_dlpack(v)``, ``torch.from_dlpack(v)`` or ``np.asarray(v)``.
It keeps the block (and the manager) alive while it or anything made from it exists. On the CPU for a host G1;
for a device G1 (memory = "device") a CUDA tensor on that GPU (``torch.from_dlpack``; NumPy cannot view it).
Views of an ImmutableBlock must not be written through: DLPack < 1.0 cannot mark them read-only.
)doc")
      .def(
          "__dlpack__", [](const py::object& self, const py::object& /*stream*/) { return to_dlpack(self); },
          py::arg("stream") = py::none(), "A DLPack capsule ('dltensor') of this memory.")
      .def(
          "__dlpack_device__",
          [](const ChunkView& v) { return py::make_tuple(v.region.device.device_type, v.region.device.device_id); },
          "(1, 0) for host memory (kDLCPU; pinned memory too); (2, device) for GPU memory (kDLCUDA).")
      .def(
          "__array__",
          [](const py::object& self, const py::object& dtype, const py::object& /*copy*/) {
            py::array arr = to_numpy(self.cast<const ChunkView&>().region, self);
            return dtype.is_none() ? arr : py::array(arr.attr("astype")(dtype));
          },
          py::arg("dtype") = py::none(), py::arg("copy") = py::none())
      .def_property_readonly("shape",
                             [](const ChunkView& v) {
                               py::tuple t(v.region.shape.size());
                               for (std::size_t i = 0; i < v.region.shape.size(); ++i) t[i] = v.region.shape[i];
                               return t;
                             })
      .def_property_readonly("dtype", [](const ChunkView& v) { return v.region.type.name; })
      .def_property_readonly("readonly", [](const ChunkView& v) { return v.region.readonly; })
      .def_property_readonly(
          "data_ptr", [](const ChunkView& v) { return reinterpret_cast<std::uintptr_t>(v.region.data); },
          "Address of the first byte (for checking that views share memory); a device address for GPU memory.");

  py::class_<PyMutableBlock>(m, "MutableBlock", R"doc(
A G1 block being filled, owned by this handle alone. States: 'reset' → init() → 'partial' → append() up to
page_size tokens → commit() → 'complete'; or 'reset' → apply(token_block) → 'complete'. register_blocks()
consumes complete blocks. Releasing (release(), leaving a ``with`` block, or garbage collection) returns the
slot to the free list.
)doc")
      .def_property_readonly("valid", [](const PyMutableBlock& b) { return b.block.valid(); })
      .def_property_readonly(
          "id", [](PyMutableBlock& b) { return live(b).id().value(); }, "Slot index in G1.")
      .def_property_readonly("state", [](PyMutableBlock& b) { return state_name(live(b).state()); })
      .def_property_readonly("num_tokens", [](PyMutableBlock& b) { return live(b).num_tokens(); })
      .def_property_readonly(
          "memory_kind", [](PyMutableBlock& b) { return memory_kind_name(live(b).memory_kind()); },
          "Where G1's bytes are: 'system', 'pinned' or 'device' (GPU); 'none' when no memory is bound.")
      .def_property_readonly(
          "device_id", [](PyMutableBlock& b) { return live(b).device_id(); },
          "The CUDA device of a device G1; -1 for host memory.")
      .def_property(
          "priority", [](PyMutableBlock& b) { return live(b).priority(); },
          [](PyMutableBlock& b, std::uint8_t p) { live(b).set_priority(p); },
          "Retention priority once registered (priority eviction policy).")
      .def(
          "init",
          [](PyMutableBlock& b, std::uint64_t salt_hash, std::optional<std::uint64_t> parent) {
            check(live(b).init(SaltHash{salt_hash},
                               parent ? std::optional<SequenceHash>(SequenceHash{*parent}) : std::nullopt));
          },
          py::arg("salt_hash") = 0, py::arg("parent") = py::none(),
          "reset → partial: starts a block whose previous block has sequence hash `parent` (None = first).")
      .def(
          "append",
          [](PyMutableBlock& b, const py::object& tokens) { check(live(b).append(token_span(to_tokens(tokens)))); },
          py::arg("tokens"), "partial: adds tokens; ValueError (nothing added) past page_size.")
      .def(
          "commit", [](PyMutableBlock& b) { check(live(b).commit()); },
          "partial with page_size tokens → complete: hashes the block.")
      .def(
          "apply", [](PyMutableBlock& b, const PyTokenBlock& block) { check(live(b).apply(block.view())); },
          py::arg("block"), "reset → complete from a TokenBlock of a sequence.")
      .def(
          "apply_identity",
          [](PyMutableBlock& b, std::uint64_t block_hash, std::uint64_t sequence_hash,
             std::optional<std::uint64_t> parent) {
            check(live(b).apply(
                BlockIdentity{BlockHash{block_hash}, SequenceHash{sequence_hash},
                              parent ? std::optional<SequenceHash>(SequenceHash{*parent}) : std::nullopt}));
          },
          py::arg("block_hash"), py::arg("sequence_hash"), py::arg("parent") = py::none(),
          "reset → complete from hashes alone (no tokens).")
      .def_property_readonly(
          "sequence_hash",
          [](PyMutableBlock& b) -> py::object {
            if (live(b).state() != MutableState::kComplete) return py::none();
            return py::int_(b.block.identity().sequence_hash.value());
          },
          "The sequence hash once complete, else None.")
      .def(
          "chunk",
          [](const py::object& self, std::uint32_t layer, std::uint32_t outer, const py::object& dtype) {
            return to_numpy(mutable_chunk(self, layer, outer, dtype), self);
          },
          py::arg("layer"), py::arg("outer"), py::arg("dtype") = "uint8",
          (std::string("The bytes of (layer, outer) as a writable NumPy array (page_size, columns), no copy. ") +
           kDtypeDoc)
              .c_str())
      .def(
          "view",
          [](const py::object& self, const py::object& dtype) {
            PyMutableBlock& b = self.cast<PyMutableBlock&>();
            return to_numpy(block_region(b.state, chunk_memory(live(b), 0, 0), dtype, false, self), self);
          },
          py::arg("dtype") = "uint8",
          "The whole block as a writable array (num_layers, outer_dim, page_size, columns); layouts that keep "
          "a block in one piece only (fully_contiguous).")
      .def(
          "chunk_view",
          [](const py::object& self, std::uint32_t layer, std::uint32_t outer, const py::object& dtype) {
            return ChunkView{mutable_chunk(self, layer, outer, dtype)};
          },
          py::arg("layer"), py::arg("outer"), py::arg("dtype") = "uint8",
          "The chunk of (layer, outer) as a ChunkView for DLPack (torch.from_dlpack / np.from_dlpack).")
      .def(
          "chunk_checksum",
          [](PyMutableBlock& b, std::uint32_t layer, std::uint32_t outer) {
            check_indices(model_of(b.state), layer, outer);
            return chunk_checksum(live(b), layer, outer);
          },
          py::arg("layer"), py::arg("outer"), "xxh3_64 (seed 0) of the chunk's bytes, as kvbm reads them.")
      .def(
          "release", [](PyMutableBlock& b) { live(b) = G1MutableBlock{}; },
          "Drops the handle now: the slot returns to the free list (views made from it stay readable). "
          "RuntimeError when it was already released or registered.")
      .def("__enter__", [](const py::object& self) { return self; })
      .def("__exit__",
           [](PyMutableBlock& b, const py::args&) {
             b.block = G1MutableBlock{};
             return false;
           })
      .def("__repr__", [](const PyMutableBlock& b) {
        if (!b.block.valid()) return std::string("MutableBlock(released)");
        return absl::StrCat("MutableBlock(id=", b.block.id().value(), ", state=", state_name(b.block.state()),
                            ", num_tokens=", b.block.num_tokens(), ")");
      });

  py::class_<PyImmutableBlock>(m, "ImmutableBlock", R"doc(
A registered G1 block, shared (reference-counted) and read-only. While any handle (or a view made from one)
exists the block is active: matchable and never evicted. reset(), leaving a ``with`` block, or garbage
collection drops this reference; the last one makes the block inactive (evictable, still matchable).
)doc")
      .def_property_readonly("valid", [](const PyImmutableBlock& b) { return b.block.valid(); })
      .def_property_readonly("id", [](const PyImmutableBlock& b) { return live(b).id().value(); })
      .def_property_readonly("sequence_hash", [](const PyImmutableBlock& b) { return live(b).sequence_hash().value(); })
      .def_property_readonly("block_hash",
                             [](const PyImmutableBlock& b) { return live(b).identity().block_hash.value(); })
      .def_property_readonly(
          "parent", [](const PyImmutableBlock& b) { return optional_hash(live(b).identity().parent); },
          "Sequence hash of the previous block; None for a first block.")
      .def_property_readonly("priority", [](const PyImmutableBlock& b) { return live(b).priority(); })
      .def_property_readonly(
          "memory_kind", [](const PyImmutableBlock& b) { return memory_kind_name(live(b).memory_kind()); },
          "Where G1's bytes are: 'system', 'pinned' or 'device' (GPU); 'none' when no memory is bound.")
      .def_property_readonly(
          "device_id", [](const PyImmutableBlock& b) { return live(b).device_id(); },
          "The CUDA device of a device G1; -1 for host memory.")
      .def_property_readonly(
          "tokens",
          [](const PyImmutableBlock& b) {
            auto t = live(b).tokens();
            return py::array_t<std::uint32_t>(static_cast<py::ssize_t>(t.size()), t.data());
          },
          "A copy of the block's token ids, as kvbm stores them (empty when tokens are not kept).")
      .def(
          "chunk",
          [](const PyImmutableBlock& b, std::uint32_t layer, std::uint32_t outer, const py::object& dtype) {
            Region r = immutable_chunk(b, layer, outer, dtype);
            return to_numpy(r, r.owner);
          },
          py::arg("layer"), py::arg("outer"), py::arg("dtype") = "uint8",
          (std::string("The bytes of (layer, outer) as a read-only NumPy array (page_size, columns), no copy; "
                       "it pins the block. ") +
           kDtypeDoc)
              .c_str())
      .def(
          "view",
          [](const PyImmutableBlock& b, const py::object& dtype) {
            Region r = block_region(b.state, chunk_memory(live(b), 0, 0), dtype, true, pin(b));
            return to_numpy(r, r.owner);
          },
          py::arg("dtype") = "uint8",
          "The whole block as a read-only array (num_layers, outer_dim, page_size, columns); fully_contiguous "
          "layouts only.")
      .def(
          "chunk_view",
          [](const PyImmutableBlock& b, std::uint32_t layer, std::uint32_t outer, const py::object& dtype) {
            return ChunkView{immutable_chunk(b, layer, outer, dtype)};
          },
          py::arg("layer"), py::arg("outer"), py::arg("dtype") = "uint8",
          "The chunk as a ChunkView for DLPack. Do not write through it (DLPack cannot mark it read-only).")
      .def(
          "chunk_checksum",
          [](const PyImmutableBlock& b, std::uint32_t layer, std::uint32_t outer) {
            check_indices(model_of(b.state), layer, outer);
            return chunk_checksum(live(b), layer, outer);
          },
          py::arg("layer"), py::arg("outer"), "xxh3_64 (seed 0) of the chunk's bytes, as kvbm reads them.")
      .def(
          "copy",
          [](const PyImmutableBlock& b) {
            return PyImmutableBlock{b.state, live(b)};
          },
          "Another reference to the same block.")
      .def(
          "reset", [](PyImmutableBlock& b) { b.block.reset(); }, "Drops this reference now.")
      .def("__enter__", [](const py::object& self) { return self; })
      .def("__exit__",
           [](PyImmutableBlock& b, const py::args&) {
             b.block.reset();
             return false;
           })
      .def("__repr__", [](const PyImmutableBlock& b) {
        if (!b.block.valid()) return std::string("ImmutableBlock(released)");
        return absl::StrCat("ImmutableBlock(id=", b.block.id().value(),
                            ", sequence_hash=", b.block.sequence_hash().value(), ")");
      });

  py::class_<PyWeakBlock>(m, "WeakBlock", "A non-pinning reference to a registered G1 block (by sequence hash).")
      .def_property_readonly("sequence_hash", [](const PyWeakBlock& w) { return w.weak.sequence_hash().value(); })
      .def(
          "upgrade",
          [](const PyWeakBlock& w) -> py::object {
            std::optional<G1Block> b = w.weak.upgrade();
            if (!b) return py::none();
            return py::cast(PyImmutableBlock{w.state, *std::move(b)});
          },
          "The block as an ImmutableBlock if it is still registered in G1, else None.");
}

}  // namespace kvbm::python
