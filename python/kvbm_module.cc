// The `kvbm` Python module: errors, configuration, hashing and token sequences. Blocks, the manager and
// replay are bound in blocks.cc, manager.cc and replay.cc.
#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>

#include "bindings.h"
#include "kvbm/core/hashing.h"

namespace kvbm::python {

std::atomic<bool> g_finalizing{false};

void throw_status(const absl::Status& status) {
  const std::string message(status.message());
  PyObject* type = PyExc_RuntimeError;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
      type = PyExc_ValueError;
      break;
    case absl::StatusCode::kResourceExhausted:
      type = PyExc_MemoryError;
      break;
    case absl::StatusCode::kNotFound:
      type = PyExc_KeyError;
      break;
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kPermissionDenied:
      type = PyExc_OSError;
      break;
    default:
      break;
  }
  PyErr_SetString(type, message.c_str());
  throw py::error_already_set();
}

void require_file(const std::string& path, const char* what) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return;
  py::object err = py::reinterpret_steal<py::object>(PyObject_CallFunction(
      PyExc_FileNotFoundError, "iss", ENOENT, (std::string(what) + ": no such file").c_str(), path.c_str()));
  if (!err) throw py::error_already_set();
  PyErr_SetObject(PyExc_FileNotFoundError, err.ptr());
  throw py::error_already_set();
}

TokenArray to_tokens(const py::handle& tokens, const char* what) {
  if (TokenArray::check_(tokens)) return py::reinterpret_borrow<TokenArray>(tokens);  // already u32
  py::array a;
  try {
    a = py::module_::import("numpy").attr("asarray")(tokens);
  } catch (py::error_already_set& e) {
    throw py::type_error(std::string(what) + ": expected a sequence of ints or an integer array (" + e.what() + ")");
  }
  if (a.size() == 0) return TokenArray(0);
  const char kind = a.dtype().kind();
  if (kind == 'O') {  // ints too large for any NumPy integer type
    for (const py::handle item : py::iter(a.attr("ravel")())) {
      if (!py::isinstance<py::int_>(item)) {
        throw py::type_error(std::string(what) + ": token ids must be ints, got " +
                             std::string(py::str(py::type::of(item).attr("__name__"))));
      }
      const py::int_ v = py::reinterpret_borrow<py::int_>(item);
      if (v < py::int_(0) || v > py::int_(0xFFFFFFFFULL)) {
        throw py::value_error(std::string(what) + ": token ids must be in [0, 4294967295], got " +
                              std::string(py::str(item)));
      }
    }
  } else if (kind == 'i' || kind == 'u') {
    const py::object lo = a.attr("min")();
    const py::object hi = a.attr("max")();
    const py::object bad = lo < py::int_(0) ? lo : hi;
    if (lo < py::int_(0) || hi > py::int_(0xFFFFFFFFULL)) {
      throw py::value_error(std::string(what) + ": token ids must be in [0, 4294967295], got " +
                            std::string(py::str(bad)));
    }
  } else {
    throw py::type_error(std::string(what) + ": token ids must be integers, got an array of dtype " +
                         std::string(py::str(a.dtype())));
  }
  return TokenArray::ensure(a.attr("astype")("uint32"));
}

void throw_arg_type(const char* fn, const std::string& arg, const std::string& expected, const py::handle& got) {
  throw py::type_error(absl::StrCat(fn, "(): ", arg, " must be ", expected, ", got ",
                                    std::string(py::str(py::type::of(got).attr("__name__")))));
}

bool is_item_iterable(const py::handle& value) {
  return py::hasattr(value, "__iter__") && !py::isinstance<py::str>(value) && !py::isinstance<py::bytes>(value) &&
         !py::isinstance<py::dict>(value) && !py::isinstance<py::set>(value);
}

std::uint64_t arg_count(const py::handle& value, const char* fn, const char* arg) {
  if (!py::isinstance<py::int_>(value) || py::isinstance<py::bool_>(value)) {
    throw_arg_type(fn, arg, "an int >= 0", value);
  }
  const py::int_ v = py::reinterpret_borrow<py::int_>(value);
  if (v < py::int_(0) || v > py::int_(std::numeric_limits<std::uint64_t>::max())) {
    throw py::value_error(
        absl::StrCat(fn, "(): ", arg, " must be an int in [0, 2^64 - 1], got ", std::string(py::str(value))));
  }
  return v.cast<std::uint64_t>();
}

std::optional<std::uint64_t> arg_optional_count(const py::handle& value, const char* fn, const char* arg) {
  if (value.is_none()) return std::nullopt;
  if (!py::isinstance<py::int_>(value) || py::isinstance<py::bool_>(value)) {
    throw_arg_type(fn, arg, "an int >= 0 or None", value);
  }
  return arg_count(value, fn, arg);
}

std::string arg_str(const py::handle& value, const char* fn, const char* arg) {
  if (!py::isinstance<py::str>(value)) throw_arg_type(fn, arg, "a str", value);
  return value.cast<std::string>();
}

bool arg_bool(const py::handle& value, const char* fn, const char* arg) {
  if (!py::isinstance<py::bool_>(value)) throw_arg_type(fn, arg, "a bool", value);
  return value.cast<bool>();
}

HashArray arg_hashes(const py::handle& value, const char* fn, const char* arg) {
  const char* expected = "a list of ints or an integer array";
  if (HashArray::check_(value)) return py::reinterpret_borrow<HashArray>(value);  // already u64
  if (py::isinstance<py::array>(value)) {
    const py::array a = py::reinterpret_borrow<py::array>(value);
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u') {
      throw py::type_error(absl::StrCat(fn, "(): ", arg, " must be ", expected, ", got an array of dtype ",
                                        std::string(py::str(a.dtype()))));
    }
    if (a.size() != 0 && kind == 'i' && a.attr("min")() < py::int_(0)) {
      throw py::value_error(
          absl::StrCat(fn, "(): ", arg, " must be ints in [0, 2^64 - 1], got ", std::string(py::str(a.attr("min")()))));
    }
    return HashArray::ensure(a.attr("astype")("uint64"));
  }
  if (!is_item_iterable(value)) throw_arg_type(fn, arg, expected, value);
  // Item by item: NumPy would turn a list mixing ints below and above 2^63 into float64 (and lose bits).
  std::vector<std::uint64_t> ids;
  for (const py::handle item : py::iter(value)) {
    const std::string name = absl::StrCat(arg, "[", ids.size(), "]");
    if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item)) throw_arg_type(fn, name, "an int", item);
    const py::int_ v = py::reinterpret_borrow<py::int_>(item);
    if (v < py::int_(0) || v > py::int_(std::numeric_limits<std::uint64_t>::max())) {
      throw py::value_error(
          absl::StrCat(fn, "(): ", arg, " must be ints in [0, 2^64 - 1], got ", std::string(py::str(item))));
    }
    ids.push_back(v.cast<std::uint64_t>());
  }
  HashArray out(static_cast<py::ssize_t>(ids.size()));
  std::copy(ids.begin(), ids.end(), out.mutable_data());
  return out;
}

std::vector<SequenceHash> to_hashes(const HashArray& hashes) {
  std::vector<SequenceHash> out;
  out.reserve(static_cast<std::size_t>(hashes.size()));
  const std::uint64_t* data = hashes.data();
  for (py::ssize_t i = 0; i < hashes.size(); ++i) out.push_back(SequenceHash{data[i]});
  return out;
}

SaltHash to_salt_hash(const py::object& salt) {
  if (salt.is_none()) return SaltHash{0};
  if (py::isinstance<py::str>(salt)) return compute_salt_hash(salt.cast<std::string>());
  if (py::isinstance<py::bytes>(salt)) return compute_salt_hash(std::string(salt.cast<py::bytes>()));
  if (py::isinstance<py::int_>(salt)) return SaltHash{salt.cast<std::uint64_t>()};
  throw py::type_error("salt must be None, an int (a salt hash), str or bytes");
}

CacheLevel to_level(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "g1") return CacheLevel::kG1;
  if (lower == "g2") return CacheLevel::kG2;
  if (lower == "g3") return CacheLevel::kG3;
  if (lower == "g4") return CacheLevel::kG4;
  throw py::value_error(absl::StrCat("level must be 'g1', 'g2', 'g3' or 'g4', got '", name, "'"));
}

py::dict status_dict(const PoolStatus& status) {
  py::dict d;
  d["active"] = status.active;
  d["inactive"] = status.inactive;
  d["free"] = status.free;
  d["owned"] = status.owned;
  return d;
}

PyTokenBlock to_py_block(const TokenBlock& block) {
  PyTokenBlock out;
  out.tokens.assign(block.tokens.begin(), block.tokens.end());
  out.block_hash = block.block_hash.value();
  out.sequence_hash = block.sequence_hash.value();
  if (block.parent_sequence_hash) out.parent = block.parent_sequence_hash->value();
  return out;
}

namespace {

// The text form KvbmConfig::set takes, for a Python value.
std::string config_value_text(const std::string& key, const py::handle& value) {
  if (py::isinstance<py::bool_>(value)) return value.cast<bool>() ? "true" : "false";
  if (py::isinstance<py::int_>(value) || py::isinstance<py::float_>(value) || py::isinstance<py::str>(value)) {
    return py::str(value).cast<std::string>();
  }
  throw py::type_error(absl::StrCat("config key '", key, "': expected bool, int, float or str, got ",
                                    py::str(value.get_type().attr("__name__")).cast<std::string>()));
}

// {"g1": {"num_blocks": 64}, "keep_tokens": True} → set("g1.num_blocks", "64"), set("keep_tokens", "true").
void apply_dict(KvbmConfig& config, const py::dict& values, const std::string& prefix) {
  for (auto [k, v] : values) {
    const std::string key = prefix + py::str(k).cast<std::string>();
    if (py::isinstance<py::dict>(v)) {
      apply_dict(config, v.cast<py::dict>(), key + ".");
    } else {
      check(config.set(key, config_value_text(key, v)));
    }
  }
}

py::dict model_dict(const ModelConfig& model) {
  py::dict d;
  d["num_layers"] = model.num_layers;
  d["outer_dim"] = model.outer_dim;
  d["page_size"] = model.page_size;
  d["inner_dim"] = model.inner_dim;
  d["dtype_bytes"] = model.dtype_bytes;
  d["bytes_per_chunk"] = model.bytes_per_chunk();
  d["bytes_per_block"] = model.bytes_per_block();
  return d;
}

}  // namespace

KvbmConfig to_config(const py::object& config) {
  if (config.is_none()) return KvbmConfig{};
  if (py::isinstance<KvbmConfig>(config)) return config.cast<KvbmConfig>();
  if (py::isinstance<py::dict>(config)) {
    KvbmConfig out;
    apply_dict(out, config.cast<py::dict>(), "");
    return out;
  }
  if (py::isinstance<py::str>(config) || py::hasattr(config, "__fspath__")) {
    const std::string path = py::str(py::module_::import("os").attr("fspath")(config)).cast<std::string>();
    require_file(path, "config");
    return value_or_throw(KvbmConfig::from_toml_file(path));
  }
  throw py::type_error(absl::StrCat("config must be None, a dict, a TOML file path or a kvbm.Config, got ",
                                    std::string(py::str(py::type::of(config).attr("__name__")))));
}

void bind_config(py::module_& m) {
  py::class_<KvbmConfig>(m, "Config", R"doc(
Everything a KvBlockManager is built from: the model's KV geometry, tiers g1/g2/g3 and offload policy.

Keys are ``section.name`` (``model.page_size``, ``g1.num_blocks``, ``g2.bytes``, ``offload.g1_to_g2``, ...);
``kvbm.config_keys()`` lists them all with their types and allowed values.

>>> cfg = kvbm.Config({"model": {"page_size": 4}, "g1": {"num_blocks": 64}})
>>> cfg.set("g2.num_blocks", 256)
)doc")
      .def(py::init([](const py::object& values) {
             if (values.is_none()) return KvbmConfig{};
             if (!py::isinstance<py::dict>(values)) throw py::type_error("Config(values): values must be a dict");
             KvbmConfig config;
             apply_dict(config, values.cast<py::dict>(), "");
             return config;
           }),
           py::arg("values") = py::none(),
           "Defaults, overridden by a nested dict of keys ({'g1': {'num_blocks': 64}}). ValueError names a bad "
           "key or value.")
      .def_static(
          "from_toml", [](const std::string& text) { return value_or_throw(KvbmConfig::from_toml(text)); },
          py::arg("text"), "Parses TOML text over the defaults (unknown keys are errors).")
      .def_static(
          "from_toml_file",
          [](const std::string& path) {
            require_file(path, "from_toml_file");
            return value_or_throw(KvbmConfig::from_toml_file(path));
          },
          py::arg("path"), "Loads a TOML file over the defaults. KeyError/ValueError when it is missing or bad.")
      .def(
          "set",
          [](KvbmConfig& self, const py::object& key_arg, const py::object& value) {
            const std::string key = arg_str(key_arg, "set", "key");
            check(self.set(key, config_value_text(key, value)));
          },
          py::arg("key"), py::arg("value"), "Sets one key ('g1.num_blocks', 64). ValueError for a bad key or value.")
      .def(
          "update", [](KvbmConfig& self, const py::dict& values) { apply_dict(self, values, ""); }, py::arg("values"),
          "Sets every key of a nested dict.")
      .def(
          "apply_env",
          [](KvbmConfig& self) {
            check(self.apply_env());
            // The text `kvbm replay`, `kvbm plan` and `kvbm config check` print, one warning per name.
            for (const std::string& w : KvbmConfig::unknown_env_warnings()) {
              if (PyErr_WarnEx(PyExc_UserWarning, w.c_str(), 1) != 0) throw py::error_already_set();
            }
          },
          "Applies KVBM_* environment variables over this configuration; warns (UserWarning) about each KVBM_* "
          "name that is not a configuration variable, with the closest one.")
      .def(
          "validate", [](const KvbmConfig& self) { check(self.validate()); },
          "Checks every key; ValueError naming the first bad one.")
      .def("to_toml", &KvbmConfig::to_toml, "The resolved configuration as TOML text.")
      .def_property_readonly(
          "model", [](const KvbmConfig& self) { return model_dict(self.model); },
          "The model's KV geometry as a dict (num_layers, outer_dim, page_size, inner_dim, dtype_bytes, ...).")
      .def(
          "tier_blocks",
          [](const KvbmConfig& self, const std::string& level) {
            check(self.validate());
            return self.tier_blocks(to_level(level));
          },
          py::arg("level"), "A tier's capacity in blocks (0 when not configured).")
      .def("__repr__", [](const KvbmConfig& self) { return "kvbm.Config(\"\"\"\n" + self.to_toml() + "\"\"\")"; });

  m.def(
      "config_keys",
      [] {
        py::list out;
        for (const ConfigKey& k : config_keys()) {
          py::dict d;
          d["key"] = k.key;
          d["env"] = k.env;
          d["type"] = k.type;
          d["allowed"] = k.allowed;
          d["description"] = k.description;
          out.append(d);
        }
        return out;
      },
      "Every configuration key: dicts of key, env, type, allowed and description.");
}

void bind_sequences(py::module_& m) {
  m.def(
      "compute_block_hash",
      [](const py::object& tokens, std::uint64_t salt_hash) {
        return compute_block_hash(token_span(to_tokens(tokens)), SaltHash{salt_hash}).value();
      },
      py::arg("tokens"), py::arg("salt_hash") = 0,
      "xxh3_64 of the tokens as little-endian u32 bytes, seeded with salt_hash (Dynamo-compatible).");
  m.def(
      "compute_sequence_hash",
      [](std::optional<std::uint64_t> parent, std::uint64_t block_hash, std::uint64_t salt_hash) {
        return chain_sequence_hash(parent ? std::optional<SequenceHash>(SequenceHash{*parent}) : std::nullopt,
                                   BlockHash{block_hash}, SaltHash{salt_hash})
            .value();
      },
      py::arg("parent"), py::arg("block_hash"), py::arg("salt_hash") = 0,
      "The sequence hash of a block: its block hash when parent is None, else xxh3_64(parent ‖ block_hash).");
  m.def(
      "compute_salt_hash",
      [](const py::object& salt) {
        if (py::isinstance<py::bytes>(salt)) return compute_salt_hash(std::string(salt.cast<py::bytes>())).value();
        return compute_salt_hash(salt.cast<std::string>()).value();
      },
      py::arg("salt"), "xxh3_64 of the salt's bytes (seed 0); 0 for an empty salt.");
  m.def(
      "derive_salt_hash",
      [](const std::string& salt, const std::string& lora_name) { return derive_salt_hash(salt, lora_name).value(); },
      py::arg("salt") = "", py::arg("lora_name") = "",
      "The salt hash that separates a tenant salt and a LoRA adapter.");

  py::class_<PyTokenBlock>(m, "TokenBlock", "One full block of a TokenBlockSequence: its tokens and hashes.")
      .def(py::init([](std::vector<std::uint32_t> tokens, std::uint64_t block_hash, std::uint64_t sequence_hash,
                       std::optional<std::uint64_t> parent) {
             return PyTokenBlock{std::move(tokens), block_hash, sequence_hash, parent};
           }),
           py::arg("tokens"), py::arg("block_hash"), py::arg("sequence_hash"), py::arg("parent") = py::none())
      .def_readonly("tokens", &PyTokenBlock::tokens)
      .def_readonly("block_hash", &PyTokenBlock::block_hash)
      .def_readonly("sequence_hash", &PyTokenBlock::sequence_hash)
      .def_readonly("parent", &PyTokenBlock::parent, "Sequence hash of the previous block; None for the first.")
      .def("__repr__", [](const PyTokenBlock& b) {
        return absl::StrCat("TokenBlock(sequence_hash=", b.sequence_hash, ", ", b.tokens.size(), " tokens)");
      });

  py::class_<TokenBlockSequence>(m, "TokenBlockSequence", R"doc(
The tokens of one request split into full blocks of page_size tokens, with block and sequence hashes,
plus a partial tail. Not thread-safe: one sequence belongs to one request.
)doc")
      .def(py::init([](std::uint32_t page_size, const py::object& tokens, const py::object& salt) {
             return value_or_throw(
                 TokenBlockSequence::create(page_size, to_salt_hash(salt), token_span(to_tokens(tokens))));
           }),
           py::arg("page_size"), py::arg("tokens") = py::list(), py::arg("salt") = py::none(),
           "salt: None, an int salt hash, or str/bytes to hash. ValueError for page_size 0.")
      .def(
          "append",
          [](TokenBlockSequence& self, const py::object& tokens) { self.append(token_span(to_tokens(tokens))); },
          py::arg("tokens"), "Appends token ids (an int sequence or array); full blocks are hashed as they fill.")
      .def(
          "append_token", [](TokenBlockSequence& self, std::uint32_t token) { self.append(token); }, py::arg("token"))
      .def("pop", &TokenBlockSequence::pop, py::arg("count") = 1, "Removes the last count tokens.")
      .def("truncate", &TokenBlockSequence::truncate, py::arg("length"), "Keeps the first length tokens.")
      .def_property_readonly("page_size", &TokenBlockSequence::page_size)
      .def_property_readonly("salt_hash", [](const TokenBlockSequence& s) { return s.salt_hash().value(); })
      .def_property_readonly("num_tokens", &TokenBlockSequence::num_tokens)
      .def_property_readonly("num_full_blocks", &TokenBlockSequence::num_full_blocks)
      .def("__len__", &TokenBlockSequence::num_tokens)
      .def_property_readonly(
          "tokens",
          [](const TokenBlockSequence& s) {
            auto t = s.tokens();
            return py::array_t<std::uint32_t>(static_cast<py::ssize_t>(t.size()), t.data());
          },
          "A copy of the tokens (uint32 array).")
      .def_property_readonly(
          "partial_tokens",
          [](const TokenBlockSequence& s) {
            auto t = s.partial_tokens();
            return py::array_t<std::uint32_t>(static_cast<py::ssize_t>(t.size()), t.data());
          },
          "Tokens after the last full block.")
      .def_property_readonly(
          "sequence_hashes",
          [](const TokenBlockSequence& s) {
            std::vector<std::uint64_t> out;
            for (SequenceHash h : s.sequence_hashes()) out.push_back(h.value());
            return out;
          },
          "Sequence hashes of the full blocks, in order: what match() takes.")
      .def_property_readonly("block_hashes",
                             [](const TokenBlockSequence& s) {
                               std::vector<std::uint64_t> out;
                               for (BlockHash h : s.block_hashes()) out.push_back(h.value());
                               return out;
                             })
      .def(
          "block",
          [](const TokenBlockSequence& s, std::size_t i) {
            if (i >= s.num_full_blocks()) {
              throw py::index_error(
                  absl::StrCat("block ", i, " of a sequence with ", s.num_full_blocks(), " full blocks"));
            }
            return to_py_block(s.block(i));
          },
          py::arg("index"), "The i-th full block (IndexError past the end).")
      .def(
          "blocks",
          [](const TokenBlockSequence& s) {
            std::vector<PyTokenBlock> out;
            for (const TokenBlock& b : s.blocks()) out.push_back(to_py_block(b));
            return out;
          },
          "Every full block.")
      .def("__repr__", [](const TokenBlockSequence& s) {
        return absl::StrCat("TokenBlockSequence(page_size=", s.page_size(), ", num_tokens=", s.num_tokens(),
                            ", num_full_blocks=", s.num_full_blocks(), ")");
      });
}

}  // namespace kvbm::python

PYBIND11_MODULE(_kvbm, m) {  // kvbm._kvbm: python/kvbm/__init__.py re-exports it
  namespace kp = kvbm::python;
  m.doc() = R"doc(
kvbm: a KV-cache block manager for LLM inference.

KvBlockManager owns tiers of KV blocks — G1 (device memory, or system memory without a GPU), optional G2
(host memory) and G3 (local disk) — and moves registered blocks down in the background and back up on
demand. Block memory is exposed without copies as NumPy arrays and DLPack tensors.

Errors raise by kvbm status code: ValueError (invalid argument, out of range), MemoryError (resource
exhausted), KeyError (not found), OSError (data loss, unavailable), RuntimeError (failed precondition,
internal, others), each with kvbm's message.
)doc";
  m.attr("__version__") = "0.1.0";
  kp::bind_config(m);
  kp::bind_sequences(m);
  kp::bind_blocks(m);
  kp::bind_manager(m);
  kp::bind_eviction(m);
  kp::bind_replay(m);
  // kvbm's threads must stop calling into Python before the interpreter goes away.
  pybind11::module_::import("atexit").attr("register")(pybind11::cpp_function([] { kp::g_finalizing = true; }));
}
