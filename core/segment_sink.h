#ifndef XRAYSINK_CORE_SEGMENT_SINK_H_
#define XRAYSINK_CORE_SEGMENT_SINK_H_

#include <memory>

namespace xraysink::core {

class Segment;
class Subsegment;

// One document to send: a whole segment (`subtree` null), or a completed subtree of it streamed
// ahead as an independent subsegment document. Holding `segment` keeps the tree alive.
struct DocumentRef {
  std::shared_ptr<const Segment> segment;
  const Subsegment* subtree = nullptr;
};

// Where finished documents go (the UDP emitter, a test collector). Called on the thread that
// ended the last entity: it must not block or throw. Serialization happens in the sink (ideally
// on its own thread), with core/serialization.h.
class SegmentSink {
 public:
  virtual ~SegmentSink() = default;
  // Returns false when the document was not accepted (e.g. a full queue); the caller counts it.
  virtual bool Accept(DocumentRef document) = 0;
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_SEGMENT_SINK_H_
