// KvBlockManager, MatchResult and OnboardOperation, and the event callback.
#include <absl/strings/str_cat.h>

#include <chrono>
#include <unordered_set>

#include "bindings.h"
#include "kvbm/events/events_from_config.h"
#include "kvbm/remote/remote_store.h"

namespace kvbm::python {

ManagerState::~ManagerState() {
  // The manager's threads (offload, onboard, the event publisher) are joined here; the publisher may be
  // waiting for the GIL to deliver an event, so the GIL must not be held while joining.
  if (PyGILState_Check() != 0) {
    py::gil_scoped_release nogil;
    kvbm.reset();
    events.reset();
  } else {
    kvbm.reset();
    events.reset();
  }
}

namespace {

struct PyManager {
  StatePtr state;
  KvBlockManager& kvbm() const { return *state->kvbm; }
};

struct PyMatchResult {
  StatePtr state;
  MatchResult match;
};

struct PyOnboard {
  StatePtr state;
  std::shared_ptr<OnboardOperation> op;
};

py::object optional_int(const std::optional<std::uint64_t>& v) {
  return v ? py::object(py::int_(*v)) : py::object(py::none());
}
py::object optional_str(const std::optional<std::string>& v) {
  return v ? py::object(py::str(*v)) : py::object(py::none());
}

// One event as the dict on_event receives: type "stored" | "removed" | "cleared".
py::dict event_dict(const KvEvent& event) {
  py::dict d;
  if (const auto* s = std::get_if<BlockStoredEvent>(&event)) {
    d["type"] = "stored";
    d["block_hashes"] = s->block_hashes;
    d["parent"] = optional_int(s->parent_block_hash);
    d["tokens"] = s->token_ids;
    d["block_size"] = s->block_size;
    d["medium"] = optional_str(s->medium);
  } else if (const auto* r = std::get_if<BlockRemovedEvent>(&event)) {
    d["type"] = "removed";
    d["block_hashes"] = r->block_hashes;
    d["medium"] = optional_str(r->medium);
  } else {
    d["type"] = "cleared";
  }
  return d;
}

// Called on the EventManager's publisher thread with each batch.
void deliver(PyObject* callback, const EventBatch& batch) {
  if (g_finalizing.load() || Py_IsInitialized() == 0) return;
  py::gil_scoped_acquire gil;
  if (g_finalizing.load()) return;
  const py::handle fn(callback);
  for (const KvEvent& event : batch.events) {
    try {
      fn(event_dict(event));
    } catch (py::error_already_set& e) {
      // An exception must not escape into kvbm's thread: report it as Python reports errors in __del__.
      e.discard_as_unraisable("kvbm on_event callback");
    }
  }
}

StatePtr make_state(const py::object& config, const py::object& on_event) {
  KvbmConfig cfg = to_config(config);
  auto state = std::make_shared<ManagerState>();
  state->on_event = on_event;
  std::vector<std::unique_ptr<EventPublisher>> publishers;
  if (!on_event.is_none()) {
    if (PyCallable_Check(on_event.ptr()) == 0)
      throw_arg_type("KvBlockManager", "on_event", "callable or None", on_event);
    // The callback is owned by the state (destroyed with the GIL held); the publisher borrows it.
    PyObject* callback = on_event.ptr();
    publishers.push_back(std::make_unique<CallbackPublisher>(
        [callback](const EventBatch& batch) { deliver(callback, batch); }, "python"));
  }
  // The events.* keys (ZMQ, NATS) and the callback: one pipeline, so every publisher sees the same batches.
  if (!publishers.empty() || cfg.events.enabled()) {
    EventManagerOptions options;
    options.max_batch_delay = std::chrono::milliseconds(1);
    state->events = value_or_throw(make_event_manager(cfg.events, std::move(publishers), options));
  }
  absl::StatusOr<std::unique_ptr<KvBlockManager>> kvbm;
  {
    py::gil_scoped_release nogil;  // allocating and pre-faulting tiers can take a while
    kvbm = KvBlockManager::create(cfg, state->events.get());
  }
  state->kvbm = value_or_throw(std::move(kvbm));
  return state;
}

template <typename Stats>
py::dict offload_dict(const Stats& s) {
  py::dict d;
  d["g1_to_g2"] = s.g1_to_g2;
  d["g2_to_g3"] = s.g2_to_g3;
  d["g2_to_g1"] = s.g2_to_g1;
  d["g3_to_g1"] = s.g3_to_g1;
  d["g3_to_g2"] = s.g3_to_g2;
  d["bytes_down"] = s.bytes_down;
  d["bytes_up"] = s.bytes_up;
  d["skipped_present"] = s.skipped_present;
  d["skipped_evicted"] = s.skipped_evicted;
  d["dropped_queue_full"] = s.dropped_queue_full;
  d["filtered_frequency"] = s.filtered_frequency;
  d["no_space"] = s.no_space;
  d["transfer_failures"] = s.transfer_failures;
  d["checksum_failures"] = s.checksum_failures;
  d["dropped_damaged"] = s.dropped_damaged;
  d["deadline_misses"] = s.deadline_misses;
  d["onboard_truncated"] = s.onboard_truncated;
  d["write_back_blocks"] = s.write_back_blocks;
  d["copied_at_eviction"] = s.copied_at_eviction;
  d["copied_by_producer"] = s.copied_by_producer;
  // G4 (remote): blocks put from G2 and onboarded into G1, then the remote path's own counters.
  d["g2_to_g4"] = s.links[static_cast<int>(CacheLevel::kG4)].written;
  d["g4_to_g1"] = s.g4_to_g1;
  py::dict g4;
  g4["health"] = std::string(remote_health_name(s.g4.health));
  g4["put"] = s.g4.g2_to_g4;
  g4["fetched"] = s.g4.g4_to_g2;
  g4["put_bytes"] = s.g4.put_bytes;
  g4["fetch_bytes"] = s.g4.fetch_bytes;
  g4["lookups"] = s.g4.lookups;
  g4["hits"] = s.g4.hits;
  g4["misses"] = s.g4.misses;
  g4["put_failed"] = s.g4.put_failed;
  g4["put_dropped"] = s.g4.put_dropped;
  g4["unavailable"] = s.g4.unavailable;
  g4["deadline_missed"] = s.g4.deadline_missed;
  g4["fetch_truncated"] = s.g4.fetch_truncated;
  g4["fetch_corrupt"] = s.g4.fetch_corrupt;
  d["g4"] = std::move(g4);
  return d;
}

// Waits for `op` with the GIL released, taking it back every kSignalCheck to run Python's signal handlers:
// Ctrl-C (or any handler that raises) ends the wait with that exception, at most kSignalCheck later, while
// the onboarding itself goes on in the background (its blocks are released when nobody takes them).
void wait_interruptibly(const OnboardOperation& op) {
  constexpr std::chrono::milliseconds kSignalCheck{50};
  for (;;) {
    bool done = false;
    {
      py::gil_scoped_release nogil;
      done = op.wait_until(std::chrono::steady_clock::now() + kSignalCheck);
    }
    if (done) return;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

// Moves the handles of `blocks` out of their Python owners (all of this manager, no duplicates).
std::vector<G1MutableBlock> take_mutable(const PyManager& self, const std::vector<PyMutableBlock*>& blocks) {
  std::unordered_set<const PyMutableBlock*> seen;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i]->state.get() != self.state.get()) {
      throw py::value_error(absl::StrCat("register_blocks: block ", i, " belongs to another manager"));
    }
    if (!seen.insert(blocks[i]).second) {
      throw py::value_error(absl::StrCat("register_blocks: block ", i, " appears twice"));
    }
  }
  std::vector<G1MutableBlock> out;
  out.reserve(blocks.size());
  for (PyMutableBlock* b : blocks) out.push_back(std::move(b->block));
  return out;
}

constexpr const char* kHashesDoc = "hashes: sequence hashes (ints or a uint64 array), e.g. seq.sequence_hashes.";

}  // namespace

void bind_manager(py::module_& m) {
  py::class_<PyMatchResult>(m, "MatchResult", R"doc(
The longest cached prefix of a request across tiers: G1 blocks first, then G2, then G3. Holding it pins every
block in it; onboard() consumes it; release() or leaving a ``with`` block drops it.
)doc")
      .def_property_readonly("num_g1", [](const PyMatchResult& r) { return r.match.g1.size(); })
      .def_property_readonly("num_g2", [](const PyMatchResult& r) { return r.match.g2.size(); })
      .def_property_readonly("num_g3", [](const PyMatchResult& r) { return r.match.g3.size(); })
      .def("__len__", [](const PyMatchResult& r) { return r.match.size(); })
      .def_property_readonly(
          "g1",
          [](const PyMatchResult& r) {
            std::vector<G1Block> copies(r.match.g1.begin(), r.match.g1.end());
            return wrap_blocks(r.state, std::move(copies));
          },
          "New references to the matched G1 blocks.")
      .def(
          "release", [](PyMatchResult& r) { r.match = MatchResult{}; }, "Drops every block of the match.")
      .def("__enter__", [](const py::object& self) { return self; })
      .def("__exit__",
           [](PyMatchResult& r, const py::args&) {
             r.match = MatchResult{};
             return false;
           })
      .def("__repr__", [](const PyMatchResult& r) {
        return absl::StrCat("MatchResult(g1=", r.match.g1.size(), ", g2=", r.match.g2.size(),
                            ", g3=", r.match.g3.size(), ")");
      });

  py::class_<PyOnboard>(m, "OnboardOperation", "Blocks of a match being copied into G1 in the background.")
      .def(
          "done", [](const PyOnboard& o) { return o.op->done(); }, "Whether the onboarding has finished.")
      .def(
          "wait",
          [](PyOnboard& o) {
            wait_interruptibly(*o.op);
            absl::StatusOr<std::vector<G1Block>> result = o.op->wait();  // done: returns at once
            return wrap_blocks(o.state, value_or_throw(std::move(result)));
          },
          "Blocks (GIL released) until done; returns the G1 blocks of the prefix that was made resident (the "
          "match's G1 blocks, then the onboarded ones). Only once: RuntimeError after. Signal handlers run while "
          "it waits: KeyboardInterrupt (or whatever a handler raises) ends the wait, not the onboarding, and "
          "wait() may be called again.")
      .def_property_readonly(
          "latency_seconds", [](const PyOnboard& o) { return o.op->latency_seconds(); },
          "Seconds from onboard() to completion (once done).");

  py::class_<PyManager>(m, "KvBlockManager", R"doc(
KV-cache block manager: tiers G1 (and optionally G2 host memory, G3 disk), with background offload and
onboarding. Every method may be called from any Python thread; blocking calls release the GIL.

config: None (defaults), a dict of keys ({"model": {"page_size": 4}, "g1": {"num_blocks": 64}}), a TOML file
path or a kvbm.Config. on_event: a callable receiving each KV event as a dict (type "stored" | "removed" |
"cleared", block_hashes, parent, tokens, block_size, medium), called on kvbm's event thread.

Handles (blocks, matches, views) keep the manager alive; it shuts down when the last of them is gone.
)doc")
      .def(py::init([](const py::object& config, const py::object& on_event) {
             return PyManager{make_state(config, on_event)};
           }),
           py::arg("config") = py::none(), py::arg("on_event") = py::none())
      .def_property_readonly("config", [](const PyManager& s) { return s.kvbm().config(); })
      .def_property_readonly("page_size", [](const PyManager& s) { return s.kvbm().page_size(); })
      .def_property_readonly("model", [](const PyManager& s) { return py::cast(s.kvbm().config()).attr("model"); })
      .def_property_readonly(
          "layout", [](const PyManager& s) { return s.kvbm().g1_layout().name(); }, "G1's layout name.")
      .def(
          "has_tier",
          [](const PyManager& s, const py::object& level) {
            return s.kvbm().has_tier(to_level(arg_str(level, "has_tier", "level")));
          },
          py::arg("level"))
      .def(
          "make_sequence",
          [](const PyManager& s, const py::object& tokens, const py::object& salt) {
            return value_or_throw(s.kvbm().make_sequence(token_span(to_tokens(tokens)), to_salt_hash(salt)));
          },
          py::arg("tokens"), py::arg("salt") = py::none(),
          "A TokenBlockSequence of this manager's page size. salt: None, an int salt hash, or str/bytes.")
      .def(
          "allocate",
          [](const PyManager& s, const py::object& count_arg) {
            const std::uint64_t count = arg_count(count_arg, "allocate", "count");
            absl::StatusOr<std::vector<G1MutableBlock>> blocks;
            {
              py::gil_scoped_release nogil;
              blocks = s.kvbm().allocate(count);
            }
            py::list out;
            for (G1MutableBlock& b : value_or_throw(std::move(blocks))) {
              out.append(py::cast(PyMutableBlock{s.state, std::move(b)}));
            }
            return out;
          },
          py::arg("count"),
          "`count` fresh G1 MutableBlocks, all or nothing: MemoryError when fewer can be had (every block held).")
      .def(
          "register_blocks",
          [](const PyManager& s, const py::object& blocks_arg) {
            const std::vector<PyMutableBlock*> blocks =
                arg_list_of<PyMutableBlock>(blocks_arg, "register_blocks", "blocks", "MutableBlock");
            std::vector<G1MutableBlock> handles = take_mutable(s, blocks);
            absl::StatusOr<std::vector<G1Block>> registered;
            {
              py::gil_scoped_release nogil;
              registered = s.kvbm().register_blocks(handles);
            }
            if (!registered.ok()) {
              // All or nothing: the handles are unchanged; give them back.
              for (std::size_t i = 0; i < blocks.size(); ++i) blocks[i]->block = std::move(handles[i]);
              throw_status(registered.status());
            }
            return wrap_blocks(s.state, *std::move(registered));
          },
          py::arg("blocks"),
          "Registers complete MutableBlocks (consumed) and returns one ImmutableBlock each (the block already "
          "registered under the same hash when there is one). ValueError naming the first incomplete block.")
      .def(
          "match",
          [](const PyManager& s, const py::object& hashes) {
            std::vector<SequenceHash> h = to_hashes(arg_hashes(hashes, "match"));
            MatchResult match;
            {
              py::gil_scoped_release nogil;
              match = s.kvbm().match(h);
            }
            return PyMatchResult{s.state, std::move(match)};
          },
          py::arg("hashes"),
          (std::string("The longest cached prefix across tiers, as a MatchResult. ") + kHashesDoc).c_str())
      .def(
          "match_g1",
          [](const PyManager& s, const py::object& hashes) {
            std::vector<SequenceHash> h = to_hashes(arg_hashes(hashes, "match_g1"));
            return wrap_blocks(s.state, s.kvbm().match_g1(h));
          },
          py::arg("hashes"), "The longest prefix cached in G1, as ImmutableBlocks.")
      .def(
          "onboard",
          [](const PyManager& s, const py::object& match_arg) {
            PyMatchResult& match = arg_of<PyMatchResult>(match_arg, "onboard", "match", "MatchResult");
            if (match.state.get() != s.state.get()) throw py::value_error("onboard: the match is of another manager");
            std::shared_ptr<OnboardOperation> op;
            {
              MatchResult taken = std::move(match.match);
              match.match = MatchResult{};
              py::gil_scoped_release nogil;
              op = s.kvbm().onboard(std::move(taken));
            }
            return PyOnboard{s.state, std::move(op)};
          },
          py::arg("match"), "Copies the match's G2/G3 blocks into G1 in the background (consumes the match).")
      .def(
          "match_and_onboard",
          [](const PyManager& s, const py::object& hashes) {
            std::vector<SequenceHash> h = to_hashes(arg_hashes(hashes, "match_and_onboard"));
            std::shared_ptr<OnboardOperation> op;
            {
              py::gil_scoped_release nogil;
              op = s.kvbm().onboard(s.kvbm().match(h));
            }
            wait_interruptibly(*op);
            return wrap_blocks(s.state, value_or_throw(op->wait()));
          },
          py::arg("hashes"),
          "match + onboard + wait (GIL released, signal handlers run while it waits): G1 ImmutableBlocks of the "
          "cached prefix.")
      .def(
          "touch",
          [](const PyManager& s, const py::object& hashes) {
            std::vector<SequenceHash> h = to_hashes(arg_hashes(hashes, "touch"));
            return s.kvbm().touch(h);
          },
          py::arg("hashes"), "Marks inactive G1 blocks as just used; returns how many were found.")
      .def(
          "release",
          [](const PyManager& s, const py::object& blocks_arg) {
            const std::vector<PyImmutableBlock*> blocks =
                arg_list_of<PyImmutableBlock>(blocks_arg, "release", "blocks", "ImmutableBlock", true);
            std::vector<G1Block> handles;
            // All or nothing: a block released twice is the caller's bug, said before anything is dropped.
            for (std::size_t i = 0; i < blocks.size(); ++i) {
              const PyImmutableBlock* b = blocks[i];
              if (b != nullptr && b->state.get() == s.state.get() && !b->block.valid()) {
                PyErr_SetString(PyExc_RuntimeError,
                                absl::StrCat("release: blocks[", i, "] was already released").c_str());
                throw py::error_already_set();
              }
            }
            for (PyImmutableBlock* b : blocks) {
              if (b != nullptr && b->state.get() == s.state.get()) handles.push_back(std::move(b->block));
            }
            s.kvbm().release(std::move(handles));
          },
          py::arg("blocks"),
          "Releases many ImmutableBlocks at once, last first (a chain's tail evicts first). Blocks of "
          "another manager, or None, are left as they are; RuntimeError (nothing released) when one of "
          "this manager's blocks was released already.")
      .def(
          "downgrade",
          [](const PyManager& s, const py::object& block) {
            const PyImmutableBlock& b = arg_of<PyImmutableBlock>(block, "downgrade", "block", "ImmutableBlock");
            if (!b.block.valid()) throw py::value_error("downgrade: the ImmutableBlock was released");
            return PyWeakBlock{s.state, s.kvbm().g1().downgrade(b.block)};
          },
          py::arg("block"), "A WeakBlock: names the block without pinning it.")
      .def(
          "reset",
          [](const PyManager& s) {
            absl::Status status;
            {
              py::gil_scoped_release nogil;
              status = s.kvbm().reset();
            }
            check(status);
          },
          "Drops every registration in every tier. RuntimeError while blocks are held.")
      .def(
          "flush",
          [](const PyManager& s) {
            py::gil_scoped_release nogil;
            s.kvbm().flush();
            if (s.state->events) s.state->events->flush();
          },
          "Waits (GIL released) until queued offloads and onboardings are done and their events delivered.")
      .def(
          "status",
          [](const PyManager& s, const py::object& level) {
            return status_dict(s.kvbm().status(to_level(arg_str(level, "status", "level"))));
          },
          py::arg("level") = "g1", "A tier's block counts: dict of active, inactive, free, owned.")
      .def(
          "offload_stats", [](const PyManager& s) { return offload_dict(s.kvbm().offload_stats()); },
          "Offload/onboard counters since creation.")
      .def(
          "transfer_stats",
          [](const PyManager& s) {
            const TransferStats t = s.kvbm().transfer_stats();
            py::dict d;
            d["batches"] = t.batches;
            d["blocks_ok"] = t.blocks_ok;
            d["blocks_failed"] = t.blocks_failed;
            d["bytes"] = t.bytes;
            d["checksum_failures"] = t.checksum_failures;
            d["io_errors"] = t.io_errors;
            return d;
          },
          "Transfer engine counters since creation.")
      .def(
          "event_stats",
          [](const PyManager& s) {
            py::dict d;
            if (s.state->events) {
              const EventManagerStats e = s.state->events->stats();
              d["sent"] = e.sent;
              d["dropped"] = e.dropped;
              d["batches"] = e.batches;
              d["publish_errors"] = e.publish_errors;
            }
            return d;
          },
          "Event counters (empty without on_event).")
      .def("__repr__", [](const PyManager& s) {
        return absl::StrCat("KvBlockManager(page_size=", s.kvbm().page_size(),
                            ", g1_blocks=", s.kvbm().config().g1_blocks(),
                            ", g2=", s.kvbm().has_tier(CacheLevel::kG2) ? "True" : "False",
                            ", g3=", s.kvbm().has_tier(CacheLevel::kG3) ? "True" : "False",
                            ", g4=", s.kvbm().has_tier(CacheLevel::kG4) ? "True" : "False", ")");
      });
}

}  // namespace kvbm::python
