#include "core/recorder.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <ctime>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/testing/collecting_sink.h"
#include "core/testing/schema_validator.h"
#include "rapidjson/document.h"

namespace xraysink::core {
namespace {

using testing::CollectingSink;

struct Fixture {
  std::shared_ptr<CollectingSink> sink = std::make_shared<CollectingSink>();
  std::shared_ptr<Recorder> recorder;

  explicit Fixture(RecorderOptions options = {}) {
    options.sink = sink;
    options.read_environment = false;
    if (!options.sampler) options.sampler = AlwaysSample();
    if (options.service_name.empty()) options.service_name = "svc";
    recorder = *Recorder::Create(std::move(options));
  }

  static std::shared_ptr<Sampler> AlwaysSample() {
    struct Always : Sampler {
      SamplingDecision ShouldTrace(const SamplingRequest&) override { return {true, ""}; }
    };
    return std::make_shared<Always>();
  }

  // Every document sent so far, parsed and schema-checked.
  std::vector<rapidjson::Document> Documents() const {
    std::vector<rapidjson::Document> out;
    for (const std::string& json : sink->documents()) {
      const absl::Status valid = testing::ValidateSegmentDocument(json);
      EXPECT_TRUE(valid.ok()) << valid.message();
      out.emplace_back().Parse(json.c_str());
    }
    return out;
  }
};

// Restores the flow's context whatever a test left in it.
class RecorderTest : public ::testing::Test {
 protected:
  void TearDown() override { CurrentContext().Reset(); }
};

TEST_F(RecorderTest, SegmentWithNestedSubsegmentsIsSentOnceAtTheEnd) {
  Fixture f;
  Segment* segment = f.recorder->BeginSegment("orders");
  ASSERT_NE(segment, nullptr);
  EXPECT_EQ(f.recorder->CurrentEntity(), segment);
  Subsegment* outer = f.recorder->BeginSubsegment("outer");
  EXPECT_EQ(f.recorder->CurrentEntity(), outer);
  Subsegment* inner = f.recorder->BeginSubsegment("inner", Namespace::kRemote);
  EXPECT_EQ(inner->parent(), outer);
  EXPECT_TRUE(f.recorder->PutAnnotation("k", 1));
  f.recorder->EndSubsegment();
  EXPECT_EQ(f.recorder->CurrentEntity(), outer);
  f.recorder->EndSubsegment();
  EXPECT_EQ(f.sink->size(), 0u);
  f.recorder->EndSegment();
  EXPECT_EQ(CurrentContext().current(), nullptr);

  auto docs = f.Documents();
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_STREQ(docs[0]["name"].GetString(), "orders");
  EXPECT_STREQ(docs[0]["subsegments"][0]["name"].GetString(), "outer");
  const auto& inner_json = docs[0]["subsegments"][0]["subsegments"][0];
  EXPECT_STREQ(inner_json["name"].GetString(), "inner");
  EXPECT_EQ(inner_json["annotations"]["k"].GetInt(), 1);
  EXPECT_EQ(f.recorder->stats().segments_sent, 1u);
}

TEST_F(RecorderTest, SegmentNameFallsBackToServiceName) {
  Fixture f;
  f.recorder->BeginSegment();
  f.recorder->EndSegment();
  EXPECT_STREQ(f.Documents()[0]["name"].GetString(), "svc");
}

TEST_F(RecorderTest, SubsegmentOutlivingItsSegmentHoldsTheSendBack) {
  Fixture f;
  Segment* segment = f.recorder->BeginSegment("s");
  Subsegment* late = f.recorder->BeginSubsegment("late");
  f.recorder->EndSegment();  // the flow is done; `late` is still open elsewhere
  EXPECT_EQ(f.sink->size(), 0u);
  EXPECT_EQ(segment->open_subsegments(), 1);
  EXPECT_EQ(f.recorder->stats().segments_waiting_for_subsegments, 1u);  // visible while it waits
  late->End();
  EXPECT_EQ(f.recorder->stats().segments_waiting_for_subsegments, 0u);
  auto docs = f.Documents();
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_STREQ(docs[0]["subsegments"][0]["name"].GetString(), "late");
  EXPECT_FALSE(docs[0]["subsegments"][0].HasMember("in_progress"));
}

TEST_F(RecorderTest, StreamsCompletedChildrenOfOpenSubsegment) {
  // Spec 4.4: threshold 2, nested a{b,c}: b and c go out while a is open.
  RecorderOptions options;
  options.streaming_threshold = 2;
  Fixture f(options);
  Segment* segment = f.recorder->BeginSegment("s");
  Subsegment* a = f.recorder->BeginSubsegment("a");
  f.recorder->BeginSubsegment("b");
  f.recorder->EndSubsegment();
  f.recorder->BeginSubsegment("c");
  f.recorder->EndSubsegment();
  ASSERT_EQ(f.sink->size(), 2u);
  for (const auto& doc : f.Documents()) {
    EXPECT_STREQ(doc["type"].GetString(), "subsegment");
    EXPECT_EQ(std::string(doc["parent_id"].GetString()), a->id().ToString());
    EXPECT_EQ(std::string(doc["trace_id"].GetString()), segment->trace_id().ToString());
  }
  f.recorder->EndSubsegment();
  f.recorder->EndSegment();
  auto docs = f.Documents();
  ASSERT_EQ(docs.size(), 3u);
  const auto& a_json = docs[2]["subsegments"][0];
  EXPECT_STREQ(a_json["name"].GetString(), "a");
  EXPECT_FALSE(a_json.HasMember("subsegments"));  // b and c were sent already
}

TEST_F(RecorderTest, FortySequentialSubsegmentsWithDefaultThreshold) {
  Fixture f;
  f.recorder->BeginSegment("s");
  for (int i = 0; i < 40; ++i) {
    f.recorder->BeginSubsegment("sub");
    f.recorder->EndSubsegment();
  }
  f.recorder->EndSegment();
  auto docs = f.Documents();
  ASSERT_EQ(docs.size(), 32u);  // as aws-xray-sdk-core: 31 streamed + the segment with 9
  EXPECT_EQ(docs.back()["subsegments"].Size(), 9u);
  EXPECT_EQ(f.recorder->stats().subtrees_streamed, 31u);
}

// A long-lived segment (a connection, a job) streams thousands of subsegments: each streaming
// pass must walk only what the segment still holds, and every subsegment still arrives once.
TEST_F(RecorderTest, ALongLivedSegmentHoldsOnlyWhatItHasNotStreamed) {
  Fixture f;
  Segment* segment = f.recorder->BeginSegment("s");
  Subsegment* open = segment->BeginSubsegment("open");  // begun first, ends last
  constexpr int kSubsegments = 1000;
  size_t most_held = 0;
  for (int i = 0; i < kSubsegments; ++i) {
    segment->BeginSubsegment("sub-" + std::to_string(i))->End();
    segment->WithTreeLocked([&] { most_held = std::max(most_held, segment->children().size()); });
  }
  EXPECT_LE(most_held, 32u);  // the threshold (30), the open one, the one that crossed it
  open->End();
  f.recorder->EndSegment();

  std::multiset<std::string> names;
  const std::vector<rapidjson::Document> docs = f.Documents();
  for (const rapidjson::Document& doc : docs) {
    names.insert(doc["name"].GetString());
    if (!doc.HasMember("subsegments")) continue;
    int previous = -1;  // what the segment still held, in begin order
    for (const auto& child : doc["subsegments"].GetArray()) {
      const std::string name = child["name"].GetString();
      names.insert(name);
      const int number = name == "open" ? -1 : std::stoi(name.substr(4));
      EXPECT_TRUE(name == "open" ? previous == -1 : number > previous) << name;
      previous = std::max(previous, number);
    }
  }
  EXPECT_EQ(names.size(), kSubsegments + 2u);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  EXPECT_EQ(f.recorder->stats().subtrees_streamed, docs.size() - 1);
}

// A streamed subtree takes all its subsegments out of the count that triggers streaming, not
// only its root: otherwise the count drifts up with each nested subtree streamed, until every
// subsegment goes out on its own as soon as it ends.
TEST_F(RecorderTest, StreamingNestedSubtreesKeepsTheCountRight) {
  RecorderOptions options;
  options.streaming_threshold = 2;
  Fixture f(options);
  Segment* segment = f.recorder->BeginSegment("s");
  for (int i = 0; i < 4; ++i) {
    Subsegment* outer = segment->BeginSubsegment("x" + std::to_string(i));
    outer->BeginSubsegment("c" + std::to_string(i))->End();
    outer->End();
  }
  segment->BeginSubsegment("last")->End();
  f.recorder->EndSegment();
  const std::vector<rapidjson::Document> docs = f.Documents();
  ASSERT_FALSE(docs.empty());
  const rapidjson::Document& whole = docs.back();
  ASSERT_STREQ(whole["name"].GetString(), "s");
  ASSERT_TRUE(whole.HasMember("subsegments"));  // the last two were held, under the threshold
  std::vector<std::string> held;
  for (const auto& child : whole["subsegments"].GetArray())
    held.push_back(child["name"].GetString());
  EXPECT_EQ(held, (std::vector<std::string>{"x3", "last"}));
  EXPECT_EQ(docs.size(), 7u);  // x0, c1, x1, c2, x2, c3 streamed, then the segment
}

TEST_F(RecorderTest, ChildBegunUnderStreamedParentStillArrivesUnderIt) {
  RecorderOptions options;
  options.streaming_threshold = 0;
  Fixture f(options);
  Segment* segment = f.recorder->BeginSegment("s");
  Subsegment* parent = f.recorder->BeginSubsegment("parent");
  TraceContext child_context = CurrentContext();  // a child task's copy
  f.recorder->EndSubsegment();                    // parent ends and is streamed
  ASSERT_EQ(f.sink->size(), 1u);
  {
    ScopedContext scope(child_context);
    EXPECT_EQ(f.recorder->CurrentEntity(), parent);
    f.recorder->BeginSubsegment("child");
    f.recorder->EndSubsegment();
  }
  f.recorder->EndSegment();
  auto docs = f.Documents();
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_FALSE(docs[0].HasMember("subsegments"));
  EXPECT_STREQ(docs[1]["name"].GetString(), "child");
  EXPECT_EQ(std::string(docs[1]["parent_id"].GetString()), parent->id().ToString());
  EXPECT_EQ(std::string(docs[2]["id"].GetString()), segment->id().ToString());
}

TEST_F(RecorderTest, ChildContextIsIsolatedFromParent) {
  Fixture f;
  Segment* segment = f.recorder->BeginSegment("s");
  TraceContext child = CurrentContext();
  Subsegment* child_sub;
  {
    ScopedContext scope(child);
    child_sub = f.recorder->BeginSubsegment("child");
    EXPECT_EQ(f.recorder->CurrentEntity(), child_sub);
  }
  EXPECT_EQ(f.recorder->CurrentEntity(), segment);  // the parent never sees the child's entity
  Subsegment* parent_sub = f.recorder->BeginSubsegment("parent");
  EXPECT_EQ(parent_sub->parent(), segment);  // sibling, not nested under child's
  {
    ScopedContext scope(child);
    EXPECT_EQ(f.recorder->CurrentEntity(), child_sub);
    f.recorder->EndSubsegment();
  }
  EXPECT_EQ(f.recorder->CurrentEntity(), parent_sub);
  f.recorder->EndSubsegment();
  f.recorder->EndSegment();
  auto docs = f.Documents();
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0]["subsegments"].Size(), 2u);
}

TEST_F(RecorderTest, ConcurrentFlowsUnderOneSegment) {
  Fixture f;
  f.recorder->BeginSegment("s");
  TraceContext parent = CurrentContext();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      TraceContext mine = parent;
      ScopedContext scope(mine);
      for (int i = 0; i < 200; ++i) {
        Subsegment* sub = f.recorder->BeginSubsegment("t" + std::to_string(t));
        sub->PutAnnotation("i", i);
        f.recorder->BeginSubsegment("inner");
        f.recorder->EndSubsegment();
        f.recorder->EndSubsegment();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  f.recorder->EndSegment();
  // Every subsegment arrives exactly once, streamed or embedded, with its inner child.
  std::multiset<std::string> names;
  size_t inner = 0;
  for (const auto& doc : f.Documents()) {
    const auto count = [&](const rapidjson::Value& entity, auto&& self) -> void {
      names.insert(entity["name"].GetString());
      if (entity.HasMember("subsegments")) {
        for (const auto& child : entity["subsegments"].GetArray()) self(child, self);
      }
    };
    count(doc, count);
  }
  for (const auto& name : names) inner += name == "inner";
  EXPECT_EQ(inner, 1600u);
  for (int t = 0; t < 8; ++t) EXPECT_EQ(names.count("t" + std::to_string(t)), 200u);
}

// Child flows share their parent's entity until they begin their own: annotations, metadata
// and exceptions they record on it from several threads at once all land (and TSan sees no
// race with each other or with the serializer).
TEST_F(RecorderTest, ChildFlowsRecordOnTheirSharedParentFromManyThreads) {
  Fixture f;
  f.recorder->BeginSegment("s");
  f.recorder->BeginSubsegment("fan-out");
  const TraceContext parent = CurrentContext();
  constexpr int kThreads = 4;
  constexpr int kEach = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      TraceContext mine = parent;
      ScopedContext scope(mine);
      for (int i = 0; i < kEach; ++i) {
        const std::string key = "t" + std::to_string(t) + "_" + std::to_string(i);
        f.recorder->PutAnnotation(key, i);
        f.recorder->PutMetadata(key, JsonValue::Object({{"i", i}}));
      }
      core::Entity* shared = f.recorder->CurrentEntity();
      shared->AddException(std::runtime_error("child " + std::to_string(t)), /*remote=*/false,
                           /*with_stack=*/false);
      shared->SetError();
      shared->SetThrottle();
      shared->ApplyStatusCode(503);
    });
  }
  for (auto& thread : threads) thread.join();
  f.recorder->EndSubsegment();
  f.recorder->EndSegment();
  const std::vector<rapidjson::Document> docs = f.Documents();
  ASSERT_EQ(docs.size(), 1u);
  const auto& fan_out = docs[0]["subsegments"][0];
  EXPECT_EQ(fan_out["annotations"].MemberCount(), size_t{kThreads * kEach});
  EXPECT_EQ(fan_out["metadata"]["default"].MemberCount(), size_t{kThreads * kEach});
  EXPECT_EQ(fan_out["cause"]["exceptions"].Size(), size_t{kThreads});
  EXPECT_TRUE(fan_out["error"].GetBool());
  EXPECT_TRUE(fan_out["throttle"].GetBool());
  EXPECT_EQ(fan_out["http"]["response"]["status"].GetInt(), 503);
}

// An end time that is not a number, or infinite, is now: the schema wants a number.
TEST_F(RecorderTest, ANonFiniteEndTimeIsNow) {
  Fixture f;
  Segment* segment = f.recorder->BeginSegment("s");
  segment->BeginSubsegment("nan")->End(std::nan(""));
  segment->End(std::numeric_limits<double>::infinity());
  const std::vector<rapidjson::Document> docs = f.Documents();  // schema-checked
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_TRUE(docs[0]["end_time"].IsNumber());
  EXPECT_GE(docs[0]["end_time"].GetDouble(), docs[0]["start_time"].GetDouble());
  EXPECT_TRUE(docs[0]["subsegments"][0]["end_time"].IsNumber());
}

Recorder* recorder_for_handler = nullptr;  // by the handlers below
int handler_calls = 0;
void HandlerAskingForTheSegment(LogLevel, std::string_view) {
  ++handler_calls;
  recorder_for_handler->CurrentSegment();  // missing too: the library logs again
}
void ThrowingHandler(LogLevel, std::string_view) {
  ++handler_calls;
  throw std::runtime_error("handler bug");
}

// A log handler that calls back into the library would recurse until the stack overflowed: what
// it causes goes to stderr. One that throws does not throw into the library's caller.
TEST_F(RecorderTest, LogHandlersThatCallBackOrThrowAreContained) {
  Fixture f;
  recorder_for_handler = f.recorder.get();
  handler_calls = 0;
  SetLogHandler(&HandlerAskingForTheSegment);
  f.recorder->EndSegment();  // no segment: context missing, logged
  EXPECT_EQ(handler_calls, 1);
  EXPECT_EQ(f.recorder->stats().context_missing, 2u);
  Fixture g;  // its first report is logged (f's next ones are held back: see below)
  SetLogHandler(&ThrowingHandler);
  EXPECT_NO_THROW(g.recorder->EndSegment());
  SetLogHandler(nullptr);
  EXPECT_EQ(handler_calls, 2);
  EXPECT_EQ(g.recorder->stats().context_missing, 1u);
}

std::vector<std::string> logged_lines;  // by CollectLines
void CollectLines(LogLevel, std::string_view message) { logged_lines.emplace_back(message); }

// A loop that is never traced (a background job calling a traced client) reports a missing
// context on every call: one line, then at most one per interval; every report is counted.
TEST_F(RecorderTest, RepeatedContextMissingIsLoggedOncePerIntervalAndCountedEveryTime) {
  Fixture f;
  logged_lines.clear();
  SetLogHandler(&CollectLines);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(f.recorder->BeginSubsegment("call"), nullptr);
  f.recorder->BeginSegment("s");
  for (int i = 0; i < 100; ++i) f.recorder->EndSubsegment();  // the current entity is a segment
  f.recorder->EndSegment();
  SetLogHandler(nullptr);
  EXPECT_EQ(f.recorder->stats().context_missing, 1000u);
  ASSERT_EQ(logged_lines.size(), 2u);
  EXPECT_NE(logged_lines[0].find("cannot find the current segment/subsegment (begin subsegment "
                                 "'call')"),
            std::string::npos)
      << logged_lines[0];
  EXPECT_NE(logged_lines[0].find("repeats logged at most once every 10 s; "
                                 "RecorderStats::context_missing counts them all"),
            std::string::npos)
      << logged_lines[0];
  EXPECT_NE(logged_lines[1].find("the current entity is a segment"), std::string::npos)
      << logged_lines[1];
}

// Once ended, an entity is the sink's (its thread may be serializing it): the data blocks and
// flags no longer change, and the attempts are counted.
TEST_F(RecorderTest, WritesAfterTheEndAreDiscardedAndCounted) {
  Fixture f;
  Segment* segment = f.recorder->BeginSegment("s");
  segment->http().request.emplace().url = "http://a/";
  Subsegment* sub = segment->BeginSubsegment("q");
  sub->End();
  segment->End();
  const uint64_t before = f.recorder->stats().mutations_after_end;
  segment->http().request.emplace().url = "http://changed/";
  segment->aws().operation = "late";
  segment->service().version = "late";
  segment->SetError();
  segment->SetFault();
  sub->sql().url = "late";
  sub->set_namespace(Namespace::kAws);
  EXPECT_EQ(segment->http_data()->request->url, "http://a/");
  EXPECT_TRUE(segment->aws_data() == nullptr || segment->aws_data()->operation.empty());
  EXPECT_TRUE(segment->service_data() == nullptr || segment->service_data()->version != "late");
  EXPECT_FALSE(segment->error());
  EXPECT_FALSE(segment->fault());
  EXPECT_EQ(sub->sql_data(), nullptr);
  EXPECT_EQ(sub->ns(), Namespace::kLocal);
  EXPECT_EQ(f.recorder->stats().mutations_after_end, before + 4);  // the four blocks
}

// Depth of the deepest subsegment in a document (the segment's own level is 0).
int Depth(const rapidjson::Value& entity) {
  int deepest = 0;
  if (entity.HasMember("subsegments")) {
    for (const auto& child : entity["subsegments"].GetArray()) {
      deepest = std::max(deepest, 1 + Depth(child));
    }
  }
  return deepest;
}

// Number of subsegments under an entity in a document.
int Count(const rapidjson::Value& entity) {
  int count = 0;
  if (entity.HasMember("subsegments")) {
    for (const auto& child : entity["subsegments"].GetArray()) count += 1 + Count(child);
  }
  return count;
}

TEST_F(RecorderTest, SubsegmentsDeeperThanTheLimitAreUnrecorded) {
  RecorderOptions options;
  options.max_subsegment_depth = 2;
  Fixture f(std::move(options));
  Segment* segment = f.recorder->BeginSegment("s");
  Subsegment* one = f.recorder->BeginSubsegment("one");
  const std::string one_id = one->id().ToString();  // the segment goes once sent
  Subsegment* two = f.recorder->BeginSubsegment("two");
  Subsegment* three = f.recorder->BeginSubsegment("three");
  Subsegment* four = f.recorder->BeginSubsegment("four");
  EXPECT_FALSE(two->unrecorded());
  ASSERT_TRUE(three->unrecorded());
  ASSERT_TRUE(four->unrecorded());
  // Calls and logs under them point at the deepest recorded entity.
  EXPECT_EQ(three->id(), two->id());
  EXPECT_EQ(four->id(), two->id());
  EXPECT_EQ(four->depth(), 4);
  EXPECT_FALSE(four->PutAnnotation("k", 1));
  EXPECT_EQ(f.recorder->stats().subsegments_too_deep, 2u);
  // The flow still unwinds through them.
  EXPECT_EQ(f.recorder->CurrentEntity(), four);
  f.recorder->EndSubsegment();
  EXPECT_EQ(f.recorder->CurrentEntity(), three);
  f.recorder->EndSubsegment();
  EXPECT_EQ(f.recorder->CurrentEntity(), two);
  EXPECT_EQ(segment->open_subsegments(), 2);
  f.recorder->EndSubsegment();
  f.recorder->EndSubsegment();
  f.recorder->EndSegment();
  const auto docs = f.Documents();
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(Depth(docs[0]), 2);
  EXPECT_EQ(docs[0]["subsegments"][0]["id"].GetString(), one_id);
}

// A worker that leaks an open subsegment per message (an early return past its End) nests each
// message under the last. Tens of thousands deep, the tree's recursive walks (streaming when a
// subsegment ends, serialization) overflowed the stack and each begin walked every ancestor; on
// a thread with a small stack, as pool threads and coroutines often have.
TEST_F(RecorderTest, AFlowThatLeaksOpenSubsegmentsStaysBounded) {
  Fixture f;
  constexpr int kMessages = 20000;
  std::atomic<bool> finished{false};
  auto worker = [&] {
    f.recorder->BeginSegment("worker");
    for (int i = 0; i < kMessages; ++i) {
      f.recorder->BeginSubsegment("message");  // leaked: never ended
      f.recorder->BeginSubsegment("step");
      f.recorder->EndSubsegment();
    }
    // The leaks are ended at last, innermost first, so that the segment goes out.
    while (f.recorder->CurrentEntity() != nullptr && !f.recorder->CurrentEntity()->is_segment()) {
      f.recorder->EndSubsegment();
    }
    f.recorder->EndSegment();
    finished = true;
  };
  pthread_attr_t attributes;
  ASSERT_EQ(pthread_attr_init(&attributes), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attributes, 256 * 1024), 0);
  pthread_t thread;
  auto run = [](void* arg) -> void* {
    (*static_cast<decltype(worker)*>(arg))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attributes, run, &worker), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attributes);
  ASSERT_TRUE(finished);
  EXPECT_EQ(f.recorder->stats().subsegments_too_deep, 2u * kMessages - 64 - 63);
  // What was recorded went out (the segment, and the subtrees it streamed): the first 64
  // messages and the 63 steps under them, no document deeper than the limit.
  int segments = 0, subsegments = 0;
  for (const auto& doc : f.Documents()) {
    const bool streamed = doc.HasMember("type");
    segments += streamed ? 0 : 1;
    subsegments += Count(doc) + (streamed ? 1 : 0);
    EXPECT_LE(Depth(doc), 64);
  }
  EXPECT_EQ(segments, 1);
  EXPECT_EQ(subsegments, 64 + 63);
}

TEST_F(RecorderTest, MaxSubsegmentDepthIsChecked) {
  for (const int depth : {0, -1, 257}) {
    RecorderOptions options;
    options.max_subsegment_depth = depth;
    options.read_environment = false;
    EXPECT_EQ(Recorder::Create(std::move(options)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << depth;
  }
}

TEST_F(RecorderTest, UnsampledTraceSendsNothingButKeepsIds) {
  Fixture f;
  BeginSegmentOptions options;
  options.trace_id = *TraceId::Parse("1-5759e988-bd862e3fe1be46a994272793");
  options.parent_id = EntityId(0x53995c3f42cd8ad8);
  options.sampling = SamplingDecision{false, ""};
  Segment* segment = f.recorder->BeginSegment("s", options);
  ASSERT_NE(segment, nullptr);
  EXPECT_FALSE(segment->sampled());
  EXPECT_EQ(segment->trace_id().view(), "1-5759e988-bd862e3fe1be46a994272793");
  EXPECT_EQ(segment->parent_id(), EntityId(0x53995c3f42cd8ad8));
  Subsegment* sub = f.recorder->BeginSubsegment("sub");
  ASSERT_NE(sub, nullptr);
  EXPECT_FALSE(sub->sampled());
  EXPECT_FALSE(sub->PutAnnotation("k", 1));
  f.recorder->EndSubsegment();
  f.recorder->EndSegment();
  EXPECT_EQ(f.sink->size(), 0u);
  EXPECT_EQ(f.recorder->stats().segments_unsampled, 1u);
}

TEST_F(RecorderTest, SamplerDecidesWhenNoDecisionIsGiven) {
  struct Never : Sampler {
    SamplingDecision ShouldTrace(const SamplingRequest& request) override {
      seen_service = std::string(request.service);
      return {false, ""};
    }
    std::string seen_service;
  };
  auto never = std::make_shared<Never>();
  RecorderOptions options;
  options.sampler = never;
  Fixture f(options);
  EXPECT_FALSE(f.recorder->BeginSegment("jobs")->sampled());
  EXPECT_EQ(never->seen_service, "jobs");
  f.recorder->EndSegment();
  EXPECT_EQ(f.sink->size(), 0u);
}

TEST_F(RecorderTest, DisabledRecorderIsANoOp) {
  RecorderOptions options;
  options.enabled = false;
  Fixture f(options);
  EXPECT_EQ(f.recorder->BeginSegment("s"), nullptr);
  EXPECT_EQ(f.recorder->BeginSubsegment("x"), nullptr);
  EXPECT_FALSE(f.recorder->PutAnnotation("k", 1));
  f.recorder->EndSubsegment();
  f.recorder->EndSegment();
  EXPECT_EQ(f.sink->size(), 0u);
  EXPECT_EQ(f.recorder->stats().context_missing, 0u);
}

TEST_F(RecorderTest, ContextMissingStrategies) {
  {
    RecorderOptions options;
    options.context_missing = ContextMissing::kLogError;
    Fixture f(options);
    EXPECT_EQ(f.recorder->BeginSubsegment("x"), nullptr);
    f.recorder->EndSubsegment();
    EXPECT_EQ(f.recorder->stats().context_missing, 2u);
  }
  {
    RecorderOptions options;
    options.context_missing = ContextMissing::kIgnoreError;
    Fixture f(options);
    EXPECT_EQ(f.recorder->BeginSubsegment("x"), nullptr);
    EXPECT_EQ(f.recorder->stats().context_missing, 1u);
  }
  {
    RecorderOptions options;
    options.context_missing = ContextMissing::kRuntimeError;
    Fixture f(options);
    EXPECT_THROW(f.recorder->BeginSubsegment("x"), ContextMissingError);
  }
}

TEST_F(RecorderTest, EnvironmentWinsOverOptions) {
  setenv("AWS_XRAY_SDK_ENABLED", "false", 1);
  RecorderOptions options;
  EXPECT_FALSE((*Recorder::Create(options))->enabled());
  unsetenv("AWS_XRAY_SDK_ENABLED");

  setenv("AWS_XRAY_TRACING_NAME", "from-env", 1);
  setenv("AWS_XRAY_CONTEXT_MISSING", "IGNORE_ERROR", 1);
  options.service_name = "from-code";
  auto recorder = *Recorder::Create(options);
  EXPECT_EQ(recorder->service_name(), "from-env");
  EXPECT_EQ(recorder->context_missing(), ContextMissing::kIgnoreError);
  unsetenv("AWS_XRAY_TRACING_NAME");
  unsetenv("AWS_XRAY_CONTEXT_MISSING");
}

TEST_F(RecorderTest, RefusedDocumentsAreCounted) {
  Fixture f;
  f.sink->set_accept(false);
  f.recorder->BeginSegment("s");
  f.recorder->EndSegment();
  EXPECT_EQ(f.recorder->stats().documents_not_accepted, 1u);
  EXPECT_EQ(f.recorder->stats().segments_sent, 0u);
}

// A start time no trace id can hold (negative, not a number, milliseconds by mistake) starts
// the segment now, and its trace id carries this second.
TEST_F(RecorderTest, AStartTimeThatIsNotEpochSecondsMeansNow) {
  Fixture f;
  for (const double start : {-5.0, std::nan(""), std::numeric_limits<double>::infinity(), 1.7e12}) {
    const double before = static_cast<double>(std::time(nullptr)) - 1;
    Segment* segment = f.recorder->BeginSegment("s", {.start_time = start});
    ASSERT_NE(segment, nullptr) << start;
    EXPECT_GE(segment->start_time(), before) << start;
    EXPECT_LE(segment->start_time(), before + 60) << start;
    EXPECT_GE(segment->trace_id().epoch_seconds(), static_cast<uint32_t>(before)) << start;
    f.recorder->EndSegment();
  }
  EXPECT_EQ(f.Documents().size(), 4u);
}

// Without settings a segment works, and is never sent (no sink).
TEST_F(RecorderTest, ASegmentWithoutSettingsHasNoSink) {
  SegmentOptions options;
  options.name = "alone";
  std::shared_ptr<Segment> segment = Segment::Create(std::move(options), nullptr, nullptr);
  ASSERT_NE(segment, nullptr);
  segment->BeginSubsegmentUnder(*segment, "child", Namespace::kLocal)->End();
  segment->End();
  EXPECT_TRUE(segment->ended());
}

TEST_F(RecorderTest, GlobalRecorderStartsDisabled) {
  EXPECT_FALSE(GlobalRecorder().enabled());
  Fixture f;
  SetGlobalRecorder(f.recorder);
  EXPECT_EQ(&GlobalRecorder(), f.recorder.get());
  SetGlobalRecorder(nullptr);
  EXPECT_FALSE(GlobalRecorder().enabled());
}

}  // namespace
}  // namespace xraysink::core
