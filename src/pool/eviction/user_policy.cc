// User eviction policies: the name registry, the guard every user policy runs behind, and how a pool's
// EvictionPolicySpec becomes a factory (see include/kvbm/pool/eviction_policy.h for the contract).
#include <absl/container/btree_map.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include <cstdio>
#include <utility>

#include "kvbm/core/mutex.h"
#include "kvbm/pool/eviction_policy.h"
#include "pool/eviction/intrusive_list.h"

namespace kvbm {
namespace {

using eviction::IntrusiveLists;

struct Registry {
  Mutex mu;
  absl::btree_map<std::string, EvictionPolicyFactory> factories ABSL_GUARDED_BY(mu);
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: pools may be made during static destruction
  return *r;
}

bool valid_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-';
}

// A user policy behind checks: the guard keeps the inactive set itself (membership and an LRU order of it),
// so a victim the policy names outside the set is overruled by the set's least recently released block.
class EvictionPolicyGuard final : public EvictionPolicy {
 public:
  EvictionPolicyGuard(std::string name, std::unique_ptr<EvictionPolicy> inner, std::uint32_t capacity)
      : name_(std::move(name)), inner_(std::move(inner)), capacity_(capacity), order_(capacity, 1) {}

  std::string_view name() const override { return name_; }
  void insert(BlockId id, const InactiveBlockInfo& info) override {
    enter(id);
    inner_->insert(id, info);
  }
  void erase(BlockId id) override {
    leave(id);
    inner_->erase(id);
  }
  void touch(BlockId id) override {
    order_.remove(id.value());
    order_.push_back(0, id.value());
    inner_->touch(id);
  }
  void pin(BlockId id) override {
    leave(id);
    inner_->pin(id);
  }
  void unpin(BlockId id, const InactiveBlockInfo& info) override {
    enter(id);
    inner_->unpin(id, info);
  }
  bool pins_keep_state() const override { return inner_->pins_keep_state(); }
  void set_leaf(BlockId id, bool is_leaf) override { inner_->set_leaf(id, is_leaf); }
  bool uses_lineage() const override { return inner_->uses_lineage(); }
  bool uses_depth() const override { return inner_->uses_depth(); }
  std::optional<BlockId> evict() override {
    if (size_ == 0) return std::nullopt;
    const std::optional<BlockId> chosen = inner_->evict();
    if (chosen && chosen->value() < capacity_ && order_.contains(chosen->value())) {
      leave(*chosen);
      return chosen;
    }
    // Overruled: the oldest block of the set goes, and the policy is told it left.
    if (violations_++ == 0) {
      std::fprintf(stderr,
                   "kvbm: eviction policy '%s' chose %s, which is not an evictable block of its pool; evicting the "
                   "least recently released block instead (later violations are counted, not logged)\n",
                   name_.c_str(),
                   chosen ? absl::StrCat("block ", chosen->value()).c_str() : "no block while blocks were evictable");
    }
    const BlockId victim{order_.front(0)};
    leave(victim);
    inner_->erase(victim);
    return victim;
  }
  std::size_t size() const override { return size_; }
  std::size_t memory_bytes() const override { return sizeof(*this) + order_.memory_bytes() + inner_->memory_bytes(); }

  std::uint64_t violations() const { return violations_; }

 private:
  void enter(BlockId id) {
    order_.push_back(0, id.value());
    ++size_;
  }
  void leave(BlockId id) {
    order_.remove(id.value());
    --size_;
  }

  const std::string name_;
  const std::unique_ptr<EvictionPolicy> inner_;
  const std::uint32_t capacity_;
  IntrusiveLists order_;  // the inactive set, least recently released (or touched) first
  std::size_t size_ = 0;
  std::uint64_t violations_ = 0;
};

}  // namespace

absl::Status register_eviction_policy(std::string_view name, EvictionPolicyFactory factory) {
  if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), valid_name_char)) {
    return absl::InvalidArgumentError(
        absl::StrCat("eviction policy name must be 1-64 characters of [a-z0-9_.:-], got '", std::string(name), "'"));
  }
  if (parse_eviction_policy(name).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("eviction policy name '", std::string(name), "' is a built-in policy; choose another name"));
  }
  if (!factory)
    return absl::InvalidArgumentError(absl::StrCat("eviction policy '", std::string(name), "': no factory"));
  Registry& r = registry();
  MutexLock lock(&r.mu);
  if (!r.factories.try_emplace(std::string(name), std::move(factory)).second) {
    return absl::AlreadyExistsError(absl::StrCat("eviction policy '", std::string(name), "' is already registered"));
  }
  return absl::OkStatus();
}

absl::Status unregister_eviction_policy(std::string_view name) {
  Registry& r = registry();
  MutexLock lock(&r.mu);
  if (r.factories.erase(std::string(name)) == 0) {
    return absl::NotFoundError(absl::StrCat("eviction policy '", std::string(name), "' is not registered"));
  }
  return absl::OkStatus();
}

std::vector<std::string> registered_eviction_policies() {
  Registry& r = registry();
  MutexLock lock(&r.mu);
  std::vector<std::string> names;
  for (const auto& [name, factory] : r.factories) names.push_back(name);
  return names;
}

std::string_view EvictionPolicySpec::name() const { return kind_ ? eviction_policy_name(*kind_) : user_; }

std::string eviction_policy_choices() {
  std::vector<std::string> names;
  for (EvictionPolicyKind k : all_eviction_policy_kinds()) names.emplace_back(eviction_policy_name(k));
  const std::vector<std::string> user = registered_eviction_policies();
  return absl::StrCat(absl::StrJoin(names, ", "),
                      user.empty() ? " (or a name registered with register_eviction_policy; none is)"
                                   : absl::StrCat(" or a registered policy: ", absl::StrJoin(user, ", ")));
}

absl::StatusOr<EvictionPolicySpec> parse_eviction_policy_spec(std::string_view name) {
  if (auto kind = parse_eviction_policy(name); kind.ok()) return EvictionPolicySpec(*kind);
  const std::vector<std::string> user = registered_eviction_policies();
  if (std::find(user.begin(), user.end(), name) != user.end()) return EvictionPolicySpec::user(std::string(name));
  return absl::InvalidArgumentError(
      absl::StrCat("eviction policy must be one of ", eviction_policy_choices(), "; got '", std::string(name), "'"));
}

absl::StatusOr<EvictionPolicyFactory> eviction_policy_factory(const EvictionPolicySpec& spec) {
  if (const std::optional<EvictionPolicyKind> kind = spec.builtin()) {
    return EvictionPolicyFactory([k = *kind](std::uint32_t capacity) { return make_eviction_policy(k, capacity); });
  }
  EvictionPolicyFactory user;
  {
    Registry& r = registry();
    MutexLock lock(&r.mu);
    auto it = r.factories.find(std::string(spec.name()));
    if (it == r.factories.end()) {
      return absl::NotFoundError(absl::StrCat("eviction policy '", std::string(spec.name()),
                                              "' is not registered (register_eviction_policy)"));
    }
    user = it->second;
  }
  return EvictionPolicyFactory([name = std::string(spec.name()),
                                user = std::move(user)](std::uint32_t capacity) -> std::unique_ptr<EvictionPolicy> {
    std::unique_ptr<EvictionPolicy> inner = user(capacity);
    if (inner == nullptr) {
      std::fprintf(stderr, "kvbm: eviction policy '%s': its factory returned no policy; using lru\n", name.c_str());
      inner = make_eviction_policy(EvictionPolicyKind::kLru, capacity);
    }
    return std::make_unique<EvictionPolicyGuard>(name, std::move(inner), capacity);
  });
}

std::uint64_t eviction_policy_violations(const EvictionPolicy& policy) {
  const auto* guard = dynamic_cast<const EvictionPolicyGuard*>(&policy);
  return guard == nullptr ? 0 : guard->violations();
}

}  // namespace kvbm
