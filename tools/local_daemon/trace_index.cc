#include "tools/local_daemon/trace_index.h"

#include <algorithm>
#include <tuple>

namespace xraysink::tools {

void TraceIndex::Add(ReceivedDocument document) {
  const ReceivedEntity& root = document.entity();
  const int32_t slot = SlotOf(root.id);
  int32_t index = slots_[slot].document;
  if (index == kNone) {
    index = static_cast<int32_t>(documents_.size());
    slots_[slot].document = index;
    documents_.push_back(std::move(document));
  } else if (root.ended() || !documents_[index].entity().ended()) {
    // Forgotten before the old document (and its entities) can go.
    Erase(index);
    documents_[index] = std::move(document);
  } else {
    return;
  }
  Insert(index);
  // Only now: an entity in both the old and the new document keeps its links, which a stale
  // union-find would have to rebuild.
  for (const int32_t dirty : dirty_) {
    slots_[dirty].dirty = false;
    Update(dirty);
  }
  dirty_.clear();
  complete_ = in_progress_ == 0 && orphans_ == 0 && !HasCycle();
}

int32_t TraceIndex::SlotOf(const std::string& id) {
  const auto [it, inserted] = slot_of_.try_emplace(id, static_cast<int32_t>(slots_.size()));
  if (inserted) {
    slots_.emplace_back();
    set_parent_.push_back(it->second);
    set_size_.push_back(1);
  }
  return it->second;
}

template <typename Visit>
void TraceIndex::ForEachEntity(int32_t index, Visit visit) const {
  // Explicit stack: embedded subsegments can nest deeply.
  std::vector<const ReceivedEntity*> stack = {&documents_[index].entity()};
  int32_t preorder = 0;
  while (!stack.empty()) {
    const ReceivedEntity* entity = stack.back();
    stack.pop_back();
    visit(*entity, preorder++);
    for (auto child = entity->subsegments.rbegin(); child != entity->subsegments.rend(); ++child) {
      stack.push_back(&*child);
    }
  }
}

void TraceIndex::Insert(int32_t index) {
  ForEachEntity(index, [&](const ReceivedEntity& entity, int32_t preorder) {
    const int32_t slot = SlotOf(entity.id);
    slots_[slot].occurrences.push_back({index, preorder, &entity});
    MarkDirty(slot);
  });
}

void TraceIndex::Erase(int32_t index) {
  ForEachEntity(index, [&](const ReceivedEntity& entity, int32_t) {
    const int32_t slot = slot_of_.at(entity.id);
    std::vector<Occurrence>& occurrences = slots_[slot].occurrences;
    occurrences.erase(std::remove_if(occurrences.begin(), occurrences.end(),
                                     [&](const Occurrence& o) { return o.document == index; }),
                      occurrences.end());
    MarkDirty(slot);
  });
}

void TraceIndex::MarkDirty(int32_t slot) {
  if (slots_[slot].dirty) return;
  slots_[slot].dirty = true;
  dirty_.push_back(slot);
}

TraceIndex::Kept TraceIndex::Choose(int32_t slot) {
  const Occurrence* best = nullptr;
  for (const Occurrence& occurrence : slots_[slot].occurrences) {
    const auto rank = [](const Occurrence& o) {
      return std::make_tuple(o.entity->ended(), o.document, o.preorder);
    };
    if (best == nullptr || rank(*best) < rank(occurrence)) best = &occurrence;
  }
  if (best == nullptr) return Kept{};
  const ReceivedEntity& entity = *best->entity;
  Kept kept{.present = true, .ended = entity.ended(), .is_segment = entity.is_segment};
  // SlotOf may grow slots_, after which `best` is not used.
  if (!entity.parent_id.empty() && entity.parent_id != entity.id) {
    kept.parent = SlotOf(entity.parent_id);
  }
  return kept;
}

void TraceIndex::Update(int32_t slot) {
  const Kept now = Choose(slot);
  const Kept before = slots_[slot].kept;
  if (now == before) return;
  Count(before, -1);
  if (now.present != before.present) {
    orphans_ += (now.present ? -1 : 1) * slots_[slot].subsegment_children;
  }
  slots_[slot].kept = now;
  Count(now, 1);

  const int32_t link_before = before.present ? before.parent : kNone;
  const int32_t link_now = now.present ? now.parent : kNone;
  if (link_before == link_now) return;
  if (link_before != kNone) links_stale_ = true;
  if (link_now != kNone && !links_stale_) Link(slot, link_now);
}

void TraceIndex::Count(const Kept& kept, int64_t sign) {
  if (!kept.present) return;
  if (!kept.ended) in_progress_ += sign;
  if (kept.is_segment) return;
  if (kept.parent == kNone) {
    orphans_ += sign;
    return;
  }
  Slot& parent = slots_[kept.parent];
  parent.subsegment_children += sign;
  if (!parent.kept.present) orphans_ += sign;
}

int32_t TraceIndex::Root(int32_t slot) {
  while (set_parent_[slot] != slot) {
    set_parent_[slot] = set_parent_[set_parent_[slot]];
    slot = set_parent_[slot];
  }
  return slot;
}

void TraceIndex::Link(int32_t child, int32_t parent) {
  int32_t a = Root(child);
  int32_t b = Root(parent);
  if (a == b) {
    ++cycles_;
    return;
  }
  if (set_size_[a] < set_size_[b]) std::swap(a, b);
  set_parent_[b] = a;
  set_size_[a] += set_size_[b];
}

void TraceIndex::RelinkAll() {
  for (size_t slot = 0; slot < slots_.size(); ++slot) {
    set_parent_[slot] = static_cast<int32_t>(slot);
    set_size_[slot] = 1;
  }
  cycles_ = 0;
  links_stale_ = false;
  for (size_t slot = 0; slot < slots_.size(); ++slot) {
    const Kept& kept = slots_[slot].kept;
    if (kept.present && kept.parent != kNone) Link(static_cast<int32_t>(slot), kept.parent);
  }
}

bool TraceIndex::HasCycle() {
  if (links_stale_) RelinkAll();
  return cycles_ > 0;
}

}  // namespace xraysink::tools
