#include "tools/local_daemon/trace_assembler.h"

#include <algorithm>
#include <utility>

namespace xraysink::tools {

void TraceAssembler::Add(ReceivedDocument document, absl::Time now) {
  const ReceivedEntity& entity = document.entity();
  auto [it, inserted] = traces_.try_emplace(entity.trace_id);
  Pending& pending = it->second;
  if (inserted) {
    pending.sequence = next_sequence_++;
  } else {
    ListOf(pending).erase({pending.last_arrival, pending.sequence});
  }
  pending.last_arrival = now;
  pending.index.Add(std::move(document));
  ListOf(pending).emplace(std::pair(now, pending.sequence), it->first);
}

std::vector<std::string> TraceAssembler::TraceIds() const {
  std::vector<std::pair<uint64_t, std::string>> ordered;
  for (const auto& [id, pending] : traces_) ordered.emplace_back(pending.sequence, id);
  std::sort(ordered.begin(), ordered.end());
  std::vector<std::string> ids;
  for (auto& entry : ordered) ids.push_back(std::move(entry.second));
  return ids;
}

std::optional<Trace> TraceAssembler::Get(std::string_view trace_id) const {
  const auto it = traces_.find(trace_id);
  if (it == traces_.end()) return std::nullopt;
  return Trace(it->first, it->second.index.documents());
}

bool TraceAssembler::IsComplete(std::string_view trace_id) const {
  const auto it = traces_.find(trace_id);
  return it != traces_.end() && it->second.index.complete();
}

bool TraceAssembler::IsFinished(std::string_view trace_id, absl::Time now) const {
  const auto it = traces_.find(trace_id);
  return it != traces_.end() && Finished(it->second, now);
}

bool TraceAssembler::IsExpired(std::string_view trace_id, absl::Time now) const {
  const auto it = traces_.find(trace_id);
  return it != traces_.end() && Expired(it->second, now);
}

std::optional<absl::Time> TraceAssembler::EarliestDeadline(const DeadlineList& list,
                                                           absl::Duration after) {
  // InfiniteFuture() - t would reach an infinite `after`, and InfiniteFuture() be a deadline.
  if (list.empty() || after == absl::InfiniteDuration()) return std::nullopt;
  return list.begin()->first.first + after;
}

std::optional<absl::Time> TraceAssembler::NextFinishTime() const {
  return EarliestDeadline(complete_, quiet_period_);
}

std::optional<absl::Time> TraceAssembler::NextExpiryTime() const {
  return EarliestDeadline(incomplete_, pending_timeout_);
}

std::vector<Trace> TraceAssembler::TakeDue(DeadlineList& list, absl::Duration after,
                                           absl::Time now) {
  if (after == absl::InfiniteDuration()) return {};
  std::vector<std::string> ids;
  // As Finished and Expired put it: now - last arrival >= after.
  for (auto it = list.begin(); it != list.end() && now - it->first.first >= after; ++it) {
    ids.push_back(it->second);
  }
  return Take(ids);
}

std::vector<Trace> TraceAssembler::Take(const std::vector<std::string>& ids) {
  std::vector<std::pair<uint64_t, Trace>> taken;
  for (const std::string& id : ids) {
    const auto it = traces_.find(id);
    if (it == traces_.end()) continue;
    Pending& pending = it->second;
    ListOf(pending).erase({pending.last_arrival, pending.sequence});
    taken.emplace_back(pending.sequence,
                       Trace(it->first, std::move(pending.index).TakeDocuments()));
    traces_.erase(it);
  }
  std::sort(taken.begin(), taken.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Trace> traces;
  for (auto& entry : taken) traces.push_back(std::move(entry.second));
  return traces;
}

std::vector<Trace> TraceAssembler::TakeFinished(absl::Time now) {
  return TakeDue(complete_, quiet_period_, now);
}

std::vector<Trace> TraceAssembler::TakeExpired(absl::Time now) {
  return TakeDue(incomplete_, pending_timeout_, now);
}

std::vector<Trace> TraceAssembler::TakeAll() {
  std::vector<std::string> ids;
  ids.reserve(traces_.size());
  for (const auto& [id, pending] : traces_) ids.push_back(id);
  return Take(ids);
}

}  // namespace xraysink::tools
