#include "core/entity.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <new>
#include <utility>

#include "core/internal/exception_cause.h"
#include "core/internal/json_text.h"
#include "core/segment_sink.h"

namespace xraysink::core {
namespace {

bool IsValidAnnotationKey(std::string_view key) {
  if (key.empty() || key.size() > 500) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

double NowEpochSeconds() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec / 1000) * 1e-6;
}

// ---------------------------------------------------------------------------------------- Entity

Entity::Entity(Segment* segment, Entity* parent, std::string_view name, bool sampled,
               double start_time, std::pmr::memory_resource* memory, EntityId id)
    : segment_(segment),
      parent_(parent),
      id_(id.empty() ? EntityId::Generate() : id),
      name_(name),
      start_time_(start_time != 0 ? start_time : NowEpochSeconds()),
      depth_(parent != nullptr ? parent->depth_ + 1 : 0),
      sampled_(sampled),
      annotations_(memory),
      metadata_(memory),
      children_(memory) {}

bool Entity::Discarding() const {
  if (Writable()) return false;
  if (ended()) segment_->counters().mutations_after_end.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Entity::~Entity() {
  if (http_ != nullptr) http_->~HttpData();
}

bool Entity::PutAnnotation(std::string_view key, AnnotationValue value) {
  if (Discarding()) {
    return false;
  }
  if (!IsValidAnnotationKey(key)) {
    segment_->counters().annotations_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // Child flows share their parent's entity until they begin their own: under the tree's lock,
  // as the serializer reads it.
  std::lock_guard<internal::SpinLock> lock(segment_->mu_);
  for (auto& [existing_key, existing_value] : annotations_) {
    if (existing_key == key) {
      existing_value = std::move(value);
      return true;
    }
  }
  annotations_.emplace_back(key, std::move(value));
  return true;
}

bool Entity::PutMetadata(std::string_view key, JsonValue value, std::string_view ns) {
  if (Discarding()) {
    return false;
  }
  if (ns.empty() || ns.substr(0, 4) == "AWS.") {
    segment_->counters().metadata_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // Turned into text outside the tree's lock (it may be long), stored under it (see
  // PutAnnotation).
  const auto memory = metadata_.get_allocator();
  std::pmr::string json(memory);
  internal::AssignJsonText(value, json);
  std::lock_guard<internal::SpinLock> lock(segment_->mu_);
  for (auto& entry : metadata_) {
    if (entry.ns == ns && entry.key == key) {
      entry.json = std::move(json);
      return true;
    }
  }
  metadata_.push_back(
      MetadataEntry{std::pmr::string(ns, memory), std::pmr::string(key, memory), std::move(json)});
  return true;
}

namespace {

// Where writes to an entity that is not writable go (unsampled: never sent; ended: handed to
// the sink, whose thread may be reading the real block). Per thread, never read back.
template <typename Block>
Block& DiscardedBlock() {
  thread_local Block discarded;
  return discarded;
}

}  // namespace

HttpData& Entity::http() {
  if (Discarding()) {
    return DiscardedBlock<HttpData>();
  }
  if (http_ == nullptr) {
    http_ = new (segment_->arena.allocate(sizeof(HttpData), alignof(HttpData))) HttpData();
  }
  return *http_;
}

AwsData& Entity::aws() {
  if (Discarding()) {
    return DiscardedBlock<AwsData>();
  }
  if (!aws_) aws_ = std::make_unique<AwsData>();
  return *aws_;
}

void Entity::SetError() {
  if (!Writable()) return;
  std::lock_guard<internal::SpinLock> lock(segment_->mu_);
  error_ = true;
}

void Entity::SetFault() {
  if (!Writable()) return;
  std::lock_guard<internal::SpinLock> lock(segment_->mu_);
  fault_ = true;
}

void Entity::SetThrottle() {
  if (!Writable()) return;
  std::lock_guard<internal::SpinLock> lock(segment_->mu_);
  throttle_ = true;
}

void Entity::ApplyStatusCode(int status) {
  if (!Writable() || status <= 0) return;
  HttpData& data = http();  // made outside the lock (see SetError)
  std::lock_guard<internal::SpinLock> lock(segment_->mu_);
  if (!data.response) data.response.emplace();
  data.response->status = status;
  if (status >= 500) {
    fault_ = true;
  } else if (status == 429) {
    error_ = true;
    throttle_ = true;
  } else if (status >= 400) {
    error_ = true;
  }
}

void Entity::AddException(const std::exception_ptr& exception, bool remote, bool with_stack) {
  if (!Writable() || !exception) return;
  RecordException(
      internal::Describe(exception, remote, with_stack ? segment_->settings().max_stack_depth : 0));
}

void Entity::AddException(const std::exception& exception, bool remote, bool with_stack) {
  if (!Writable()) return;
  RecordException(
      internal::Describe(exception, remote, with_stack ? segment_->settings().max_stack_depth : 0));
}

void Entity::AddException(ExceptionData exception) {
  if (!Writable()) return;
  if (exception.id.empty()) exception.id = EntityId::Generate();
  RecordException(internal::DescribedException{std::move(exception), nullptr});
}

void Entity::RecordException(internal::DescribedException described) {
  const EntityId known = segment_->RememberException(described);  // takes the tree's lock
  std::lock_guard<internal::SpinLock> lock(segment_->mu_);        // see PutAnnotation
  fault_ = true;
  if (!cause_) cause_ = std::make_unique<CauseData>();
  if (known != described.data.id) {
    // Already recorded below us (it propagated up): refer to it, as the SDKs do.
    if (cause_->exceptions.empty()) cause_->reference = known;
    return;
  }
  if (!cause_->reference.empty()) *cause_ = CauseData();
  cause_->working_directory = internal::WorkingDirectory();
  cause_->exceptions.push_back(std::move(described.data));
}

void Entity::End(double end_time) {
  // An unsampled entity is never sent: its end time is not worth a clock read.
  if (end_time == 0) end_time = sampled_ ? NowEpochSeconds() : start_time_;
  // Not a number or infinite: the schema wants a number, and the daemon drops the document.
  if (!std::isfinite(end_time)) end_time = sampled_ ? NowEpochSeconds() : start_time_;
  if (end_time < start_time_) end_time = start_time_;
  segment_->OnEnded(*this, end_time);
}

// ------------------------------------------------------------------------------------ Subsegment

Subsegment::Subsegment(Segment* segment, Entity* parent, std::string_view name, bool sampled,
                       Namespace ns, double start_time, std::pmr::memory_resource* memory,
                       EntityId id)
    : Entity(segment, parent, name, sampled, start_time, memory, id),
      namespace_(ns),
      precursor_ids_(memory) {}

SqlData& Subsegment::sql() {
  if (Discarding()) {
    return DiscardedBlock<SqlData>();
  }
  if (!sql_) sql_ = std::make_unique<SqlData>();
  return *sql_;
}

Subsegment* Subsegment::BeginSubsegment(std::string_view name, Namespace ns) {
  return segment().BeginSubsegmentUnder(*this, name, ns);
}

// --------------------------------------------------------------------------------------- Segment

std::shared_ptr<Segment> Segment::Create(SegmentOptions options,
                                         std::shared_ptr<const SegmentSettings> settings,
                                         std::shared_ptr<EntityCounters> counters) {
  // Epoch seconds that fit a trace id. Anything else (unset, negative, not a number,
  // milliseconds by mistake) starts the segment now: a trace id's time must be right.
  const double given = options.start_time;
  const double start =
      std::isfinite(given) && given > 0 && given < 4294967296.0 ? given : NowEpochSeconds();
  if (settings == nullptr) settings = std::make_shared<const SegmentSettings>();
  // One allocation for the segment and its reference count.
  return std::make_shared<Segment>(CreateKey(), std::move(options), std::move(settings),
                                   std::move(counters), start);
}

Segment::Segment(CreateKey, SegmentOptions options, std::shared_ptr<const SegmentSettings> settings,
                 std::shared_ptr<EntityCounters> counters, double start_time)
    : Entity(this, nullptr, options.name, options.sampled, start_time, &arena),
      trace_id_(options.trace_id.empty() ? TraceId::GenerateAt(static_cast<uint32_t>(start_time))
                                         : options.trace_id),
      parent_id_(options.parent_id),
      sampling_rule_name_(std::move(options.sampling_rule_name)),
      propagated_header_keys_(std::move(options.propagated_header_keys)),
      settings_(std::move(settings)),
      counters_(counters ? std::move(counters) : std::make_shared<EntityCounters>()) {
  if (options.sampled && !settings_->origin.empty()) origin_ = settings_->origin;
}

Segment::~Segment() = default;

void internal::DestroySubsegment::operator()(Subsegment* subsegment) const {
  subsegment->~Subsegment();
}

EntityId Segment::RememberException(const internal::DescribedException& described) {
  if (described.identity == nullptr) return described.data.id;
  std::lock_guard<internal::SpinLock> lock(mu_);
  for (const KnownException& known : known_exceptions_) {
    if (known.identity == described.identity && known.type == described.data.type &&
        known.message == described.data.message) {
      return known.id;
    }
  }
  known_exceptions_.push_back(KnownException{described.identity, described.object,
                                             described.data.type, described.data.message,
                                             described.data.id});
  return described.data.id;
}

ServiceData& Segment::service() {
  if (Discarding()) {
    return DiscardedBlock<ServiceData>();
  }
  if (!service_) service_ = std::make_unique<ServiceData>();
  return *service_;
}

Subsegment* Segment::BeginSubsegment(std::string_view name, Namespace ns) {
  return BeginSubsegmentUnder(*this, name, ns);
}

Subsegment* Segment::BeginSubsegmentUnder(Entity& parent, std::string_view name, Namespace ns) {
  const double start_time = NowEpochSeconds();
  std::lock_guard<internal::SpinLock> lock(mu_);
  if (parent.depth_ >= settings_->max_subsegment_depth) {
    // Under `parent` for the flow (ending it makes `parent` current again), with `parent`'s id
    // (an unrecorded parent has its recorded ancestor's), and out of the tree.
    auto* unrecorded = new (arena.allocate(sizeof(Subsegment), alignof(Subsegment)))
        Subsegment(this, &parent, name, parent.sampled(), ns, start_time, &arena, parent.id_);
    unrecorded->unrecorded_ = true;
    unrecorded_subsegments_.emplace_back(unrecorded);
    counters_->subsegments_too_deep.fetch_add(1, std::memory_order_relaxed);
    return unrecorded;
  }
  auto* child = new (arena.allocate(sizeof(Subsegment), alignof(Subsegment)))
      Subsegment(this, &parent, name, parent.sampled(), ns, start_time, &arena);
  parent.children_.emplace_back(child);
  ++open_subsegments_;
  ++held_subsegments_;
  // A child begun under a subtree that already went out (a child task outliving its parent)
  // is sent on its own once it completes; otherwise its ancestors are no longer complete.
  for (Entity* ancestor = &parent; ancestor != nullptr; ancestor = ancestor->parent_) {
    if (ancestor->streamed_ || (ancestor == this && sent_)) {
      child->detached_ = true;
      break;
    }
  }
  if (!child->detached_) {
    for (Entity* ancestor = &parent; ancestor != nullptr; ancestor = ancestor->parent_) {
      ancestor->subtree_done_ = false;
    }
  }
  return child;
}

bool Segment::sent() const {
  std::lock_guard<internal::SpinLock> lock(mu_);
  return sent_;
}

int Segment::open_subsegments() const {
  std::lock_guard<internal::SpinLock> lock(mu_);
  return open_subsegments_;
}

bool Segment::UpdateDone(Entity& node) {
  if (node.subtree_done_) return true;
  if (!node.ended()) return false;
  for (const auto& child : node.children_) {
    if (!child->streamed_ && !child->detached_ && !UpdateDone(*child)) return false;
  }
  node.subtree_done_ = true;
  return true;
}

int Segment::HeldIn(const Entity& root) const {
  int held = 1;
  for (const auto& child : root.children_) {
    if (!child->streamed_ && !child->detached_) held += HeldIn(*child);
  }
  return held;
}

void Segment::CollectStreamable(Entity& node, std::vector<DocumentRef>& out) {
  bool any_streamed = false;
  for (const auto& child : node.children_) {
    if (child->streamed_) {
      any_streamed = true;  // a detached child sent on its own
      continue;
    }
    if (child->detached_) continue;
    if (UpdateDone(*child)) {
      held_subsegments_ -= HeldIn(*child);
      child->streamed_ = true;
      any_streamed = true;
      out.push_back(DocumentRef{shared_from_this(), child.get()});
    } else {
      CollectStreamable(*child, out);
    }
  }
  if (!any_streamed) return;
  // Stable: the children left keep their begin order.
  std::pmr::vector<SubsegmentPtr>& children = node.children_;
  size_t kept = 0;
  for (size_t i = 0; i < children.size(); ++i) {
    if (children[i]->streamed_) {
      streamed_subtrees_.push_back(std::move(children[i]));
    } else if (kept++ != i) {
      children[kept - 1] = std::move(children[i]);
    }
  }
  children.erase(children.begin() + static_cast<std::ptrdiff_t>(kept), children.end());
}

void Segment::OnEnded(Entity& entity, double end_time) {
  std::vector<DocumentRef> documents;
  std::shared_ptr<Segment> release_self;  // dropped outside the lock
  // The exceptions recorded, let go of once the segment completes (their destructors are the
  // user's: run outside the lock, on the thread that ends the segment).
  std::vector<KnownException> known_exceptions;
  {
    std::lock_guard<internal::SpinLock> lock(mu_);
    // Only ever written under the lock: no read-modify-write needed.
    if (entity.end_time_.load(std::memory_order_relaxed) != 0) return;  // already ended
    entity.end_time_.store(end_time, std::memory_order_release);
    if (entity.unrecorded_) return;  // not in the tree, nor counted in it
    if (&entity != this) --open_subsegments_;
    const bool segment_complete = ended() && open_subsegments_ == 0 && !sent_;
    if (segment_complete) {
      known_exceptions.swap(known_exceptions_);
      release_self = std::move(self_);
      if (release_self != nullptr) {
        counters_->segments_waiting_for_subsegments.fetch_sub(1, std::memory_order_relaxed);
      }
    } else if (&entity == this) {
      // Ended with subsegments still open: stay alive until the last one ends and we are sent,
      // even if no flow holds us any more.
      self_ = shared_from_this();
      counters_->segments_waiting_for_subsegments.fetch_add(1, std::memory_order_relaxed);
    }
    if (!sampled()) {
      if (segment_complete) sent_ = true;
      return;
    }
    Entity* detached_root = nullptr;
    for (Entity* node = &entity; node != nullptr; node = node->parent_) {
      if (node->detached_) {
        detached_root = node;
        break;
      }
    }
    if (detached_root != nullptr && UpdateDone(*detached_root)) {
      held_subsegments_ -= HeldIn(*detached_root);
      detached_root->streamed_ = true;
      documents.push_back(DocumentRef{shared_from_this(), static_cast<Subsegment*>(detached_root)});
    }
    if (segment_complete) {
      sent_ = true;
      documents.push_back(DocumentRef{shared_from_this(), nullptr});
    } else if (&entity != this && !sent_ && held_subsegments_ > settings_->streaming_threshold) {
      CollectStreamable(*this, documents);
    }
  }
  Send(documents);
}

void Segment::Send(std::vector<DocumentRef>& documents) {
  for (auto& document : documents) {
    const bool whole = document.subtree == nullptr;
    SegmentSink* sink = settings_->sink.get();
    if (sink == nullptr || !sink->Accept(std::move(document))) {
      counters_->documents_not_accepted.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    (whole ? counters_->segments_sent : counters_->subtrees_streamed)
        .fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace xraysink::core
