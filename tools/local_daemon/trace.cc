#include "tools/local_daemon/trace.h"

#include <algorithm>
#include <functional>
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

void AppendDepthFirst(const std::vector<TraceNode>& nodes, std::vector<const TraceNode*>& out) {
  for (const TraceNode& node : nodes) {
    out.push_back(&node);
    AppendDepthFirst(node.children, out);
  }
}

const TraceNode* FindParent(const std::vector<TraceNode>& nodes, std::string_view entity_id) {
  for (const TraceNode& node : nodes) {
    for (const TraceNode& child : node.children) {
      if (child.entity->id == entity_id) return &node;
    }
    if (const TraceNode* found = FindParent(node.children, entity_id)) return found;
  }
  return nullptr;
}

}  // namespace

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
  std::function<TraceNode(const ReceivedEntity*)> build = [&](const ReceivedEntity* entity) {
    placed.insert(entity);
    TraceNode node{entity, false, {}};
    for (const ReceivedEntity* child : children[entity->id]) {
      if (placed.count(child) == 0) node.children.push_back(build(child));
    }
    return node;
  };
  for (const ReceivedEntity* root : roots) {
    roots_.push_back(build(root));
    roots_.back().orphan = !root->is_segment;
  }
  // What is left hangs in a parent_id cycle (bad input): cut the cycle at its earliest entity.
  for (const ReceivedEntity* entity : entities) {
    if (placed.count(entity) == 0) {
      roots_.push_back(build(entity));
      roots_.back().orphan = true;
    }
  }
}

std::vector<const TraceNode*> Trace::Entities() const {
  std::vector<const TraceNode*> out;
  AppendDepthFirst(roots_, out);
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
  return FindParent(roots_, entity_id);
}

bool Trace::complete() const {
  for (const TraceNode* node : Entities()) {
    if (node->orphan || !node->entity->ended()) return false;
  }
  return true;
}

}  // namespace xraysink::tools
