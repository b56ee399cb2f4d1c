#include "tools/local_daemon/trace.h"

#include <algorithm>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace xraysink::tools {
namespace {

void Collect(const ReceivedEntity& entity,
             std::unordered_map<std::string_view, const ReceivedEntity*>& chosen,
             std::vector<const ReceivedEntity*>& order) {
  auto [it, inserted] = chosen.try_emplace(entity.id, &entity);
  if (inserted) {
    order.push_back(&entity);
  } else if (entity.ended() || !it->second->ended()) {
    // Ended beats in progress, then later beats earlier; keep the first-seen slot in `order`.
    std::replace(order.begin(), order.end(), it->second, &entity);
    it->second = &entity;
  }
  for (const ReceivedEntity& child : entity.subsegments) Collect(child, chosen, order);
}

}  // namespace

TraceNode::~TraceNode() {
  // Each node is emptied before it is destroyed, so no destructor below this one recurses.
  std::vector<TraceNode> doomed = std::move(children);
  while (!doomed.empty()) {
    TraceNode node = std::move(doomed.back());
    doomed.pop_back();
    for (TraceNode& child : node.children) doomed.push_back(std::move(child));
    node.children.clear();
  }
}

Trace::Trace(std::string trace_id, std::vector<ReceivedDocument> documents)
    : id_(std::move(trace_id)), documents_(std::move(documents)) {
  std::unordered_map<std::string_view, const ReceivedEntity*> chosen;
  std::vector<const ReceivedEntity*> entities;
  for (const ReceivedDocument& document : documents_) {
    Collect(document.entity(), chosen, entities);
  }
  std::sort(entities.begin(), entities.end(), [](const ReceivedEntity* a, const ReceivedEntity* b) {
    return std::tie(a->start_time, a->id) < std::tie(b->start_time, b->id);
  });

  // Sorted once here, every child list and the roots come out in printing order.
  std::unordered_map<std::string_view, std::vector<const ReceivedEntity*>> children;
  std::vector<const ReceivedEntity*> roots;
  for (const ReceivedEntity* entity : entities) {
    const bool has_parent = !entity->parent_id.empty() && entity->parent_id != entity->id &&
                            chosen.count(entity->parent_id) > 0;
    (has_parent ? children[entity->parent_id] : roots).push_back(entity);
  }
  std::unordered_set<const ReceivedEntity*> placed;
  // Depth first with an explicit stack: a chain of streamed subsegments can be deeper than the
  // thread's stack allows frames. A node's address is stable while it is on the stack, as only
  // the top node's child list grows.
  struct Frame {
    TraceNode* node;
    size_t next_child = 0;
  };
  std::vector<Frame> stack;
  const auto build = [&](const ReceivedEntity* root, bool orphan) {
    placed.insert(root);
    roots_.emplace_back(root, orphan);
    stack.push_back({&roots_.back()});
    while (!stack.empty()) {
      Frame& frame = stack.back();
      const std::vector<const ReceivedEntity*>& candidates = children[frame.node->entity->id];
      if (frame.next_child == candidates.size()) {
        stack.pop_back();
        continue;
      }
      const ReceivedEntity* child = candidates[frame.next_child++];
      if (!placed.insert(child).second) continue;
      frame.node->children.emplace_back(child, false);
      stack.push_back({&frame.node->children.back()});
    }
  };
  for (const ReceivedEntity* root : roots) build(root, !root->is_segment);
  // What is left hangs in a parent_id cycle (bad input): cut the cycle at its earliest entity.
  for (const ReceivedEntity* entity : entities) {
    if (placed.count(entity) == 0) build(entity, true);
  }
}

std::vector<const TraceNode*> Trace::Entities() const {
  std::vector<const TraceNode*> out;
  std::vector<const TraceNode*> stack;
  for (auto root = roots_.rbegin(); root != roots_.rend(); ++root) stack.push_back(&*root);
  while (!stack.empty()) {
    const TraceNode* node = stack.back();
    stack.pop_back();
    out.push_back(node);
    for (auto child = node->children.rbegin(); child != node->children.rend(); ++child) {
      stack.push_back(&*child);
    }
  }
  return out;
}

const TraceNode* Trace::Find(std::string_view entity_id) const {
  for (const TraceNode* node : Entities()) {
    if (node->entity->id == entity_id) return node;
  }
  return nullptr;
}

const TraceNode* Trace::FindByName(std::string_view name) const {
  for (const TraceNode* node : Entities()) {
    if (node->entity->name == name) return node;
  }
  return nullptr;
}

const TraceNode* Trace::ParentOf(std::string_view entity_id) const {
  for (const TraceNode* node : Entities()) {
    for (const TraceNode& child : node->children) {
      if (child.entity->id == entity_id) return node;
    }
  }
  return nullptr;
}

bool Trace::complete() const {
  for (const TraceNode* node : Entities()) {
    if (node->orphan || !node->entity->ended()) return false;
  }
  return true;
}

}  // namespace xraysink::tools
