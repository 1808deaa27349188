// RemoteLink: see remote_link.h.
#include "offload/remote_link.h"

#include <vector>

namespace kvbm::offload {

void RemoteLink::process(std::span<const LinkOp> ops, std::span<const BlockId> sources) {
  std::vector<G4Path::PutBlock> puts;
  std::vector<SequenceHash> to_pin;
  std::vector<const LinkOp*> pin_ops;
  std::uint64_t touched = 0;
  std::vector<Action> actions(ops.size());
  classify_each(ops, actions);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const Action a = actions[i];
    if (a == Action::kTouch) {
      ++touched;
    } else if (a == Action::kInsert || a == Action::kInsertIfAbsent) {
      if (sources.empty()) {
        to_pin.push_back(ops[i].hash());
        pin_ops.push_back(&ops[i]);
      } else {
        puts.push_back(G4Path::PutBlock{ops[i].identity, sources[i], g2_.pool->slot_tokens(sources[i])});
      }
    }
  }
  add(&LinkStats::touched, touched);
  std::vector<G2Block> pinned;
  if (!to_pin.empty()) {
    std::vector<G2Block> found = g2_.pool->pin_for_copy(to_pin);
    for (std::size_t i = 0; i < found.size(); ++i) {
      if (!found[i].valid()) {
        if (lost_source(to_pin[i])) add(&LinkStats::dropped_evicted);
        continue;
      }
      puts.push_back(G4Path::PutBlock{pin_ops[i]->identity, found[i].id(), found[i].tokens()});
      pinned.push_back(std::move(found[i]));
    }
  }
  if (!puts.empty() && g2_.has_bytes()) {
    const G4Path::PutResult put = g4_.put(*g2_.memory, puts);
    add(&LinkStats::written, put.blocks);
    add(&LinkStats::bytes, put.bytes);
  }
  g2_.pool->release(std::move(pinned));
}

}  // namespace kvbm::offload
