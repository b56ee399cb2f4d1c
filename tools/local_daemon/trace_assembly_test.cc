#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "tools/local_daemon/datagram.h"
#include "tools/local_daemon/trace.h"
#include "tools/local_daemon/trace_assembler.h"
#include "tools/local_daemon/trace_printer.h"

namespace xraysink::tools {
namespace {

using ::testing::HasSubstr;

constexpr char kTraceId[] = "1-5759e988-bd862e3fe1be46a994272793";

std::filesystem::path CorpusDirectory() {
  return std::filesystem::path(std::getenv("TEST_SRCDIR")) / std::getenv("TEST_WORKSPACE") /
         "integration_tests/testdata/corpus";
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `json` with every `T` replaced by kTraceId, so test documents stay short.
std::string Doc(std::string_view json) {
  return absl::StrReplaceAll(absl::string_view(json.data(), json.size()),
                             {{"\"T\"", absl::StrCat("\"", kTraceId, "\"")}});
}

ReceivedDocument Parse(std::string_view json) {
  absl::StatusOr<ReceivedDocument> document = ParseDocument(Doc(json));
  EXPECT_TRUE(document.ok()) << document.status() << "\n" << json;
  return *std::move(document);
}

std::string ErrorOf(std::string_view datagram) {
  absl::StatusOr<ReceivedDocument> document = ParseDatagram(datagram);
  if (document.ok()) return "OK";
  EXPECT_EQ(document.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(document.status().message());
}

// --- Datagrams and documents -------------------------------------------------------------------

TEST(DatagramTest, EveryCorpusDocumentParsesExceptTheMalformedOnes) {
  // From the corpus README. indepSubsegmentWithInvalidSqlUrl is listed there only because the
  // OpenTelemetry translator wants a database name out of sql.url; X-Ray does not read it.
  const std::map<std::string, std::string> expected_errors = {
      {"otel-minCauseIsInvalid.json", "cause is not an object or a 16-character id"},
      {"otel-segmentValidationFailed.json", "missing start_time"},
      {"otel-invalidNamespace.json",
       "subsegments[0].subsegments[0]: namespace is not aws, remote or local"},
      {"otel-indepSubsegmentWithContentLengthString.json", "content_length is not an integer"},
      // Fragments meant to be embedded in a segment (see EmbeddedFragmentsOfTheCorpusParse).
      {"awsdocs-subsegment-for-a-downstream-http-call.json", "missing trace_id"},
      {"awsdocs-custom-subsegment-with-metadata.json", "missing trace_id"},
      {"awsdocs-subsegment-with-an-sql-query.json", "missing trace_id"},
  };
  int parsed = 0, rejected = 0;
  for (const auto& file : std::filesystem::directory_iterator(CorpusDirectory())) {
    if (file.path().extension() != ".json") continue;
    const std::string name = file.path().filename();
    const std::string body = ReadFile(file.path());
    absl::StatusOr<ReceivedDocument> document = ParseDatagram(MakeDatagram(body));
    const auto expected = expected_errors.find(name);
    if (expected == expected_errors.end()) {
      ASSERT_TRUE(document.ok()) << name << ": " << document.status();
      EXPECT_EQ(document->entity().name, document->json()["name"].GetString()) << name;
      EXPECT_EQ(document->entity().trace_id, document->json()["trace_id"].GetString()) << name;
      ++parsed;
    } else {
      EXPECT_EQ(document.status().message(), expected->second) << name;
      ++rejected;
    }
  }
  EXPECT_EQ(parsed, 16);
  EXPECT_EQ(rejected, static_cast<int>(expected_errors.size()));
}

TEST(DatagramTest, EmbeddedFragmentsOfTheCorpusParse) {
  for (const char* name : {"awsdocs-subsegment-for-a-downstream-http-call.json",
                           "awsdocs-custom-subsegment-with-metadata.json",
                           "awsdocs-subsegment-with-an-sql-query.json"}) {
    const std::string fragment = ReadFile(CorpusDirectory() / name);
    absl::StatusOr<ReceivedDocument> document = ParseDocument(Doc(absl::StrCat(
        R"({"trace_id":"T","id":"70de5b6f19ff9a0a","name":"app",)",
        R"("start_time":1484786387,"end_time":1484872219,"subsegments":[)", fragment, "]}")));
    ASSERT_TRUE(document.ok()) << name << ": " << document.status();
    ASSERT_EQ(document->entity().subsegments.size(), 1u) << name;
    const ReceivedEntity& subsegment = document->entity().subsegments[0];
    EXPECT_FALSE(subsegment.is_segment);
    EXPECT_EQ(subsegment.parent_id, "70de5b6f19ff9a0a");
    EXPECT_EQ(subsegment.trace_id, kTraceId);
  }
}

TEST(DatagramTest, HeaderFollowsTheDaemon) {
  const std::string body = Doc(R"({"trace_id":"T","id":"70de5b6f19ff9a0a","name":"a",)"
                               R"("start_time":1,"end_time":2})");
  EXPECT_EQ(ErrorOf(MakeDatagram(body)), "OK");
  // Old Python SDKs put spaces in the header; the daemon lower-cases the format.
  EXPECT_EQ(ErrorOf(R"({"format": "JSON", "version": 1})"
                    "\n" +
                    body),
            "OK");
  EXPECT_EQ(ErrorOf(R"({"version":1,"format":"json","extra":0})"
                    "\n" +
                    body),
            "OK");

  EXPECT_EQ(ErrorOf(body), "bad datagram: no header line");
  EXPECT_EQ(ErrorOf("hello\n" + body), "bad header: not a JSON object");
  EXPECT_EQ(ErrorOf("[1]\n" + body), "bad header: not a JSON object");
  EXPECT_EQ(ErrorOf(R"({"format":"xml","version":1})"
                    "\n" +
                    body),
            "bad header: format is not \"json\"");
  EXPECT_EQ(ErrorOf(R"({"version":1})"
                    "\n" +
                    body),
            "bad header: format is not \"json\"");
  EXPECT_EQ(ErrorOf(R"({"format":"json","version":2})"
                    "\n" +
                    body),
            "bad header: version is not 1");
  EXPECT_EQ(ErrorOf(R"({"format":"json","version":"1"})"
                    "\n" +
                    body),
            "bad header: version is not 1");
  EXPECT_EQ(ErrorOf(R"({"format":"json","version":1.0})"
                    "\n" +
                    body),
            "bad header: version is not 1");
  EXPECT_EQ(ErrorOf(R"({"format":"json"})"
                    "\n" +
                    body),
            "bad header: version is not 1");
  EXPECT_EQ(ErrorOf(MakeDatagram("")), "bad datagram: empty body");
}

TEST(DatagramTest, BodyMustBeAValidDocument) {
  EXPECT_THAT(ErrorOf(MakeDatagram(R"({"trace_id":)")), HasSubstr("bad JSON at offset 12"));
  EXPECT_THAT(ErrorOf(MakeDatagram("{} trailing")), HasSubstr("bad JSON"));
  EXPECT_THAT(ErrorOf(MakeDatagram("{\"name\":\"\xff\"}")), HasSubstr("bad JSON"));
  EXPECT_EQ(ErrorOf(MakeDatagram("[]")), "the document is not a JSON object");

  const std::string valid = R"("trace_id":"T","id":"70de5b6f19ff9a0a","name":"a","start_time":1)";
  const auto error_of = [&](std::string_view fields) {
    return ErrorOf(MakeDatagram(Doc(absl::StrCat("{", std::string(fields), "}"))));
  };
  EXPECT_EQ(error_of(valid), "OK");
  EXPECT_EQ(error_of(R"("id":"70de5b6f19ff9a0a","name":"a","start_time":1)"), "missing trace_id");
  EXPECT_EQ(error_of(R"("trace_id":"1-5759e988-bd862e3f","id":"70de5b6f19ff9a0a","name":"a",)"
                     R"("start_time":1)"),
            "trace_id is not of the form 1-<hex time>-<24 hex digits>");
  EXPECT_EQ(error_of(R"("trace_id":"T","name":"a","start_time":1)"), "missing id");
  EXPECT_EQ(error_of(R"("trace_id":"T","id":"70de5b6f19ff9a0","name":"a","start_time":1)"),
            "id is not 16 hex digits");
  EXPECT_EQ(error_of(R"("trace_id":"T","id":"70de5b6f19ff9a0g","name":"a","start_time":1)"),
            "id is not 16 hex digits");
  EXPECT_EQ(error_of(R"("trace_id":"T","id":"70de5b6f19ff9a0a","start_time":1)"), "missing name");
  EXPECT_EQ(error_of(R"("trace_id":"T","id":"70de5b6f19ff9a0a","name":"","start_time":1)"),
            "name is not a non-empty string");
  EXPECT_EQ(error_of(R"("trace_id":"T","id":"70de5b6f19ff9a0a","name":"a")"), "missing start_time");
  EXPECT_EQ(error_of(R"("trace_id":"T","id":"70de5b6f19ff9a0a","name":"a","start_time":"1")"),
            "start_time is not a number");
  EXPECT_EQ(error_of(valid + R"(,"end_time":0.5)"), "end_time is before start_time");
  EXPECT_EQ(error_of(valid + R"(,"end_time":null)"), "end_time is not a number");
  EXPECT_EQ(error_of(valid + R"(,"in_progress":1)"), "in_progress is not a boolean");
  EXPECT_EQ(error_of(valid + R"(,"parent_id":"x")"), "parent_id is not 16 hex digits");
  EXPECT_EQ(error_of(valid + R"(,"type":"segment")"), "unknown type 'segment'");
  EXPECT_EQ(error_of(valid + R"(,"type":"subsegment")"),
            "a subsegment sent on its own needs a parent_id");
  EXPECT_EQ(error_of(valid + R"(,"fault":"true")"), "fault is not a boolean");
  EXPECT_EQ(error_of(valid + R"(,"cause":"abc")"), "cause is not an object or a 16-character id");
  EXPECT_EQ(error_of(valid + R"(,"annotations":{"k":[1]})"),
            "annotation k is not a string, number or boolean");
  EXPECT_EQ(error_of(valid + R"(,"http":{"request":{"method":7}})"), "method is not a string");
  EXPECT_EQ(error_of(valid + R"(,"http":{"response":{"status":"200"}})"),
            "status is not an integer");
  EXPECT_EQ(error_of(valid + R"(,"subsegments":{})"), "subsegments is not an array");
  EXPECT_EQ(error_of(valid + R"(,"subsegments":[{"id":"0f910026178b71eb","start_time":1}])"),
            "subsegments[0]: missing name");
  EXPECT_EQ(
      error_of(valid + R"(,"subsegments":[{"id":"0f910026178b71eb","name":"b",)"
                       R"("start_time":1,"trace_id":"1-5759e988-000000000000000000000000"}])"),
      "subsegments[0]: trace_id differs from its document's");
  EXPECT_EQ(error_of(valid + R"(,"subsegments":[{"id":"0f910026178b71eb","name":"b",)"
                             R"("start_time":1,"parent_id":"1111111111111111"}])"),
            "subsegments[0]: parent_id 1111111111111111 but embedded in 70de5b6f19ff9a0a");
}

TEST(DatagramTest, ModelsTheEntityTreeAndKeepsTheJson) {
  const ReceivedDocument document =
      Parse(R"({"trace_id":"T","id":"70de5b6f19ff9a0a","name":"web","start_time":10,"end_time":12,)"
            R"( "http":{"response":{"status":200}},)"
            R"( "subsegments":[{"id":"0f910026178b71eb","name":"db","start_time":10.5,)"
            R"(   "in_progress":true,"sql":{"database_type":"PostgreSQL"}}]})");
  const ReceivedEntity& segment = document.entity();
  EXPECT_TRUE(segment.is_segment);
  EXPECT_FALSE(segment.is_streamed);
  EXPECT_EQ(segment.id, "70de5b6f19ff9a0a");
  EXPECT_EQ(segment.trace_id, kTraceId);
  EXPECT_TRUE(segment.parent_id.empty());
  EXPECT_EQ(segment.end_time, 12);
  EXPECT_TRUE(segment.ended());
  EXPECT_EQ((*segment.json)["http"]["response"]["status"].GetInt(), 200);
  ASSERT_EQ(segment.subsegments.size(), 1u);
  const ReceivedEntity& db = segment.subsegments[0];
  EXPECT_FALSE(db.is_segment);
  EXPECT_FALSE(db.is_streamed);
  EXPECT_EQ(db.trace_id, kTraceId);
  EXPECT_EQ(db.parent_id, segment.id);
  EXPECT_FALSE(db.ended());
  EXPECT_STREQ((*db.json)["sql"]["database_type"].GetString(), "PostgreSQL");
  EXPECT_EQ(document.CompactJson(),
            Doc(R"({"trace_id":"T","id":"70de5b6f19ff9a0a","name":"web","start_time":10,)"
                R"("end_time":12,"http":{"response":{"status":200}},"subsegments":[{"id":)"
                R"("0f910026178b71eb","name":"db","start_time":10.5,"in_progress":true,)"
                R"("sql":{"database_type":"PostgreSQL"}}]})"));

  const ReceivedDocument streamed =
      Parse(R"({"type":"subsegment","trace_id":"T","parent_id":"70de5b6f19ff9a0a",)"
            R"("id":"0f910026178b71eb","name":"db","start_time":10.5,"end_time":11})");
  EXPECT_FALSE(streamed.entity().is_segment);
  EXPECT_TRUE(streamed.entity().is_streamed);
  EXPECT_EQ(streamed.entity().parent_id, "70de5b6f19ff9a0a");
}

// --- Assembly ----------------------------------------------------------------------------------

// A request segment with an embedded subsegment A; B streamed under the segment, C under A, D
// (with E embedded) under B; a background task's segment under C.
const std::vector<std::string>& StreamedTraceDocuments() {
  static const auto* documents = new std::vector<std::string>{
      R"({"trace_id":"T","id":"5e00000000000001","name":"api","start_time":1700000000.0,)"
      R"("end_time":1700000001.0,"http":{"request":{"method":"GET","url":"http://h/x"},)"
      R"("response":{"status":200}},"subsegments":[{"id":"a000000000000001","name":"A",)"
      R"("start_time":1700000000.1,"end_time":1700000000.5}]})",
      R"({"type":"subsegment","trace_id":"T","parent_id":"5e00000000000001",)"
      R"("id":"b000000000000001","name":"B","start_time":1700000000.2,"end_time":1700000000.8})",
      R"({"type":"subsegment","trace_id":"T","parent_id":"a000000000000001",)"
      R"("id":"c000000000000001","name":"C","start_time":1700000000.3,"end_time":1700000000.4})",
      R"({"type":"subsegment","trace_id":"T","parent_id":"b000000000000001",)"
      R"("id":"d000000000000001","name":"D","start_time":1700000000.4,"end_time":1700000000.6,)"
      R"("subsegments":[{"id":"e000000000000001","name":"E","start_time":1700000000.45,)"
      R"("end_time":1700000000.5}]})",
      R"({"trace_id":"T","parent_id":"c000000000000001","id":"7a00000000000001",)"
      R"("name":"task","start_time":1700000000.35,"end_time":1700000002.0})",
  };
  return *documents;
}

TEST(TraceAssemblerTest, AssemblesStreamedSubsegmentsArrivingInAnyOrder) {
  const std::string expected =
      absl::StrCat("trace ", kTraceId, "\n", R"(  api (segment) 1000.0 ms GET http://h/x 200
    A 400.0 ms
      C 100.0 ms
        task (segment) 1650.0 ms
    B 600.0 ms
      D 200.0 ms
        E 50.0 ms
)");
  std::vector<int> order = {0, 1, 2, 3, 4};
  int permutations = 0;
  do {
    TraceAssembler assembler(absl::ZeroDuration());
    for (int i : order) assembler.Add(Parse(StreamedTraceDocuments()[i]), absl::UnixEpoch());
    const std::optional<Trace> trace = assembler.Get(kTraceId);
    ASSERT_TRUE(trace.has_value());
    EXPECT_EQ(FormatTrace(*trace), expected);
    EXPECT_TRUE(trace->complete());
    ++permutations;
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(permutations, 120);
}

TEST(TraceAssemblerTest, StreamedSubsegmentsWithoutTheirParentAreOrphans) {
  TraceAssembler assembler(absl::ZeroDuration());
  for (int i : {1, 2, 3}) assembler.Add(Parse(StreamedTraceDocuments()[i]), absl::UnixEpoch());
  const Trace trace = *assembler.Get(kTraceId);
  EXPECT_FALSE(trace.complete());
  EXPECT_FALSE(assembler.IsFinished(kTraceId, absl::InfiniteFuture()));
  ASSERT_EQ(trace.roots().size(), 2u);
  EXPECT_TRUE(trace.roots()[0].orphan);  // B, waiting for the segment
  EXPECT_TRUE(trace.roots()[1].orphan);  // C, waiting for the segment that embeds A
  EXPECT_FALSE(trace.Find("d000000000000001")->orphan);
  EXPECT_EQ(FormatTrace(trace),
            absl::StrCat("trace ", kTraceId, "\n",
                         R"(  B 600.0 ms (orphan: parent 5e00000000000001 not received)
    D 200.0 ms
      E 50.0 ms
  C 100.0 ms (orphan: parent a000000000000001 not received)
)"));
}

TEST(TraceAssemblerTest, AnswersQueriesAboutEntities) {
  TraceAssembler assembler(absl::ZeroDuration());
  for (const std::string& document : StreamedTraceDocuments()) {
    assembler.Add(Parse(document), absl::UnixEpoch());
  }
  EXPECT_EQ(assembler.TraceIds(), std::vector<std::string>{kTraceId});
  EXPECT_FALSE(assembler.Get("1-5759e988-000000000000000000000000").has_value());
  const Trace trace = *assembler.Get(kTraceId);
  EXPECT_EQ(trace.id(), kTraceId);
  EXPECT_EQ(trace.documents().size(), 5u);

  std::vector<std::string> names;
  for (const TraceNode* node : trace.Entities()) names.push_back(node->entity->name);
  EXPECT_EQ(names, (std::vector<std::string>{"api", "A", "C", "task", "B", "D", "E"}));
  ASSERT_NE(trace.Find("e000000000000001"), nullptr);
  EXPECT_EQ(trace.Find("e000000000000001")->entity->name, "E");
  EXPECT_EQ(trace.Find("0000000000000000"), nullptr);
  ASSERT_NE(trace.FindByName("task"), nullptr);
  EXPECT_TRUE(trace.FindByName("task")->entity->is_segment);
  EXPECT_EQ(trace.FindByName("nope"), nullptr);
  EXPECT_EQ(trace.ParentOf("7a00000000000001")->entity->name, "C");
  EXPECT_EQ(trace.ParentOf("e000000000000001")->entity->name, "D");
  EXPECT_EQ(trace.ParentOf("5e00000000000001"), nullptr);
}

TEST(TraceAssemblerTest, CompleteDocumentReplacesInProgressOne) {
  const std::string in_progress =
      R"({"trace_id":"T","id":"5e00000000000001","name":"api","start_time":1,"in_progress":true,)"
      R"("subsegments":[{"id":"a000000000000001","name":"A","start_time":1.5,"in_progress":true}]})";
  const std::string complete =
      R"({"trace_id":"T","id":"5e00000000000001","name":"api","start_time":1,"end_time":3})";
  const std::string streamed_a =
      R"({"type":"subsegment","trace_id":"T","parent_id":"5e00000000000001",)"
      R"("id":"a000000000000001","name":"A","start_time":1.5,"end_time":2})";

  TraceAssembler assembler(absl::ZeroDuration());
  assembler.Add(Parse(in_progress), absl::UnixEpoch());
  EXPECT_FALSE(assembler.Get(kTraceId)->complete());
  // The streamed, ended A beats the in-progress A embedded in the fragment.
  assembler.Add(Parse(streamed_a), absl::UnixEpoch());
  Trace trace = *assembler.Get(kTraceId);
  EXPECT_EQ(trace.Entities().size(), 2u);
  EXPECT_TRUE(trace.Find("a000000000000001")->entity->ended());
  EXPECT_FALSE(trace.complete());

  assembler.Add(Parse(complete), absl::UnixEpoch());
  trace = *assembler.Get(kTraceId);
  EXPECT_EQ(trace.documents().size(), 2u);
  EXPECT_TRUE(trace.complete());
  EXPECT_EQ(FormatTrace(trace),
            absl::StrCat("trace ", kTraceId, "\n", "  api (segment) 2000.0 ms\n    A 500.0 ms\n"));

  // An in-progress fragment arriving late does not undo the complete document.
  assembler.Add(Parse(in_progress), absl::UnixEpoch());
  EXPECT_TRUE(assembler.Get(kTraceId)->complete());
}

TEST(TraceAssemblerTest, FinishesAfterTheQuietPeriod) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  TraceAssembler assembler(absl::Seconds(1));
  EXPECT_EQ(assembler.NextFinishTime(), std::nullopt);
  assembler.Add(Parse(StreamedTraceDocuments()[0]), t0);
  EXPECT_FALSE(assembler.IsFinished(kTraceId, t0 + absl::Milliseconds(999)));
  EXPECT_EQ(assembler.NextFinishTime(), t0 + absl::Seconds(1));
  // A late document starts the quiet period again.
  assembler.Add(Parse(StreamedTraceDocuments()[1]), t0 + absl::Milliseconds(500));
  EXPECT_FALSE(assembler.IsFinished(kTraceId, t0 + absl::Seconds(1)));
  EXPECT_TRUE(assembler.TakeFinished(t0 + absl::Seconds(1)).empty());
  EXPECT_TRUE(assembler.IsFinished(kTraceId, t0 + absl::Milliseconds(1500)));

  const std::vector<Trace> finished = assembler.TakeFinished(t0 + absl::Milliseconds(1500));
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].Entities().size(), 3u);
  EXPECT_TRUE(assembler.TraceIds().empty());
  EXPECT_EQ(assembler.NextFinishTime(), std::nullopt);
}

TEST(TraceAssemblerTest, IncompleteTracesAreNeverFinishedButTakeAllReturnsThem) {
  const std::string other_trace =
      R"({"trace_id":"1-5759e988-000000000000000000000001","id":"5e00000000000009","name":"b",)"
      R"("start_time":1,"in_progress":true})";
  TraceAssembler assembler(absl::ZeroDuration());
  assembler.Add(Parse(other_trace), absl::UnixEpoch());
  assembler.Add(Parse(StreamedTraceDocuments()[1]), absl::UnixEpoch());  // an orphan
  EXPECT_EQ(assembler.NextFinishTime(), std::nullopt);
  EXPECT_TRUE(assembler.TakeFinished(absl::InfiniteFuture()).empty());

  const std::vector<Trace> all = assembler.TakeAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id(), "1-5759e988-000000000000000000000001");  // arrived first
  EXPECT_EQ(all[1].id(), kTraceId);
  EXPECT_TRUE(assembler.TraceIds().empty());
}

TEST(TraceAssemblerTest, IncompleteTracesExpireAfterThePendingTimeout) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  const std::string in_progress =
      R"({"trace_id":"1-5759e988-000000000000000000000001","id":"5e00000000000009","name":"b",)"
      R"("start_time":1,"in_progress":true})";
  TraceAssembler assembler(absl::Seconds(1), absl::Seconds(10));
  EXPECT_EQ(assembler.NextExpiryTime(), std::nullopt);
  assembler.Add(Parse(in_progress), t0);
  assembler.Add(Parse(StreamedTraceDocuments()[1]), t0 + absl::Seconds(2));  // an orphan
  EXPECT_EQ(assembler.NextExpiryTime(), t0 + absl::Seconds(10));
  EXPECT_EQ(assembler.NextFinishTime(), std::nullopt);
  EXPECT_FALSE(
      assembler.IsExpired("1-5759e988-000000000000000000000001", t0 + absl::Milliseconds(9999)));
  EXPECT_TRUE(assembler.TakeExpired(t0 + absl::Milliseconds(9999)).empty());

  std::vector<Trace> expired = assembler.TakeExpired(t0 + absl::Seconds(10));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].id(), "1-5759e988-000000000000000000000001");
  EXPECT_EQ(assembler.TraceIds(), std::vector<std::string>{kTraceId});
  EXPECT_EQ(assembler.NextExpiryTime(), t0 + absl::Seconds(12));
  // A document, even one that leaves the trace incomplete, starts the timeout again.
  assembler.Add(Parse(StreamedTraceDocuments()[2]), t0 + absl::Seconds(11));
  EXPECT_EQ(assembler.NextExpiryTime(), t0 + absl::Seconds(21));
  EXPECT_TRUE(assembler.TakeExpired(t0 + absl::Seconds(20)).empty());
  expired = assembler.TakeExpired(t0 + absl::Seconds(21));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].Entities().size(), 2u);
  EXPECT_FALSE(expired[0].complete());
  EXPECT_TRUE(assembler.TraceIds().empty());
  EXPECT_EQ(assembler.NextExpiryTime(), std::nullopt);
}

TEST(TraceAssemblerTest, CompleteTracesNeverExpire) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  // A quiet period longer than the timeout: the complete trace waits for it all the same.
  TraceAssembler assembler(absl::Seconds(60), absl::Seconds(10));
  assembler.Add(Parse(StreamedTraceDocuments()[1]), t0);
  EXPECT_EQ(assembler.NextExpiryTime(), t0 + absl::Seconds(10));
  // Its parent arrives: complete, so the timeout no longer applies.
  assembler.Add(Parse(StreamedTraceDocuments()[0]), t0 + absl::Seconds(5));
  EXPECT_EQ(assembler.NextExpiryTime(), std::nullopt);
  EXPECT_FALSE(assembler.IsExpired(kTraceId, t0 + absl::Seconds(30)));
  EXPECT_TRUE(assembler.TakeExpired(t0 + absl::Seconds(30)).empty());
  EXPECT_EQ(assembler.TakeFinished(t0 + absl::Seconds(65)).size(), 1u);
}

TEST(TraceAssemblerTest, NothingExpiresWithoutAPendingTimeout) {
  TraceAssembler assembler(absl::ZeroDuration());
  assembler.Add(Parse(StreamedTraceDocuments()[1]), absl::UnixEpoch());
  EXPECT_EQ(assembler.NextExpiryTime(), std::nullopt);
  EXPECT_FALSE(assembler.IsExpired(kTraceId, absl::InfiniteFuture()));
  EXPECT_TRUE(assembler.TakeExpired(absl::InfiniteFuture()).empty());
  EXPECT_EQ(assembler.TraceIds().size(), 1u);
}

TEST(TraceAssemblerTest, ParentCyclesDoNotLoseEntities) {
  TraceAssembler assembler(absl::ZeroDuration());
  assembler.Add(Parse(R"({"type":"subsegment","trace_id":"T","parent_id":"b000000000000001",)"
                      R"("id":"a000000000000001","name":"A","start_time":1,"end_time":2})"),
                absl::UnixEpoch());
  assembler.Add(Parse(R"({"type":"subsegment","trace_id":"T","parent_id":"a000000000000001",)"
                      R"("id":"b000000000000001","name":"B","start_time":1,"end_time":2})"),
                absl::UnixEpoch());
  const Trace trace = *assembler.Get(kTraceId);
  EXPECT_EQ(trace.Entities().size(), 2u);
  EXPECT_FALSE(trace.complete());
  EXPECT_EQ(FormatTrace(trace),
            absl::StrCat("trace ", kTraceId, "\n",
                         "  A 1000.0 ms (orphan: parent b000000000000001 not received)\n",
                         "    B 1000.0 ms\n"));
}

// Documents of one trace drawn from a few entity ids, so that they replace each other, embed
// each other's ids, name parents that come later, never or in a cycle, and end or not.
class RandomDocuments {
 public:
  explicit RandomDocuments(uint32_t seed) : random_(seed) {}

  std::string Next() {
    const bool streamed = Chance(2);
    std::string json =
        absl::StrCat(streamed ? R"({"type":"subsegment",)" : "{", R"("trace_id":"T",)");
    // A segment's parent_id is optional; either's may be its own id.
    if (streamed || Chance(3)) absl::StrAppend(&json, R"("parent_id":")", Id(), R"(",)");
    AppendEntity(json, 0);
    return json + "}";
  }

 private:
  bool Chance(uint32_t one_in) { return random_() % one_in == 0; }
  std::string Id() { return absl::StrFormat("a%015x", random_() % 5); }

  // The fields of an entity from `id` on, without braces.
  void AppendEntity(std::string& json, int depth) {
    absl::StrAppend(&json, R"("id":")", Id(), R"(","name":"e","start_time":1)");
    switch (random_() % 6) {
      case 0:
        json += R"(,"in_progress":true)";
        break;
      case 1:
        json += R"(,"end_time":2,"in_progress":true)";
        break;
      case 2:
        break;  // neither: not ended either
      default:
        json += R"(,"end_time":2)";
    }
    const int children = depth < 3 ? static_cast<int>(random_() % 3) : 0;
    if (children == 0) return;
    json += R"(,"subsegments":[)";
    for (int i = 0; i < children; ++i) {
      json += i == 0 ? "{" : ",{";
      AppendEntity(json, depth + 1);
      json += "}";
    }
    json += "]";
  }

  std::mt19937 random_;
};

TEST(TraceAssemblerTest, TracksCompletenessAsTraceDoesOverVariedSequences) {
  int complete = 0, incomplete = 0;
  for (uint32_t sequence = 0; sequence < 1500; ++sequence) {
    RandomDocuments random(sequence);
    TraceAssembler assembler(absl::ZeroDuration());
    // Documents as TraceAssembler::Add documents they are kept, by a linear search.
    std::vector<ReceivedDocument> expected;
    std::string sent;
    const int documents = 1 + static_cast<int>(sequence % 12);
    for (int i = 0; i < documents; ++i) {
      const std::string json = random.Next();
      absl::StrAppend(&sent, json, "\n");
      ReceivedDocument document = Parse(json);
      const ReceivedEntity& entity = document.entity();
      const auto same = std::find_if(expected.begin(), expected.end(),
                                     [&](const auto& old) { return old.entity().id == entity.id; });
      if (same == expected.end()) {
        expected.push_back(document);
      } else if (entity.ended() || !same->entity().ended()) {
        *same = document;
      }
      assembler.Add(document, absl::UnixEpoch());

      const bool reference = Trace(kTraceId, expected).complete();
      ASSERT_EQ(assembler.IsComplete(kTraceId), reference) << "sequence " << sequence << ":\n"
                                                           << sent;
      ASSERT_EQ(assembler.IsFinished(kTraceId, absl::UnixEpoch()), reference);
      const Trace trace = *assembler.Get(kTraceId);
      ASSERT_EQ(trace.documents().size(), expected.size());
      for (size_t d = 0; d < expected.size(); ++d) {
        ASSERT_EQ(&trace.documents()[d].entity(), &expected[d].entity()) << sent;
      }
      ++(reference ? complete : incomplete);
    }
  }
  // Both answers come up often, so each was checked.
  EXPECT_GT(complete, 400);
  EXPECT_GT(incomplete, 4000);
}

// Which traces are finished or expired, and when the next will be, as a scan of every pending
// trace says, over many traces whose documents arrive, complete them or not, in random order.
TEST(TraceAssemblerTest, DeadlinesFollowAScanOfEveryTrace) {
  const absl::Duration quiet = absl::Seconds(2), timeout = absl::Seconds(5);
  std::mt19937 random(7);
  RandomDocuments documents(99);
  TraceAssembler assembler(quiet, timeout);
  std::map<std::string, absl::Time> last_arrival;  // of the traces pending, by id
  std::map<std::string, uint64_t> first_arrival;
  uint64_t arrivals = 0;
  int finished_taken = 0, expired_taken = 0;
  absl::Time now = absl::FromUnixSeconds(1700000000);
  for (int step = 0; step < 6000; ++step) {
    now += absl::Milliseconds(random() % 700);
    if (random() % 3 != 0) {
      const std::string id = absl::StrFormat("1-5759e988-%024x", random() % 16);
      absl::StatusOr<ReceivedDocument> document =
          ParseDocument(absl::StrReplaceAll(Doc(documents.Next()), {{kTraceId, id}}));
      ASSERT_TRUE(document.ok()) << document.status();
      assembler.Add(*std::move(document), now);
      if (!last_arrival.contains(id)) first_arrival[id] = arrivals++;
      last_arrival[id] = now;
    }
    std::vector<std::pair<uint64_t, std::string>> finished, expired;
    std::optional<absl::Time> next_finish, next_expiry;
    for (const auto& [id, at] : last_arrival) {
      const bool complete = assembler.IsComplete(id);
      auto& due = complete ? finished : expired;
      auto& next = complete ? next_finish : next_expiry;
      if (now - at >= (complete ? quiet : timeout)) due.emplace_back(first_arrival[id], id);
      const absl::Time deadline = at + (complete ? quiet : timeout);
      if (!next || deadline < *next) next = deadline;
    }
    ASSERT_EQ(assembler.NextFinishTime(), next_finish) << "step " << step;
    ASSERT_EQ(assembler.NextExpiryTime(), next_expiry) << "step " << step;
    const uint32_t take = random() % 4;
    if (take > 1) continue;
    auto& due = take == 0 ? finished : expired;
    std::sort(due.begin(), due.end());
    const std::vector<Trace> taken =
        take == 0 ? assembler.TakeFinished(now) : assembler.TakeExpired(now);
    std::vector<std::string> taken_ids, due_ids;
    for (const Trace& trace : taken) taken_ids.push_back(trace.id());
    for (const auto& [sequence, id] : due) due_ids.push_back(id);
    ASSERT_EQ(taken_ids, due_ids) << "step " << step;
    for (const std::string& id : due_ids) {
      last_arrival.erase(id);
      first_arrival.erase(id);
    }
    (take == 0 ? finished_taken : expired_taken) += static_cast<int>(taken.size());
  }
  EXPECT_EQ(assembler.TraceIds().size(), last_arrival.size());
  // Both kinds came due often, so each was checked.
  EXPECT_GT(finished_taken, 100);
  EXPECT_GT(expired_taken, 100);
}

TEST(TraceAssemblerTest, CompletenessFollowsACycleThatAReplacementBreaks) {
  const auto streamed = [](const char* parent, const char* id, const char* end) {
    return Parse(absl::StrCat(R"({"type":"subsegment","trace_id":"T","parent_id":")", parent,
                              R"(","id":")", id, R"(","name":"s","start_time":1,)", end, "}"));
  };
  TraceAssembler assembler(absl::ZeroDuration());
  assembler.Add(Parse(R"({"trace_id":"T","id":"5e00000000000001","name":"api",)"
                      R"("start_time":1,"end_time":2})"),
                absl::UnixEpoch());
  EXPECT_TRUE(assembler.IsComplete(kTraceId));
  assembler.Add(streamed("b000000000000001", "a000000000000001", R"("end_time":2)"),
                absl::UnixEpoch());
  EXPECT_FALSE(assembler.IsComplete(kTraceId));  // A waits for B
  assembler.Add(streamed("a000000000000001", "b000000000000001", R"("end_time":2)"),
                absl::UnixEpoch());
  EXPECT_FALSE(assembler.IsComplete(kTraceId));  // A and B in a cycle
  // An in-progress B does not replace the ended one, so the cycle stays.
  assembler.Add(streamed("5e00000000000001", "b000000000000001", R"("in_progress":true)"),
                absl::UnixEpoch());
  EXPECT_FALSE(assembler.IsComplete(kTraceId));
  EXPECT_FALSE(assembler.Get(kTraceId)->complete());
  // An ended B under the segment does, which breaks the cycle.
  assembler.Add(streamed("5e00000000000001", "b000000000000001", R"("end_time":3)"),
                absl::UnixEpoch());
  EXPECT_TRUE(assembler.IsComplete(kTraceId));
  EXPECT_TRUE(assembler.Get(kTraceId)->complete());
  // And closing it again through the segment is seen too.
  assembler.Add(Parse(R"({"trace_id":"T","parent_id":"a000000000000001","id":"5e00000000000001",)"
                      R"("name":"api","start_time":1,"end_time":2})"),
                absl::UnixEpoch());
  EXPECT_FALSE(assembler.IsComplete(kTraceId));
  EXPECT_FALSE(assembler.Get(kTraceId)->complete());
}

// Runs `body` on a thread with a 256 KiB stack, which a walk recursing once per level of a
// trace 100,000 levels deep overflows.
void RunOnSmallStack(const std::function<void()>& body) {
  pthread_attr_t attributes;
  ASSERT_EQ(pthread_attr_init(&attributes), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attributes, 256 << 10), 0);
  pthread_t thread;
  ASSERT_EQ(pthread_create(
                &thread, &attributes,
                [](void* body) -> void* {
                  (*static_cast<const std::function<void()>*>(body))();
                  return nullptr;
                },
                const_cast<std::function<void()>*>(&body)),
            0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attributes);
}

TEST(TraceTest, AnyDepthIsBuiltWalkedPrintedAndDestroyed) {
  // As a flow can stream them: each document's chain of embedded subsegments hangs under the
  // deepest entity of the previous document, 100,000 levels under the segment in all.
  constexpr int kDocuments = 1000;
  constexpr int kLevels = 100;
  constexpr int kDeepest = kDocuments * kLevels;
  const auto id = [](int level) { return absl::StrFormat("%016x", level + 1); };
  std::vector<ReceivedDocument> documents;
  documents.push_back(Parse(absl::StrCat(R"({"trace_id":"T","id":")", id(0),
                                         R"(","name":"root","start_time":1,"end_time":2})")));
  for (int document = 0; document < kDocuments; ++document) {
    const int first = document * kLevels + 1;
    std::string json =
        absl::StrCat(R"({"type":"subsegment","trace_id":"T","parent_id":")", id(first - 1), "\",");
    for (int level = first; level < first + kLevels; ++level) {
      absl::StrAppend(&json, level == first ? "" : R"(,"subsegments":[{)", R"("id":")", id(level),
                      R"(","name":"level-)", level, R"(","start_time":1,"end_time":2)");
    }
    for (int level = 1; level < kLevels; ++level) json += "}]";
    json += "}";
    documents.push_back(Parse(json));
  }

  RunOnSmallStack([&] {
    const Trace trace(kTraceId, std::move(documents));
    EXPECT_TRUE(trace.complete());
    EXPECT_EQ(trace.Entities().size(), static_cast<size_t>(kDeepest + 1));
    const TraceNode* parent = trace.ParentOf(id(kDeepest));
    ASSERT_NE(parent, nullptr);
    EXPECT_EQ(parent->entity->name, absl::StrCat("level-", kDeepest - 1));

    const std::string printed = FormatTrace(trace);
    EXPECT_EQ(std::count(printed.begin(), printed.end(), '\n'), kDeepest + 2);
    const std::string indent(128, ' ');
    EXPECT_THAT(printed, HasSubstr(absl::StrCat("\n", indent, "level-63 1000.0 ms\n", indent,
                                                "[depth 65] level-64 1000.0 ms\n")));
    EXPECT_THAT(printed, ::testing::EndsWith(absl::StrCat("\n", indent, "[depth ", kDeepest + 1,
                                                          "] level-", kDeepest, " 1000.0 ms\n")));
  });
}

// --- Printing ----------------------------------------------------------------------------------

TEST(TracePrinterTest, MarksTheFirstLineWithARemark) {
  TraceAssembler assembler(absl::ZeroDuration());
  assembler.Add(Parse(StreamedTraceDocuments()[1]), absl::UnixEpoch());
  const std::string tree = FormatTrace(*assembler.Get(kTraceId));
  EXPECT_EQ(FormatTrace(*assembler.Get(kTraceId), "incomplete: no document for 300 s"),
            absl::StrCat("trace ", kTraceId, " (incomplete: no document for 300 s)\n",
                         tree.substr(tree.find('\n') + 1)));
}

TEST(TracePrinterTest, PrintsEveryDetailOnOneLinePerEntity) {
  TraceAssembler assembler(absl::ZeroDuration());
  assembler.Add(
      Parse(R"({"trace_id":"T","id":"1111111111111111","name":"checkout",)"
            R"("start_time":1700000000.0,"end_time":1700000000.25,"fault":true,"error":false,)"
            R"("http":{"request":{"method":"POST","url":"http://shop/checkout"},)"
            R"("response":{"status":502}},)"
            R"("annotations":{"order":1001,"customer":"c-42","vip":true,"ratio":0.5},)"
            R"("subsegments":[)"
            R"({"id":"2222222222222222","name":"payments","namespace":"remote",)"
            R"("start_time":1700000000.05,"end_time":1700000000.2,"error":true,"throttle":true,)"
            R"("http":{"response":{"status":429}},"cause":{"working_directory":"/srv",)"
            R"("exceptions":[{"id":"3333333333333333","type":"TimeoutError",)"
            R"("message":"no answer\nafter 2 s"}]}},)"
            R"({"id":"4444444444444444","name":"audit","start_time":1700000000.1,)"
            R"("in_progress":true,"cause":"3333333333333333"}]})"),
      absl::UnixEpoch());
  assembler.Add(Parse(R"({"type":"subsegment","trace_id":"T","parent_id":"9999999999999999",)"
                      R"("id":"5555555555555555","name":"late","start_time":1700000000.3,)"
                      R"("end_time":1700000000.31})"),
                absl::UnixEpoch());
  EXPECT_EQ(
      FormatTrace(*assembler.Get(kTraceId)),
      absl::StrCat(
          "trace ", kTraceId, "\n",
          R"(  checkout (segment) 250.0 ms POST http://shop/checkout 502 !fault order=1001 customer=c-42 vip=true ratio=0.5
    payments 150.0 ms 429 !error !throttle cause: TimeoutError: no answer\nafter 2 s
    audit in progress cause: see exception 3333333333333333
  late 10.0 ms (orphan: parent 9999999999999999 not received)
)"));
}

}  // namespace
}  // namespace xraysink::tools
