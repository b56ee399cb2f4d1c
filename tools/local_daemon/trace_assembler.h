#ifndef XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_ASSEMBLER_H_
#define XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_ASSEMBLER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "tools/local_daemon/datagram.h"
#include "tools/local_daemon/trace.h"
#include "tools/local_daemon/trace_index.h"

namespace xraysink::tools {

// Groups received documents by trace id and tells when a trace is finished: it is complete
// (every entity ended, no streamed subsegment waiting for its parent) and no document of it
// arrived for the quiet period, which gives late segments of the trace (a background task's,
// a downstream service's) time to arrive. A trace that stays incomplete (its service crashed
// before ending a segment, a parent never arrived) expires when no document of it arrived for
// the pending timeout. Not thread-safe.
class TraceAssembler {
 public:
  explicit TraceAssembler(absl::Duration quiet_period,
                          absl::Duration pending_timeout = absl::InfiniteDuration())
      : quiet_period_(quiet_period), pending_timeout_(pending_timeout) {}

  // Adds a document received at `now`. A document for an entity already received as the root
  // of another document replaces it, unless that one had ended and this one has not (an
  // in-progress fragment arriving after the complete document). Amortized cost independent of
  // the number of documents the trace already has (see TraceIndex).
  void Add(ReceivedDocument document, absl::Time now);

  // Trace ids in order of first arrival.
  std::vector<std::string> TraceIds() const;
  // The trace as assembled so far, or nullopt for an unknown id.
  std::optional<Trace> Get(std::string_view trace_id) const;
  // Get(trace_id)->complete(), without assembling the trace; false for an unknown id.
  bool IsComplete(std::string_view trace_id) const;
  bool IsFinished(std::string_view trace_id, absl::Time now) const;
  bool IsExpired(std::string_view trace_id, absl::Time now) const;
  // When the earliest complete trace becomes finished if nothing more arrives (possibly in the
  // past); nullopt when no trace is complete.
  std::optional<absl::Time> NextFinishTime() const;
  // When the earliest incomplete trace expires if nothing more arrives (possibly in the past);
  // nullopt when every trace is complete or the pending timeout is infinite.
  std::optional<absl::Time> NextExpiryTime() const;

  // Removes and returns the finished traces, oldest first. A later document of the same trace
  // id starts it anew.
  std::vector<Trace> TakeFinished(absl::Time now);
  // Removes and returns the expired traces, oldest first, like TakeFinished.
  std::vector<Trace> TakeExpired(absl::Time now);
  // Removes and returns every trace, finished or not, oldest first (at shutdown).
  std::vector<Trace> TakeAll();

 private:
  struct Pending {
    uint64_t sequence = 0;  // order of first arrival
    TraceIndex index;       // its documents
    absl::Time last_arrival;
  };
  // Traces by (last arrival, sequence): the complete ones, waiting out the quiet period, and the
  // others, waiting for the pending timeout. Each list's finished or expired traces are a prefix
  // of it, so nothing scans every pending trace (a load test can leave thousands).
  using DeadlineList = std::map<std::pair<absl::Time, uint64_t>, std::string>;

  bool Finished(const Pending& pending, absl::Time now) const {
    return pending.index.complete() && now - pending.last_arrival >= quiet_period_;
  }
  bool Expired(const Pending& pending, absl::Time now) const {
    // An infinite timeout never expires, though InfiniteFuture() - t reaches it.
    return pending_timeout_ != absl::InfiniteDuration() && !pending.index.complete() &&
           now - pending.last_arrival >= pending_timeout_;
  }
  // The deadline list that holds `pending`: the index's completeness only changes in Add.
  DeadlineList& ListOf(const Pending& pending) {
    return pending.index.complete() ? complete_ : incomplete_;
  }
  // The earliest last arrival + `after` in `list`; nullopt when `after` is infinite (nothing
  // there ever comes due).
  static std::optional<absl::Time> EarliestDeadline(const DeadlineList& list, absl::Duration after);
  // Removes and returns the traces at the front of `list` whose last arrival + `after` is
  // `now` or earlier, oldest (first arrival) first; none when `after` is infinite.
  std::vector<Trace> TakeDue(DeadlineList& list, absl::Duration after, absl::Time now);
  // Removes and returns the traces named in `ids`, oldest (first arrival) first.
  std::vector<Trace> Take(const std::vector<std::string>& ids);

  const absl::Duration quiet_period_;
  const absl::Duration pending_timeout_;
  uint64_t next_sequence_ = 0;
  std::map<std::string, Pending, std::less<>> traces_;
  DeadlineList complete_;
  DeadlineList incomplete_;
};

}  // namespace xraysink::tools

#endif  // XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_ASSEMBLER_H_
