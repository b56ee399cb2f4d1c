#include "tools/local_daemon/trace_assembler.h"

#include <algorithm>
#include <utility>

namespace xraysink::tools {

void TraceAssembler::Add(ReceivedDocument document, absl::Time now) {
  const ReceivedEntity& entity = document.entity();
  auto [it, inserted] = traces_.try_emplace(entity.trace_id);
  Pending& pending = it->second;
  if (inserted) pending.sequence = next_sequence_++;
  pending.last_arrival = now;
  pending.index.Add(std::move(document));
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

std::optional<absl::Time> TraceAssembler::EarliestDeadline(bool complete,
                                                           absl::Duration after) const {
  std::optional<absl::Time> next;
  for (const auto& [id, pending] : traces_) {
    if (pending.index.complete() != complete) continue;
    const absl::Time at = pending.last_arrival + after;
    if (!next || at < *next) next = at;
  }
  return next;
}

std::optional<absl::Time> TraceAssembler::NextFinishTime() const {
  return EarliestDeadline(/*complete=*/true, quiet_period_);
}

std::optional<absl::Time> TraceAssembler::NextExpiryTime() const {
  if (pending_timeout_ == absl::InfiniteDuration()) return std::nullopt;
  return EarliestDeadline(/*complete=*/false, pending_timeout_);
}

template <typename Predicate>
std::vector<Trace> TraceAssembler::Take(Predicate take) {
  std::vector<std::pair<uint64_t, Trace>> taken;
  for (auto it = traces_.begin(); it != traces_.end();) {
    if (!take(it->second)) {
      ++it;
      continue;
    }
    taken.emplace_back(it->second.sequence,
                       Trace(it->first, std::move(it->second.index).TakeDocuments()));
    it = traces_.erase(it);
  }
  std::sort(taken.begin(), taken.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Trace> traces;
  for (auto& entry : taken) traces.push_back(std::move(entry.second));
  return traces;
}

std::vector<Trace> TraceAssembler::TakeFinished(absl::Time now) {
  return Take([&](const Pending& pending) { return Finished(pending, now); });
}

std::vector<Trace> TraceAssembler::TakeExpired(absl::Time now) {
  return Take([&](const Pending& pending) { return Expired(pending, now); });
}

std::vector<Trace> TraceAssembler::TakeAll() {
  return Take([](const Pending&) { return true; });
}

}  // namespace xraysink::tools
