#ifndef XRAYSINK_CORE_ENTITY_H_
#define XRAYSINK_CORE_ENTITY_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/ids.h"
#include "core/internal/segment_arena.h"
#include "core/internal/spin_lock.h"
#include "core/json_value.h"

namespace xraysink::core {

class Segment;
class Subsegment;
class SegmentSink;
struct DocumentRef;
namespace internal {
struct DescribedException;
}  // namespace internal

// `http` of a segment or subsegment. Empty strings are not written; strings are cut to 250
// characters when serialized.
struct HttpData {
  struct Request {
    std::string method;
    std::string url;
    std::string user_agent;
    std::string client_ip;
    bool x_forwarded_for = false;
    bool traced = false;  // subsegments: the downstream service is traced too
  };
  struct Response {
    int status = 0;  // 0: not set
    std::optional<int64_t> content_length;
  };
  std::optional<Request> request;
  std::optional<Response> response;
};

// One CloudWatch Logs group a segment's logs go to (`aws.cloudwatch_logs[]`).
struct LogGroup {
  std::string log_group;
  std::string arn;  // optional
};

// `aws` of a segment (resource metadata) or subsegment (AWS SDK call data).
struct AwsData {
  struct Ec2 {
    std::string instance_id, availability_zone, instance_size, ami_id;
  };
  struct Ecs {
    std::string container, container_id, container_arn;
  };
  struct ElasticBeanstalk {
    std::string environment_name, version_label;
    std::optional<int64_t> deployment_id;
  };
  struct Eks {
    std::string cluster_name, pod, container_id;
  };
  std::string account_id;
  // Segments.
  std::optional<Ec2> ec2;
  std::optional<Ecs> ecs;
  std::optional<ElasticBeanstalk> elastic_beanstalk;
  std::optional<Eks> eks;
  std::vector<LogGroup> cloudwatch_logs;
  // Subsegments of AWS calls.
  std::string operation, region, request_id, queue_url, table_name;
  std::optional<int> retries;
  JsonValue::Members extra;  // further request parameters, e.g. {"bucket_name": "x"}
};

// `sql` of a subsegment that recorded a query.
struct SqlData {
  std::string connection_string, url, sanitized_query, database_type, database_version,
      driver_version, user, preparation;
};

// `service` of a segment.
struct ServiceData {
  std::string version, compiler, compiler_version, runtime, runtime_version;
};

// One frame of an exception's stack.
struct StackFrame {
  std::string path;
  int line = 0;
  std::string label;
};

// One entry of `cause.exceptions[]`.
struct ExceptionData {
  EntityId id;
  std::string message;
  std::string type;
  bool remote = false;
  int truncated = 0;  // frames left out at the end
  int skipped = 0;    // frames left out between cause and this exception
  EntityId cause;     // id of the exception that caused this one
  std::vector<StackFrame> stack;
};

// `cause`: either a reference to an exception recorded on a descendant (`reference`), or the
// exceptions themselves.
struct CauseData {
  EntityId reference;
  std::string working_directory;
  std::vector<std::string> paths;
  std::vector<ExceptionData> exceptions;
};

// Subsegment `namespace`: local (omitted on the wire), `remote` (downstream calls), `aws`.
enum class Namespace : uint8_t { kLocal, kRemote, kAws };

using AnnotationValue = std::variant<bool, int64_t, double, std::string>;

class Subsegment;
namespace internal {
// Ends a subsegment's life without freeing its memory: subsegments live in their segment's
// arena, freed with the segment.
struct DestroySubsegment {
  void operator()(Subsegment* subsegment) const;
};
// The arena of a segment, as a base class placed before Entity: it outlives the tree it holds.
struct SegmentArenaHolder {
  SegmentArena arena;
};
}  // namespace internal
using SubsegmentPtr = std::unique_ptr<Subsegment, internal::DestroySubsegment>;

// The fields shared by segments and subsegments, and their place in the segment tree.
//
// Threading: an entity's data is written by the flow that owns it (the one that began it) until
// it ends; the tree structure (children, end, counters) is guarded by the segment's lock, so
// child flows may begin and end subsegments under a shared parent concurrently. Data mutators
// are no-ops on unsampled entities and after End().
class Entity {
 public:
  Entity(const Entity&) = delete;
  Entity& operator=(const Entity&) = delete;
  virtual ~Entity();

  EntityId id() const { return id_; }
  const std::string& name() const { return name_; }
  double start_time() const { return start_time_; }
  // 0 while the entity is open.
  double end_time() const { return end_time_.load(std::memory_order_acquire); }
  bool ended() const { return end_time() != 0; }
  bool sampled() const { return sampled_; }
  bool is_segment() const { return parent_ == nullptr; }
  Segment& segment() { return *segment_; }
  const Segment& segment() const { return *segment_; }
  // The segment, or the subsegment this one was begun under.
  const Entity* parent() const { return parent_; }

  // Keys must match [A-Za-z0-9_]{1,500}; an invalid key is dropped (counted) and false returned.
  // Strings are cut to 1000 characters. The same key overwrites.
  bool PutAnnotation(std::string_view key, AnnotationValue value);
  // Any number, bool or string: integers become int64, floating point double.
  template <typename T>
  bool PutAnnotation(std::string_view key, const T& value) {
    if constexpr (std::is_same_v<T, bool>) {
      return PutAnnotation(key, AnnotationValue(value));
    } else if constexpr (std::is_integral_v<T>) {
      return PutAnnotation(key, AnnotationValue(static_cast<int64_t>(value)));
    } else if constexpr (std::is_floating_point_v<T>) {
      return PutAnnotation(key, AnnotationValue(static_cast<double>(value)));
    } else {
      return PutAnnotation(key, AnnotationValue(std::string(std::string_view(value))));
    }
  }
  // Namespaces starting with "AWS." are reserved: dropped (counted) and false returned.
  bool PutMetadata(std::string_view key, JsonValue value, std::string_view ns = "default");

  // Writable data blocks, created on first use. On an unsampled entity (never sent) or an
  // ended one (handed to the sink, whose thread may be reading it) writes go to a block that is
  // thrown away; after the end they are counted in mutations_after_end.
  HttpData& http();
  AwsData& aws();

  // Ignored when not writable, as above. Under the tree's lock, as annotations: child flows
  // share their parent's entity until they begin their own.
  void SetError();
  void SetFault();
  void SetThrottle();
  // 4xx: error; 429: error + throttle; 5xx: fault. Also records the status in http.response.
  void ApplyStatusCode(int status);

  // Records an exception as fault + cause. A stack is captured only when `with_stack`. The same
  // exception object recorded again (e.g. on the parent as it propagates) is referenced by id.
  void AddException(const std::exception_ptr& exception, bool remote = false,
                    bool with_stack = true);
  void AddException(const std::exception& exception, bool remote = false, bool with_stack = true);
  // Records an exception described by hand (for errors that are not C++ exceptions).
  void AddException(ExceptionData exception);

  // Ends the entity now (or at `end_time`, epoch seconds). Idempotent. Hands the segment to its
  // sink once it and everything under it has ended, and streams completed subtrees of large
  // segments.
  void End(double end_time = 0);

  // For serialization (read once ended).
  bool error() const { return error_; }
  bool fault() const { return fault_; }
  bool throttle() const { return throttle_; }
  const HttpData* http_data() const { return http_; }
  const AwsData* aws_data() const { return aws_.get(); }
  const CauseData* cause() const { return cause_.get(); }
  using Annotation = std::pair<std::pmr::string, AnnotationValue>;
  const std::pmr::vector<Annotation>& annotations() const { return annotations_; }
  // A metadata value is turned into JSON text when put: the segment then holds one string per
  // entry, not a tree of allocations, and serializing it is a copy.
  struct MetadataEntry {
    std::pmr::string ns, key;
    std::pmr::string json;
  };
  const std::pmr::vector<MetadataEntry>& metadata() const { return metadata_; }
  // Children in begin order, but for the ones already streamed (sent as documents of their
  // own: they leave the list); only valid under the segment lock or once the tree has ended.
  // Subsegment pointers stay valid while the segment lives: while a flow or handle holds it,
  // and (once it ended) until its last subsegment ended and it was sent.
  const std::pmr::vector<SubsegmentPtr>& children() const { return children_; }
  // True once this subtree went out as a document of its own: not part of its parent's.
  bool streamed() const { return streamed_; }
  // True when begun under a subtree that was already sent: not part of its parent's document.
  bool detached() const { return detached_; }
  // True when begun deeper than the segment's max_subsegment_depth: kept out of the tree (never
  // sent, writes ignored, counted in subsegments_too_deep), with its parent's id, so that calls
  // and logs made under it point at the deepest entity that is recorded.
  bool unrecorded() const { return unrecorded_; }
  // 0 for a segment, its parent's + 1 for a subsegment.
  int depth() const { return depth_; }

 protected:
  // `memory` is the segment's arena: the entity's vectors and strings live there.
  // `id` empty: a new one.
  Entity(Segment* segment, Entity* parent, std::string_view name, bool sampled, double start_time,
         std::pmr::memory_resource* memory, EntityId id = EntityId());
  bool Writable() const { return sampled_ && !unrecorded_ && !ended(); }
  // !Writable(), counting the attempt in mutations_after_end when it comes after the end.
  bool Discarding() const;
  void RecordException(internal::DescribedException described);

 private:
  friend class Segment;
  friend class Subsegment;

  Segment* const segment_;
  Entity* const parent_;
  const EntityId id_;
  const std::string name_;
  const double start_time_;
  std::atomic<double> end_time_{0};
  const int depth_;
  const bool sampled_;
  bool unrecorded_ = false;  // set before the entity is handed out, never changed after
  bool error_ = false;
  bool fault_ = false;
  bool throttle_ = false;
  bool streamed_ = false;      // guarded by the segment lock
  bool detached_ = false;      // begun under a subtree already sent; goes out on its own
  bool subtree_done_ = false;  // ended and every descendant too; guarded by the segment lock
  HttpData* http_ = nullptr;   // in the arena
  std::unique_ptr<AwsData> aws_;
  std::unique_ptr<CauseData> cause_;
  std::pmr::vector<Annotation> annotations_;
  std::pmr::vector<MetadataEntry> metadata_;
  std::pmr::vector<SubsegmentPtr> children_;  // guarded by the segment lock
};

// A subsegment: a unit of work inside a segment (a call, a query, a task's step).
class Subsegment final : public Entity {
 public:
  Namespace ns() const { return namespace_; }
  void set_namespace(Namespace ns) {
    if (Writable()) namespace_ = ns;
  }
  SqlData& sql();  // as http()
  const SqlData* sql_data() const { return sql_.get(); }
  void AddPrecursor(EntityId id) {
    if (Writable()) precursor_ids_.push_back(id);
  }
  const std::pmr::vector<EntityId>& precursor_ids() const { return precursor_ids_; }

  // Begins a child of this subsegment. Returned pointer lives as long as the segment.
  Subsegment* BeginSubsegment(std::string_view name, Namespace ns = Namespace::kLocal);

 private:
  friend class Entity;
  friend class Segment;
  Subsegment(Segment* segment, Entity* parent, std::string_view name, bool sampled, Namespace ns,
             double start_time, std::pmr::memory_resource* memory, EntityId id = EntityId());

  Namespace namespace_;
  std::unique_ptr<SqlData> sql_;
  std::pmr::vector<EntityId> precursor_ids_;
};

// What a segment is created with.
struct SegmentOptions {
  std::string name;
  TraceId trace_id;    // empty: a new trace
  EntityId parent_id;  // empty: the root of the trace
  bool sampled = true;
  std::string sampling_rule_name;
  // Extra keys of the incoming trace header (e.g. `Lineage=...`), forwarded on outgoing calls.
  std::string propagated_header_keys;
  // Epoch seconds; 0 (or anything that is not a time a trace id can hold: negative, not a
  // number, milliseconds by mistake): now.
  double start_time = 0;
};

// Settings a segment takes from its recorder.
struct SegmentSettings {
  std::shared_ptr<SegmentSink> sink;
  // Above this many subsegments held in the tree, completed subtrees are streamed.
  int streaming_threshold = 30;
  int max_stack_depth = 10;
  // Subsegments nest at most this deep; deeper ones are unrecorded (Entity::unrecorded()). A
  // flow that leaks an open subsegment per unit of work nests each unit under the last: without
  // a bound, the tree's recursive walks would overflow the stack.
  int max_subsegment_depth = 64;
  std::string origin;
  ServiceData service;
  AwsData aws;  // resource metadata copied into every sampled segment (ec2, log groups, ...)
  std::string sdk_name = "X-Ray for C++ (xraysink-cpp)";
  std::string sdk_version;
};

// Counters shared by the segments of one recorder (readable from Recorder::stats()).
struct EntityCounters {
  std::atomic<uint64_t> annotations_dropped{0};
  std::atomic<uint64_t> metadata_dropped{0};
  std::atomic<uint64_t> mutations_after_end{0};
  std::atomic<uint64_t> subsegments_too_deep{0};  // begun unrecorded (max_subsegment_depth)
  std::atomic<uint64_t> segments_sent{0};
  std::atomic<uint64_t> subtrees_streamed{0};
  std::atomic<uint64_t> documents_not_accepted{0};  // the sink refused (e.g. full queue)
  // Segments ended while subsegments of theirs were still open, kept (and not sent) until the
  // last one ends: a count that only grows means subsegments that are never ended.
  std::atomic<uint64_t> segments_waiting_for_subsegments{0};
};

// A segment: the work one service does for one request or job. Owns its subsegment tree.
class Segment final : private internal::SegmentArenaHolder,
                      public Entity,
                      public std::enable_shared_from_this<Segment> {
 public:
  // `settings` null: defaults, with no sink (the segment is never sent); `counters` null: its
  // own.
  static std::shared_ptr<Segment> Create(SegmentOptions options,
                                         std::shared_ptr<const SegmentSettings> settings,
                                         std::shared_ptr<EntityCounters> counters);
  // For Create only (std::make_shared needs a public constructor; the key keeps it ours).
  class CreateKey {
    friend class Segment;
    CreateKey() = default;
  };
  Segment(CreateKey, SegmentOptions options, std::shared_ptr<const SegmentSettings> settings,
          std::shared_ptr<EntityCounters> counters, double start_time);
  ~Segment() override;

  const TraceId& trace_id() const { return trace_id_; }
  EntityId parent_id() const { return parent_id_; }
  const std::string& sampling_rule_name() const { return sampling_rule_name_; }
  const std::string& propagated_header_keys() const { return propagated_header_keys_; }
  const SegmentSettings& settings() const { return *settings_; }
  EntityCounters& counters() const { return *counters_; }

  // Segment-only fields.
  void set_user(std::string_view user) {
    if (Writable()) user_ = std::string(user);
  }
  const std::string& user() const { return user_; }
  void set_origin(std::string_view origin) {
    if (Writable()) origin_ = std::string(origin);
  }
  const std::string& origin() const { return origin_; }
  void set_resource_arn(std::string_view arn) {
    if (Writable()) resource_arn_ = std::string(arn);
  }
  const std::string& resource_arn() const { return resource_arn_; }
  ServiceData& service();
  const ServiceData* service_data() const { return service_.get(); }

  Subsegment* BeginSubsegment(std::string_view name, Namespace ns = Namespace::kLocal);
  // Begins a subsegment under `parent` (an entity of this segment).
  Subsegment* BeginSubsegmentUnder(Entity& parent, std::string_view name, Namespace ns);

  // True once the whole segment was handed to the sink.
  bool sent() const;
  // Number of subsegments begun and not yet ended.
  int open_subsegments() const;

  // Runs `fn` with the tree locked so it can be read consistently (serialization).
  template <typename Fn>
  void WithTreeLocked(Fn&& fn) const {
    std::lock_guard<internal::SpinLock> lock(mu_);
    fn();
  }

 private:
  friend class Entity;

  // Called with the entity's end recorded; decides what to send.
  void OnEnded(Entity& entity, double end_time);
  // Collects completed subtrees to stream (mu_ held).
  void CollectStreamable(Entity& node, std::vector<DocumentRef>& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool UpdateDone(Entity& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The subsegments that go out in `root`'s document: itself and what is under it, but for what
  // went out already or goes on its own (detached). Mu_ held.
  int HeldIn(const Entity& root) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Send(std::vector<DocumentRef>& documents);
  // The id an exception object was first recorded under in this segment (or its own id, now
  // remembered).
  EntityId RememberException(const internal::DescribedException& described);

  struct KnownException {
    const void* identity;
    std::exception_ptr object;  // keeps `identity` from being reused while remembered
    std::string type, message;
    EntityId id;
  };

  const TraceId trace_id_;
  const EntityId parent_id_;
  const std::string sampling_rule_name_;
  const std::string propagated_header_keys_;
  const std::shared_ptr<const SegmentSettings> settings_;
  const std::shared_ptr<EntityCounters> counters_;
  std::string user_, origin_, resource_arn_;
  std::unique_ptr<ServiceData> service_;

  mutable internal::SpinLock mu_;  // not absl::Mutex: TSan sees through it
  int open_subsegments_ ABSL_GUARDED_BY(mu_) = 0;
  // Begun and not yet streamed (a streamed subtree counts all it holds).
  int held_subsegments_ ABSL_GUARDED_BY(mu_) = 0;
  bool sent_ ABSL_GUARDED_BY(mu_) = false;
  // Set while the segment has ended and waits for open subsegments.
  std::shared_ptr<Segment> self_ ABSL_GUARDED_BY(mu_);
  std::vector<KnownException> known_exceptions_ ABSL_GUARDED_BY(mu_);
  // Subtrees that went out as documents of their own, taken out of their parents' children so
  // that each streaming pass walks only what is still held (a long-lived segment streams
  // thousands); kept until the segment goes, as queued documents and late children point into
  // them.
  std::vector<SubsegmentPtr> streamed_subtrees_ ABSL_GUARDED_BY(mu_);
  // Subsegments begun too deep: owned here, outside the tree, until the segment goes.
  std::vector<SubsegmentPtr> unrecorded_subsegments_ ABSL_GUARDED_BY(mu_);
};

// Wall-clock time as epoch seconds (microsecond resolution).
double NowEpochSeconds();

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_ENTITY_H_
