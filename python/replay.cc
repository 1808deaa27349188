// kvbm.replay(): `kvbm replay` as a function returning the JSON report as a dict.
#include <absl/strings/str_cat.h>

#include "bindings.h"
#include "kvbm/pool/eviction_policy.h"
#include "kvbm/replay/generator.h"
#include "kvbm/replay/replay.h"

namespace kvbm::python {
namespace {

// One in-memory request: a list of hash ids, or a dict with "hash_ids" (Mooncake keys).
TraceRequest to_request(const py::handle& item, std::uint32_t block_tokens, std::size_t index) {
  TraceRequest r;
  py::object ids;
  std::string ids_name = absl::StrCat("trace[", index, "]");
  if (py::isinstance<py::dict>(item)) {
    py::dict d = py::reinterpret_borrow<py::dict>(item);
    if (!d.contains("hash_ids")) throw py::value_error(absl::StrCat("trace[", index, "]: a dict needs \"hash_ids\""));
    ids = d["hash_ids"];
    ids_name += "[\"hash_ids\"]";
    if (d.contains("timestamp")) {
      const py::object t = d["timestamp"];
      if (!py::isinstance<py::float_>(t) && (!py::isinstance<py::int_>(t) || py::isinstance<py::bool_>(t))) {
        throw_arg_type("replay", absl::StrCat("trace[", index, "][\"timestamp\"]"), "a number (ms)", t);
      }
      r.timestamp_ms = t.cast<double>();
    }
    const std::string output = absl::StrCat("trace[", index, "][\"output_length\"]");
    const std::string input = absl::StrCat("trace[", index, "][\"input_length\"]");
    if (d.contains("output_length")) r.output_tokens = arg_count(d["output_length"], "replay", output.c_str());
    if (d.contains("input_length")) r.input_tokens = arg_count(d["input_length"], "replay", input.c_str());
  } else {
    ids = py::reinterpret_borrow<py::object>(item);
  }
  for (const SequenceHash h : to_hashes(arg_hashes(ids, "replay", ids_name.c_str()))) r.blocks.push_back(h);
  if (r.input_tokens == 0) r.input_tokens = r.blocks.size() * std::uint64_t{block_tokens};
  return r;
}

// Applies replay's `eviction` argument: None leaves the configuration's policies; a name sets G1-G3 (or
// "optimal", the offline optimum); a class is registered for this replay and set on G1-G3.
std::unique_ptr<PythonPolicyRegistration> apply_eviction(const py::object& eviction, bool data,
                                                         ReplayOptions& options) {
  if (eviction.is_none()) return nullptr;
  std::unique_ptr<PythonPolicyRegistration> policy;
  EvictionPolicySpec spec;
  if (py::isinstance<py::str>(eviction)) {
    const std::string name = eviction.cast<std::string>();
    if (name == "optimal") {
      options.optimal = true;
      return nullptr;
    }
    absl::StatusOr<EvictionPolicySpec> parsed = parse_eviction_policy_spec(name);
    if (!parsed.ok()) {
      throw py::value_error(absl::StrCat("eviction must be one of ", eviction_policy_choices(),
                                         ", \"optimal\", or a Python policy class; got '", name, "'"));
    }
    spec = *parsed;
  } else if (PyType_Check(eviction.ptr()) != 0) {
    if (data) {
      throw py::value_error(
          "eviction: a Python policy class runs only in a metadata replay (data=False): with data=True the tier "
          "chain calls eviction hooks from background threads under pool locks, where a hook must not wait for "
          "the GIL");
    }
    policy = std::make_unique<PythonPolicyRegistration>(eviction);
    spec = EvictionPolicySpec::user(policy->registered_name());
  } else {
    throw py::type_error(absl::StrCat("eviction must be None, a policy name (str) or a policy class, got ",
                                      std::string(py::str(py::type::of(eviction).attr("__name__")))));
  }
  for (TierConfig* t : {&options.config.g1, &options.config.g2, &options.config.g3}) t->eviction = spec;
  return policy;
}

// Reports name a Python policy by its display name, not the name it was registered under for the run.
void rename_policy(ReplayReport& report, const PythonPolicyRegistration& policy) {
  if (report.eviction == policy.registered_name()) report.eviction = policy.display_name();
  for (TierReport& t : report.tiers) {
    if (t.eviction == policy.registered_name()) t.eviction = policy.display_name();
  }
}

}  // namespace

void bind_replay(py::module_& m) {
  m.def(
      "replay",
      [](const py::object& trace, const py::object& config, const py::object& data_arg, const py::object& eviction,
         const py::object& format_arg, const py::object& block_tokens_arg, const py::object& workload_arg,
         const py::object& requests_arg, const py::object& seed_arg, const py::object& unlimited_g1,
         const py::object& flush_between) {
        // Every argument checked here, each TypeError naming it (pybind11's would list C++ types).
        const bool is_path = py::isinstance<py::str>(trace) || py::hasattr(trace, "__fspath__");
        if (!trace.is_none() && !is_path && !is_item_iterable(trace)) {
          throw_arg_type("replay", "trace", "None, a JSONL path or a list of requests", trace);
        }
        const bool data = arg_bool(data_arg, "replay", "data");
        std::optional<std::string> format;
        if (!format_arg.is_none()) format = arg_str(format_arg, "replay", "format");
        const std::optional<std::uint64_t> block_tokens64 =
            arg_optional_count(block_tokens_arg, "replay", "block_tokens");
        if (block_tokens64 && (*block_tokens64 == 0 || *block_tokens64 > ModelConfig::kMaxPageSize)) {
          throw py::value_error(absl::StrCat("replay(): block_tokens must be in [1, ", ModelConfig::kMaxPageSize,
                                             "], got ", *block_tokens64));
        }
        const std::optional<std::uint32_t> block_tokens =
            block_tokens64 ? std::optional<std::uint32_t>(static_cast<std::uint32_t>(*block_tokens64)) : std::nullopt;
        const std::string workload = arg_str(workload_arg, "replay", "workload");
        const std::optional<std::uint64_t> requests = arg_optional_count(requests_arg, "replay", "requests");
        const std::optional<std::uint64_t> seed = arg_optional_count(seed_arg, "replay", "seed");
        ReplayOptions options;
        options.data = data;
        options.config = to_config(config);
        options.unlimited_g1 = arg_bool(unlimited_g1, "replay", "unlimited_g1");
        options.flush_between = arg_bool(flush_between, "replay", "flush_between");
        // Registered until this returns or raises.
        const std::unique_ptr<PythonPolicyRegistration> policy = apply_eviction(eviction, data, options);

        std::unique_ptr<TraceReader> reader;
        if (trace.is_none()) {
          WorkloadOptions w = value_or_throw(workload_preset(workload));
          if (requests) w.num_requests = *requests;
          if (seed) w.seed = *seed;
          if (block_tokens) w.block_tokens = *block_tokens;
          check(validate_workload(w));
          options.block_tokens = w.block_tokens != 0 ? w.block_tokens : kDefaultHashBlockTokens;
          options.trace_name = absl::StrCat("generated:", workload);
          reader = generate_trace(w);
        } else if (is_path) {
          const std::string path = py::str(py::module_::import("os").attr("fspath")(trace)).cast<std::string>();
          require_file(path, "trace");
          // Detection reads the first line of the same stream the reader goes on with (a FIFO is read once).
          TraceOptions t;
          if (!format) {
            OpenedTrace opened = value_or_throw(open_trace_detect(path, block_tokens));
            t = opened.options;
            reader = std::move(opened.reader);
          } else if (*format == "mooncake") {
            t.format = TraceFormat::kMooncake;
          } else if (*format == "tokens") {
            t.format = TraceFormat::kTokens;
          } else {
            throw py::value_error(absl::StrCat("format must be 'mooncake', 'tokens' or None, got '", *format, "'"));
          }
          if (!reader) {
            t.block_tokens = block_tokens.value_or(t.format == TraceFormat::kTokens ? kDefaultTokenBlockTokens
                                                                                    : kDefaultHashBlockTokens);
            reader = value_or_throw(open_trace(path, t));
          }
          options.block_tokens = t.block_tokens;
          options.trace_name = path;
        } else {
          options.block_tokens = block_tokens.value_or(kDefaultHashBlockTokens);
          std::vector<TraceRequest> list;
          std::size_t i = 0;
          for (const py::handle item : trace) list.push_back(to_request(item, options.block_tokens, i++));
          options.trace_name = absl::StrCat("python (", list.size(), " requests)");
          reader = make_vector_trace(std::move(list));
        }

        absl::StatusOr<ReplayReport> report;
        {
          PolicyStopTrace stoppable(*reader, policy.get());
          py::gil_scoped_release nogil;
          report = run_replay(stoppable, options);
        }
        if (policy) policy->raise_if_failed();
        ReplayReport r = value_or_throw(std::move(report));
        if (policy) rename_policy(r, *policy);
        const std::string json = format_report_json(r);
        return py::module_::import("json").attr("loads")(json);
      },
      py::arg("trace") = py::none(), py::arg("config") = py::none(), py::kw_only(), py::arg("data") = true,
      py::arg("eviction") = py::none(), py::arg("format") = py::none(), py::arg("block_tokens") = py::none(),
      py::arg("workload") = "default", py::arg("requests") = py::none(), py::arg("seed") = py::none(),
      py::arg("unlimited_g1") = false, py::arg("flush_between") = false, R"doc(
Replays a request trace through a cache and returns the report (the JSON of `kvbm replay --json`) as a dict.

trace: None (a generated workload: `workload` preset, `requests`, `seed`), a JSONL path (Mooncake or token
format, detected unless `format` says), or a list of requests, each a list of block hash ids or a dict with
"hash_ids" (and optionally "timestamp", "input_length", "output_length"). config: tiers, model and offload
policy (None, dict, TOML path or Config). data=False replays identities only: every tier, no bytes, the same
hits as data=True (README "Replay semantics"). flush_between is accepted and changes nothing.
eviction: None (the config's policies), a policy name for G1, G2 and G3 ("lru", "adaptive", ..., a
registered one, or "optimal"), or a Python policy class (data=False only): cls(capacity) is made for
each pool and called with insert(block_id, info), erase(block_id), touch(block_id), evict() -> int | None
and optionally pin, unpin, set_leaf, name, uses_lineage, uses_depth and pins_keep_state
(docs/custom_eviction.md). An
exception in a hook stops the replay and is raised here. Each tier's "policy_violations" counts the
victims a policy named outside its set (overruled: LRU evicted instead).
The GIL is released while it runs; a Python policy's hooks take it.
)doc");
}

}  // namespace kvbm::python
