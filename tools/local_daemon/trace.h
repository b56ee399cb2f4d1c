#ifndef XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_H_
#define XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_H_

#include <string>
#include <string_view>
#include <vector>

#include "tools/local_daemon/datagram.h"

namespace xraysink::tools {

// One entity of an assembled trace and the entities that hang under it, ordered by start time
// then id. Streamed subsegments can nest a trace arbitrarily deep, so nothing that walks a tree
// (including destroying it) recurses per level; hence move-only.
struct TraceNode {
  TraceNode(const ReceivedEntity* entity, bool orphan) : entity(entity), orphan(orphan) {}
  TraceNode(TraceNode&&) noexcept = default;
  TraceNode& operator=(TraceNode&&) noexcept = default;
  ~TraceNode();

  const ReceivedEntity* entity = nullptr;
  // A streamed subsegment whose parent has not been received (only ever a root).
  bool orphan = false;
  std::vector<TraceNode> children;
};

// The documents received for one trace id, assembled into trees: embedded subsegments under
// their segment, streamed subsegments under their `parent_id`, and segments whose `parent_id`
// is an entity of the trace (e.g. a background task's segment) under that entity. When several
// documents carry the same entity id, an ended one beats one in progress, then the later one
// wins. An immutable, move-only value that keeps its documents alive.
class Trace {
 public:
  // `documents` in arrival order, all of trace `trace_id`.
  Trace(std::string trace_id, std::vector<ReceivedDocument> documents);

  const std::string& id() const { return id_; }
  const std::vector<ReceivedDocument>& documents() const { return documents_; }
  // Top-level entities: segments without a parent in this trace, and orphans.
  const std::vector<TraceNode>& roots() const { return roots_; }

  // Every entity, depth first in printing order.
  std::vector<const TraceNode*> Entities() const;
  // The entity with this id, or null.
  const TraceNode* Find(std::string_view entity_id) const;
  // The first entity (depth first) with this name, or null.
  const TraceNode* FindByName(std::string_view name) const;
  // The entity `entity_id` hangs under, or null for a root or an unknown id.
  const TraceNode* ParentOf(std::string_view entity_id) const;
  // Every entity has ended and no streamed subsegment is waiting for its parent.
  bool complete() const;

 private:
  std::string id_;
  std::vector<ReceivedDocument> documents_;
  std::vector<TraceNode> roots_;
};

}  // namespace xraysink::tools

#endif  // XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_H_
