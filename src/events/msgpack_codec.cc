// msgpack encoding and decoding of event batches (specs/kv-events-wire-format.md).
//
// Encoding writes the map form with msgpack::packer straight into a std::string (integer arrays by hand,
// the same bytes: pack_uints). Decoding unpacks with limits derived from the payload size (no container
// can declare more elements than there are bytes left, so a hostile header cannot make the unpacker
// allocate gigabytes), then walks the object tree by hand, checking every type. msgpack-cxx reports
// malformed input by throwing; every exception is caught here and turned into InvalidArgument.
#include "kvbm/events/msgpack_codec.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include <bit>
#include <cstdint>
#include <exception>
#include <limits>
#include <msgpack.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace kvbm {
namespace {

// ---- encoding ----

// The Stream msgpack::packer writes into.
struct StringSink {
  std::string* out;
  void write(const char* data, std::size_t size) { out->append(data, size); }
};
using Packer = msgpack::packer<StringSink>;

void pack_str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void pack_optional_str(Packer& pk, const std::optional<std::string>& s) {
  if (s) {
    pack_str(pk, *s);
  } else {
    pk.pack_nil();
  }
}

// An array of unsigned integers, each in msgpack's smallest encoding — the bytes msgpack::packer's
// pack_uint32 / pack_uint64 write (positive fixint, then uint 8, 16, 32, 64; unsigned also for values
// ≥ 2^63) — but written straight into the string: one resize per array instead of an append per
// element, which was most of the cost of encoding a BlockStored event's token ids.
template <typename T>
void pack_uints(Packer& pk, std::string& out, const std::vector<T>& values) {
  static_assert(std::is_unsigned_v<T> && sizeof(T) <= 8);
  pk.pack_array(static_cast<std::uint32_t>(values.size()));
  const std::size_t at = out.size();
  out.resize(at + values.size() * (1 + sizeof(T)));
  char* p = out.data() + at;
  const auto put_be = [&p](std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) *p++ = static_cast<char>(v >> (8 * i));
  };
  for (const T value : values) {
    const std::uint64_t v = value;
    if (v < 0x80) {
      *p++ = static_cast<char>(v);
    } else if (v < 0x100) {
      *p++ = static_cast<char>(0xcc);
      put_be(v, 1);
    } else if (v < 0x10000) {
      *p++ = static_cast<char>(0xcd);
      put_be(v, 2);
    } else if (v < 0x100000000) {
      *p++ = static_cast<char>(0xce);
      put_be(v, 4);
    } else {
      *p++ = static_cast<char>(0xcf);
      put_be(v, 8);
    }
  }
  out.resize(static_cast<std::size_t>(p - out.data()));
}

void pack_event(Packer& pk, std::string& out, const BlockStoredEvent& e) {
  pk.pack_map(8);
  pack_str(pk, "type");
  pack_str(pk, "BlockStored");
  pack_str(pk, "block_hashes");
  pack_uints(pk, out, e.block_hashes);
  pack_str(pk, "parent_block_hash");
  if (e.parent_block_hash) {
    pk.pack_uint64(*e.parent_block_hash);
  } else {
    pk.pack_nil();
  }
  pack_str(pk, "token_ids");
  pack_uints(pk, out, e.token_ids);
  pack_str(pk, "block_size");
  pk.pack_uint32(e.block_size);
  pack_str(pk, "lora_id");
  if (e.lora_id) {
    pk.pack_int64(*e.lora_id);
  } else {
    pk.pack_nil();
  }
  pack_str(pk, "medium");
  pack_optional_str(pk, e.medium);
  pack_str(pk, "lora_name");
  pack_optional_str(pk, e.lora_name);
}

void pack_event(Packer& pk, std::string& out, const BlockRemovedEvent& e) {
  pk.pack_map(3);
  pack_str(pk, "type");
  pack_str(pk, "BlockRemoved");
  pack_str(pk, "block_hashes");
  pack_uints(pk, out, e.block_hashes);
  pack_str(pk, "medium");
  pack_optional_str(pk, e.medium);
}

void pack_event(Packer& pk, std::string&, const AllBlocksClearedEvent&) {
  pk.pack_map(1);
  pack_str(pk, "type");
  pack_str(pk, "AllBlocksCleared");
}

// ---- decoding ----

using msgpack::object;

// Where a value sits in the batch; turned into text only for an error message, so that decoding
// builds no strings on the success path.
struct Loc {
  std::string_view top;     // outside any event: "data_parallel_rank", ...
  std::int64_t event = -1;  // events[event]
  std::string_view key;     // .key, in the map form
  std::int64_t pos = -1;    // [pos], in the positional form
  std::int64_t elem = -1;   // [elem], inside an array value
  [[nodiscard]] Loc with_key(std::string_view k) const {
    Loc l = *this;
    l.key = k;
    return l;
  }
  [[nodiscard]] Loc with_pos(std::int64_t p) const {
    Loc l = *this;
    l.pos = p;
    return l;
  }
  [[nodiscard]] Loc with_elem(std::int64_t e) const {
    Loc l = *this;
    l.elem = e;
    return l;
  }
  [[nodiscard]] std::string str() const {
    std::string s = event >= 0 ? absl::StrCat("events[", event, "]") : std::string(top);
    if (!key.empty()) absl::StrAppend(&s, ".", std::string(key));
    if (pos >= 0) absl::StrAppend(&s, "[", pos, "]");
    if (elem >= 0) absl::StrAppend(&s, "[", elem, "]");
    return s;
  }
};

std::string_view type_name(const object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "bool";
    case msgpack::type::POSITIVE_INTEGER:
      return "uint";
    case msgpack::type::NEGATIVE_INTEGER:
      return "negative int";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return "float";
    case msgpack::type::STR:
      return "str";
    case msgpack::type::BIN:
      return "bin";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      return "map";
    case msgpack::type::EXT:
      return "ext";
  }
  return "unknown";
}

absl::Status type_error(std::string_view where, std::string_view expected, const object& o) {
  return absl::InvalidArgumentError(absl::StrCat("event batch: ", std::string(where), ": expected ",
                                                 std::string(expected), ", got ", std::string(type_name(o))));
}
absl::Status type_error(const Loc& where, std::string_view expected, const object& o) {
  return type_error(where.str(), expected, o);
}

bool is_int(const object& o) {
  return o.type == msgpack::type::POSITIVE_INTEGER || o.type == msgpack::type::NEGATIVE_INTEGER;
}

std::string_view as_str(const object& o) { return std::string_view(o.via.str.ptr, o.via.str.size); }

// A hash: unsigned 64-bit, or a signed int from an older publisher (reinterpreted two's complement).
// vLLM sends `bin` hashes (32 bytes of sha256) when its integer hashes are off; kvbm indexes 64-bit
// sequence hashes and no consumer documents a 64-bit mapping of those, so they are refused by name.
absl::StatusOr<std::uint64_t> decode_hash(const object& o, const Loc& where) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) return o.via.u64;
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return static_cast<std::uint64_t>(o.via.i64);
  if (o.type == msgpack::type::BIN) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event batch: ", where.str(), ": ", o.via.bin.size,
        "-byte bin hash: kvbm reads 64-bit integer block hashes only (a vLLM publisher sends bin hashes when its "
        "integer hashes are off; turn them on, e.g. a 64-bit prefix_caching_hash_algo)"));
  }
  return type_error(where, "int", o);
}

// The wire format's rule for BlockStored: all tokens of the stored blocks (a router drops a block whose
// tokens are short).
absl::Status check_stored_tokens(const BlockStoredEvent& e, const Loc& where) {
  const std::uint64_t expected = stored_token_count(e);
  if (e.token_ids.size() == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("event batch: ", where.str(), ": BlockStored has ", e.token_ids.size(),
                                                 " token_ids for ", e.block_hashes.size(), " block(s) × block_size ",
                                                 e.block_size, ", expected ", expected));
}

absl::StatusOr<std::optional<std::uint64_t>> decode_optional_hash(const object& o, const Loc& where) {
  if (o.type == msgpack::type::NIL) return std::optional<std::uint64_t>();
  auto h = decode_hash(o, where);
  if (!h.ok()) return h.status();
  return std::optional<std::uint64_t>(*h);
}

absl::StatusOr<std::vector<std::uint64_t>> decode_hashes(const object& o, const Loc& where) {
  if (o.type != msgpack::type::ARRAY) return type_error(where, "array of int", o);
  std::vector<std::uint64_t> out;
  out.reserve(o.via.array.size);
  for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
    const object& e = o.via.array.ptr[i];
    if (e.type == msgpack::type::POSITIVE_INTEGER) {  // the common case, without building a location
      out.push_back(e.via.u64);
      continue;
    }
    auto h = decode_hash(e, where.with_elem(i));
    if (!h.ok()) return h.status();
    out.push_back(*h);
  }
  return out;
}

absl::StatusOr<std::uint32_t> decode_u32(const object& o, const Loc& where) {
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= std::numeric_limits<std::uint32_t>::max()) {
    return static_cast<std::uint32_t>(o.via.u64);
  }
  if (is_int(o)) {
    return absl::InvalidArgumentError(
        absl::StrCat("event batch: ", where.str(), ": expected an int in [0, 2^32), got ",
                     o.type == msgpack::type::NEGATIVE_INTEGER ? absl::StrCat(o.via.i64) : absl::StrCat(o.via.u64)));
  }
  return type_error(where, "int", o);
}

absl::StatusOr<std::vector<std::uint32_t>> decode_tokens(const object& o, const Loc& where) {
  if (o.type != msgpack::type::ARRAY) return type_error(where, "array of int", o);
  std::vector<std::uint32_t> out;
  out.reserve(o.via.array.size);
  for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
    const object& e = o.via.array.ptr[i];
    if (e.type == msgpack::type::POSITIVE_INTEGER && e.via.u64 <= std::numeric_limits<std::uint32_t>::max()) {
      out.push_back(static_cast<std::uint32_t>(e.via.u64));
      continue;
    }
    auto t = decode_u32(e, where.with_elem(i));
    if (!t.ok()) return t.status();
    out.push_back(*t);
  }
  return out;
}

// int or nil, as a signed 64-bit value.
absl::StatusOr<std::optional<std::int64_t>> decode_optional_i64(const object& o, const Loc& where) {
  if (o.type == msgpack::type::NIL) return std::optional<std::int64_t>();
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return std::optional<std::int64_t>(o.via.i64);
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return absl::InvalidArgumentError(absl::StrCat("event batch: ", where.str(), ": int out of range: ", o.via.u64));
    }
    return std::optional<std::int64_t>(static_cast<std::int64_t>(o.via.u64));
  }
  return type_error(where, "int or nil", o);
}

absl::StatusOr<std::optional<std::string>> decode_optional_str(const object& o, const Loc& where) {
  if (o.type == msgpack::type::NIL) return std::optional<std::string>();
  if (o.type != msgpack::type::STR) return type_error(where, "str or nil", o);
  return std::optional<std::string>(std::string(as_str(o)));
}

// The optional keys of the spec that kvbm does not model: checked for their type, then ignored.
absl::Status check_optional_key(std::string_view key, const object& v, const Loc& where) {
  const Loc at = where.with_key(key);
  if (key == "group_idx" || key == "kv_cache_spec_sliding_window") {
    if (v.type != msgpack::type::NIL && !is_int(v)) return type_error(at, "int", v);
  } else if (key == "kv_cache_spec_kind") {
    if (v.type != msgpack::type::NIL && v.type != msgpack::type::STR) return type_error(at, "str", v);
  } else if (key == "extra_keys") {
    if (v.type != msgpack::type::NIL && v.type != msgpack::type::ARRAY) return type_error(at, "array", v);
  }
  return absl::OkStatus();  // unknown keys are ignored: newer publishers may add fields
}

// Map form: {"type": ..., fields...}.
absl::StatusOr<KvEvent> decode_map_event(const object& o, const Loc& where) {
  const msgpack::object_map& m = o.via.map;
  const object* type = nullptr;
  for (std::uint32_t i = 0; i < m.size; ++i) {
    const object& k = m.ptr[i].key;
    if (k.type != msgpack::type::STR) return type_error(absl::StrCat(where.str(), " key"), "str", k);
    if (as_str(k) == "type") type = &m.ptr[i].val;
  }
  if (type == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("event batch: ", where.str(), ": no \"type\" key"));
  if (type->type != msgpack::type::STR) return type_error(absl::StrCat(where.str(), ".type"), "str", *type);
  const std::string_view tag = as_str(*type);

  // Which required keys were seen, by index into the per-type key list.
  if (tag == "BlockStored") {
    BlockStoredEvent e;
    bool seen[7] = {};
    for (std::uint32_t i = 0; i < m.size; ++i) {
      const std::string_view key = as_str(m.ptr[i].key);
      const object& v = m.ptr[i].val;
      const Loc at = where.with_key(key);
      absl::Status s;
      if (key == "type") {
        continue;
      } else if (key == "block_hashes") {
        auto r = decode_hashes(v, at);
        if (r.ok()) e.block_hashes = *std::move(r);
        s = r.status();
        seen[0] = true;
      } else if (key == "parent_block_hash") {
        auto r = decode_optional_hash(v, at);
        if (r.ok()) e.parent_block_hash = *r;
        s = r.status();
        seen[1] = true;
      } else if (key == "token_ids") {
        auto r = decode_tokens(v, at);
        if (r.ok()) e.token_ids = *std::move(r);
        s = r.status();
        seen[2] = true;
      } else if (key == "block_size") {
        auto r = decode_u32(v, at);
        if (r.ok()) e.block_size = *r;
        s = r.status();
        seen[3] = true;
      } else if (key == "lora_id") {
        auto r = decode_optional_i64(v, at);
        if (r.ok()) e.lora_id = *r;
        s = r.status();
        seen[4] = true;
      } else if (key == "medium") {
        auto r = decode_optional_str(v, at);
        if (r.ok()) e.medium = *std::move(r);
        s = r.status();
        seen[5] = true;
      } else if (key == "lora_name") {
        auto r = decode_optional_str(v, at);
        if (r.ok()) e.lora_name = *std::move(r);
        s = r.status();
        seen[6] = true;
      } else {
        s = check_optional_key(key, v, where);
      }
      if (!s.ok()) return s;
    }
    // lora_id, medium and lora_name may be absent (older publishers); the rest are required.
    static constexpr std::string_view kRequired[] = {"block_hashes", "parent_block_hash", "token_ids", "block_size"};
    for (int i = 0; i < 4; ++i) {
      if (!seen[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat("event batch: ", where.str(), ": BlockStored without \"", std::string(kRequired[i]), "\""));
      }
    }
    if (absl::Status s = check_stored_tokens(e, where); !s.ok()) return s;
    return KvEvent(std::move(e));
  }
  if (tag == "BlockRemoved") {
    BlockRemovedEvent e;
    bool seen_hashes = false;
    for (std::uint32_t i = 0; i < m.size; ++i) {
      const std::string_view key = as_str(m.ptr[i].key);
      const object& v = m.ptr[i].val;
      const Loc at = where.with_key(key);
      absl::Status s;
      if (key == "type") {
        continue;
      } else if (key == "block_hashes") {
        auto r = decode_hashes(v, at);
        if (r.ok()) e.block_hashes = *std::move(r);
        s = r.status();
        seen_hashes = true;
      } else if (key == "medium") {
        auto r = decode_optional_str(v, at);
        if (r.ok()) e.medium = *std::move(r);
        s = r.status();
      } else {
        s = check_optional_key(key, v, where);
      }
      if (!s.ok()) return s;
    }
    if (!seen_hashes) {
      return absl::InvalidArgumentError(
          absl::StrCat("event batch: ", where.str(), ": BlockRemoved without \"block_hashes\""));
    }
    return KvEvent(std::move(e));
  }
  if (tag == "AllBlocksCleared") return KvEvent(AllBlocksClearedEvent{});
  return absl::InvalidArgumentError(
      absl::StrCat("event batch: ", where.str(), ": unknown event type \"", std::string(tag), "\""));
}

// Positional form of older publishers: ["BlockStored", block_hashes, parent, token_ids, block_size,
// lora_id, medium, lora_name, ...], ["BlockRemoved", block_hashes, medium, ...], ["AllBlocksCleared"].
// Trailing items newer than these (extra_keys, group_idx, ...) are ignored; fewer than the original
// fields is an error.
absl::StatusOr<KvEvent> decode_array_event(const object& o, const Loc& where) {
  const msgpack::object_array& a = o.via.array;
  if (a.size == 0) return absl::InvalidArgumentError(absl::StrCat("event batch: ", where.str(), ": empty array"));
  if (a.ptr[0].type != msgpack::type::STR) return type_error(absl::StrCat(where.str(), "[0]"), "str tag", a.ptr[0]);
  const std::string_view tag = as_str(a.ptr[0]);
  auto at = [&](int i) { return where.with_pos(i); };
  auto arity_error = [&](std::size_t min) {
    return absl::InvalidArgumentError(absl::StrCat("event batch: ", where.str(), ": ", std::string(tag),
                                                   " array needs at least ", min, " items, got ", a.size));
  };
  if (tag == "BlockStored") {
    if (a.size < 5) return arity_error(5);
    BlockStoredEvent e;
    auto hashes = decode_hashes(a.ptr[1], at(1));
    if (!hashes.ok()) return hashes.status();
    e.block_hashes = *std::move(hashes);
    auto parent = decode_optional_hash(a.ptr[2], at(2));
    if (!parent.ok()) return parent.status();
    e.parent_block_hash = *parent;
    auto tokens = decode_tokens(a.ptr[3], at(3));
    if (!tokens.ok()) return tokens.status();
    e.token_ids = *std::move(tokens);
    auto block_size = decode_u32(a.ptr[4], at(4));
    if (!block_size.ok()) return block_size.status();
    e.block_size = *block_size;
    if (a.size > 5) {
      auto lora = decode_optional_i64(a.ptr[5], at(5));
      if (!lora.ok()) return lora.status();
      e.lora_id = *lora;
    }
    if (a.size > 6) {
      auto medium = decode_optional_str(a.ptr[6], at(6));
      if (!medium.ok()) return medium.status();
      e.medium = *std::move(medium);
    }
    if (a.size > 7) {
      auto name = decode_optional_str(a.ptr[7], at(7));
      if (!name.ok()) return name.status();
      e.lora_name = *std::move(name);
    }
    if (absl::Status s = check_stored_tokens(e, where); !s.ok()) return s;
    return KvEvent(std::move(e));
  }
  if (tag == "BlockRemoved") {
    if (a.size < 2) return arity_error(2);
    BlockRemovedEvent e;
    auto hashes = decode_hashes(a.ptr[1], at(1));
    if (!hashes.ok()) return hashes.status();
    e.block_hashes = *std::move(hashes);
    if (a.size > 2) {
      auto medium = decode_optional_str(a.ptr[2], at(2));
      if (!medium.ok()) return medium.status();
      e.medium = *std::move(medium);
    }
    return KvEvent(std::move(e));
  }
  if (tag == "AllBlocksCleared") return KvEvent(AllBlocksClearedEvent{});
  return absl::InvalidArgumentError(
      absl::StrCat("event batch: ", where.str(), ": unknown event type \"", std::string(tag), "\""));
}

absl::Status decode_timestamp(const object& ts, EventBatch& batch) {
  if (ts.type == msgpack::type::FLOAT32 || ts.type == msgpack::type::FLOAT64) {
    batch.timestamp = ts.via.f64;
  } else if (ts.type == msgpack::type::POSITIVE_INTEGER) {
    batch.timestamp = static_cast<double>(ts.via.u64);
  } else if (ts.type == msgpack::type::NEGATIVE_INTEGER) {
    batch.timestamp = static_cast<double>(ts.via.i64);
  } else {
    return type_error("ts", "float", ts);
  }
  return absl::OkStatus();
}

absl::Status decode_events(const object& events, EventBatch& batch) {
  if (events.type != msgpack::type::ARRAY) return type_error("events", "array", events);
  batch.events.reserve(events.via.array.size);
  for (std::uint32_t i = 0; i < events.via.array.size; ++i) {
    const object& e = events.via.array.ptr[i];
    Loc where;
    where.event = i;
    absl::StatusOr<KvEvent> event;
    if (e.type == msgpack::type::MAP) {
      event = decode_map_event(e, where);
    } else if (e.type == msgpack::type::ARRAY) {
      event = decode_array_event(e, where);
    } else {
      return type_error(where, "map or array", e);
    }
    if (!event.ok()) return event.status();
    batch.events.push_back(*std::move(event));
  }
  return absl::OkStatus();
}

absl::Status decode_rank(const object& rank, EventBatch& batch) {
  auto r = decode_optional_i64(rank, Loc{.top = "data_parallel_rank"});
  if (!r.ok()) return r.status();
  batch.data_parallel_rank = *r;
  return absl::OkStatus();
}

// Shapes A and B: [ts, events] or [ts, events, rank, ...] (positions past the rank are ignored).
absl::StatusOr<EventBatch> decode_array_batch(const msgpack::object_array& a) {
  if (a.size < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event batch: batch: expected an array [ts, events, data_parallel_rank], got ", a.size, " item(s)"));
  }
  EventBatch batch;
  if (absl::Status s = decode_timestamp(a.ptr[0], batch); !s.ok()) return s;
  if (absl::Status s = decode_events(a.ptr[1], batch); !s.ok()) return s;
  if (a.size > 2) {
    if (absl::Status s = decode_rank(a.ptr[2], batch); !s.ok()) return s;
  }
  return batch;
}

// Shape C: {"ts": ..., "events": [...], "data_parallel_rank": r}; the rank may be absent, other keys are
// ignored.
absl::StatusOr<EventBatch> decode_map_batch(const msgpack::object_map& m) {
  const object* ts = nullptr;
  const object* events = nullptr;
  const object* rank = nullptr;
  for (std::uint32_t i = 0; i < m.size; ++i) {
    const object& k = m.ptr[i].key;
    if (k.type != msgpack::type::STR) return type_error("batch key", "str", k);
    const std::string_view key = as_str(k);
    if (key == "ts") {
      ts = &m.ptr[i].val;
    } else if (key == "events") {
      events = &m.ptr[i].val;
    } else if (key == "data_parallel_rank") {
      rank = &m.ptr[i].val;
    }
  }
  if (ts == nullptr) return absl::InvalidArgumentError("event batch: batch: map without \"ts\"");
  if (events == nullptr) return absl::InvalidArgumentError("event batch: batch: map without \"events\"");
  EventBatch batch;
  if (absl::Status s = decode_timestamp(*ts, batch); !s.ok()) return s;
  if (absl::Status s = decode_events(*events, batch); !s.ok()) return s;
  if (rank != nullptr) {
    if (absl::Status s = decode_rank(*rank, batch); !s.ok()) return s;
  }
  return batch;
}

absl::StatusOr<EventBatch> decode_object(const object& root) {
  if (root.type == msgpack::type::ARRAY) return decode_array_batch(root.via.array);
  if (root.type == msgpack::type::MAP) return decode_map_batch(root.via.map);
  return type_error("batch", "array [ts, events, data_parallel_rank] or map {ts, events, data_parallel_rank}", root);
}

}  // namespace

std::string encode_event_batch(const EventBatch& batch, BatchFormat format) {
  std::string out;
  encode_event_batch(batch.timestamp, batch.events, batch.data_parallel_rank, out, format);
  return out;
}

void encode_event_batch(double timestamp, std::span<const KvEvent> events,
                        std::optional<std::int64_t> data_parallel_rank, std::string& out, BatchFormat format) {
  out.clear();
  out.reserve(64 + events.size() * 64);
  StringSink sink{&out};
  Packer pk(sink);
  const bool as_map = format == BatchFormat::kMap;
  if (as_map) {
    pk.pack_map(data_parallel_rank ? 3 : 2);
    pack_str(pk, "ts");
  } else {
    pk.pack_array(3);
  }
  if (timestamp == 18446744073709551616.0) {
    // msgpack-c's pack_double writes a whole double ≤ double(UINT64_MAX) as uint64_t(d); 2^64 itself
    // passes that test and the conversion is undefined (found by event_decode_fuzz). Raw float64 here.
    const auto bits = std::bit_cast<std::uint64_t>(timestamp);
    char raw[9] = {static_cast<char>(0xcb)};
    for (int i = 0; i < 8; ++i) raw[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    sink.write(raw, sizeof(raw));
  } else {
    pk.pack_double(timestamp);
  }
  if (as_map) pack_str(pk, "events");
  pk.pack_array(static_cast<std::uint32_t>(events.size()));
  for (const KvEvent& e : events) {
    std::visit([&](const auto& ev) { pack_event(pk, out, ev); }, e);
  }
  if (as_map) {
    if (!data_parallel_rank) return;  // vLLM omits the key when the rank is None
    pack_str(pk, "data_parallel_rank");
  }
  if (data_parallel_rank) {
    pk.pack_int64(*data_parallel_rank);
  } else {
    pk.pack_nil();
  }
}

absl::StatusOr<EventBatch> decode_event_batch(std::string_view payload) {
  if (payload.empty()) return absl::InvalidArgumentError("event batch: empty payload");
  // Every element takes at least one byte (a map entry two), so no honest container is larger than the
  // payload; the depth of the format is 4 (batch, events, event, hashes) plus room for extra_keys.
  const std::size_t n = payload.size();
  const msgpack::unpack_limit limit(/*array=*/n, /*map=*/n / 2 + 1, /*str=*/n, /*bin=*/n, /*ext=*/n, /*depth=*/16);
  try {
    std::size_t offset = 0;
    msgpack::object_handle handle = msgpack::unpack(payload.data(), payload.size(), offset, nullptr, nullptr, limit);
    if (offset != payload.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("event batch: ", payload.size() - offset, " trailing bytes after the batch"));
    }
    return decode_object(handle.get());
  } catch (const msgpack::insufficient_bytes&) {
    return absl::InvalidArgumentError(absl::StrCat("event batch: truncated msgpack (", n, " bytes)"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("event batch: malformed msgpack: ", e.what()));
  } catch (...) {
    return absl::InvalidArgumentError("event batch: malformed msgpack");
  }
}

}  // namespace kvbm
