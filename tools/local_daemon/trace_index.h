#ifndef XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_INDEX_H_
#define XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_INDEX_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "tools/local_daemon/datagram.h"

namespace xraysink::tools {

// The documents received for one trace, indexed by entity id, with Trace::complete()'s answer
// kept up to date as documents arrive, so that a trace streamed as thousands of documents does
// not cost a full assembly per document.
//
// Add costs O(entities in the document, and in the document it replaces) hash look-ups, times
// the number of documents that carry the same entity id (normally one or two), whatever the
// size of the trace. The exception: after a document that drops an entity or gives it another
// parent (a fragment replaced by a document that lacks one of its embedded subsegments), the
// next Add that has to look for parent_id cycles costs O(entities of the trace) once.
class TraceIndex {
 public:
  // Appends `document`, or replaces the document with the same root entity id unless that one
  // had ended and this one has not (the rule of TraceAssembler::Add).
  void Add(ReceivedDocument document);

  // In arrival order; a replacing document takes the place of the one it replaced.
  const std::vector<ReceivedDocument>& documents() const { return documents_; }
  std::vector<ReceivedDocument> TakeDocuments() && { return std::move(documents_); }
  // Trace(id, documents()).complete().
  bool complete() const { return complete_; }

 private:
  static constexpr int32_t kNone = -1;

  // One occurrence of an entity id. Trace keeps, per id, the last ended occurrence in this order,
  // or the last one when none has ended.
  struct Occurrence {
    int32_t document;  // index in documents_
    int32_t preorder;  // depth-first position in the document, root first
    const ReceivedEntity* entity;
  };
  // What completeness needs of the occurrence Trace keeps for an id.
  struct Kept {
    bool present = false;
    bool ended = false;
    bool is_segment = false;
    int32_t parent = kNone;  // the slot of parent_id; kNone when empty or its own id
    bool operator==(const Kept&) const = default;
  };
  // One entity id, received or only named as a parent.
  struct Slot {
    std::vector<Occurrence> occurrences;
    Kept kept;
    int32_t document = kNone;  // the document whose root has this id
    // Kept subsegments whose parent is this id: orphans while it is not present.
    int64_t subsegment_children = 0;
    bool dirty = false;
  };

  int32_t SlotOf(const std::string& id);
  // Visits the entities of documents_[index] depth first, as Trace collects them.
  template <typename Visit>
  void ForEachEntity(int32_t index, Visit visit) const;
  void Insert(int32_t index);
  void Erase(int32_t index);
  void MarkDirty(int32_t slot);
  Kept Choose(int32_t slot);
  void Update(int32_t slot);
  void Count(const Kept& kept, int64_t sign);
  int32_t Root(int32_t slot);
  void Link(int32_t child, int32_t parent);
  void RelinkAll();
  bool HasCycle();

  std::vector<ReceivedDocument> documents_;
  absl::flat_hash_map<std::string, int32_t> slot_of_;
  std::vector<Slot> slots_;
  std::vector<int32_t> dirty_;

  // Trace::complete() is: no kept entity in progress, no kept subsegment without its parent
  // (a root, orphan or not, is never a subsegment otherwise), and no parent_id cycle (Trace cuts
  // one into an orphan).
  int64_t in_progress_ = 0;
  int64_t orphans_ = 0;
  bool complete_ = false;

  // Union-find over the slots, linked along parent ids. Each slot has at most one parent, so a
  // link inside one set closes a cycle, and cycles_ counts those. A child is linked to its
  // parent's slot whether or not the parent was received: a slot not received has no parent, so
  // it lies on no cycle, and its arrival needs no relinking. Union-find cannot unlink: a dropped
  // or changed link marks the sets stale until the next HasCycle() rebuilds them.
  std::vector<int32_t> set_parent_;
  std::vector<int32_t> set_size_;
  int64_t cycles_ = 0;
  bool links_stale_ = false;
};

}  // namespace xraysink::tools

#endif  // XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_INDEX_H_
