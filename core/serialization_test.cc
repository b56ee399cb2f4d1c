#include "core/serialization.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>

#include "core/entity.h"
#include "core/testing/collecting_sink.h"
#include "core/testing/schema_validator.h"
#include "rapidjson/document.h"

namespace xraysink::core {
namespace {

using testing::CollectingSink;
using testing::ValidateSegmentDocument;

constexpr char kTrace[] = "1-5759e988-bd862e3fe1be46a994272793";

std::shared_ptr<SegmentSettings> Settings(std::shared_ptr<SegmentSink> sink = nullptr) {
  auto settings = std::make_shared<SegmentSettings>();
  settings->sink = std::move(sink);
  settings->sdk_version = "0.1.0";
  return settings;
}

std::shared_ptr<Segment> NewSegment(std::string name = "svc",
                                    std::shared_ptr<SegmentSettings> settings = Settings()) {
  SegmentOptions options;
  options.name = std::move(name);
  options.trace_id = *TraceId::Parse(kTrace);
  return Segment::Create(std::move(options), std::move(settings), nullptr);
}

rapidjson::Document Parse(const std::string& json) {
  rapidjson::Document document;
  document.Parse(json.c_str());
  EXPECT_FALSE(document.HasParseError()) << json;
  return document;
}

// Serializes, checks the schema, parses.
rapidjson::Document Emit(const std::shared_ptr<Segment>& segment,
                         const Subsegment* subtree = nullptr) {
  const std::string json = SerializeDocument(DocumentRef{segment, subtree});
  const absl::Status valid = ValidateSegmentDocument(json);
  EXPECT_TRUE(valid.ok()) << valid.message();
  return Parse(json);
}

TEST(SchemaValidatorTest, CatchesWhatRapidJsonRegexCannot) {
  const auto doc = [](const std::string& name, const std::string& trace) {
    return R"({"name":")" + name + R"(","id":"0123456789abcdef","start_time":1,"end_time":2,)" +
           R"("trace_id":")" + trace + R"("})";
  };
  EXPECT_TRUE(ValidateSegmentDocument(doc("ab", kTrace)).ok());
  EXPECT_TRUE(ValidateSegmentDocument(doc("caf\u00e9 @ x", kTrace)).ok());
  EXPECT_FALSE(ValidateSegmentDocument(doc("a?b", kTrace)).ok());
  EXPECT_FALSE(ValidateSegmentDocument(doc(std::string(201, 'a'), kTrace)).ok());
  EXPECT_FALSE(ValidateSegmentDocument(doc("ab", "1-xyz-abc")).ok());
  EXPECT_FALSE(
      ValidateSegmentDocument(R"({"name":"a","id":"0123456789abcdef","start_time":1,"trace_id":")" +
                              std::string(kTrace) + R"(","annotations":{"a.b":1}})")
          .ok());
}

TEST(SerializationTest, MinimalSegment) {
  auto segment = NewSegment();
  segment->End(segment->start_time() + 0.5);
  auto json = Emit(segment);
  EXPECT_STREQ(json["name"].GetString(), "svc");
  EXPECT_STREQ(json["trace_id"].GetString(), kTrace);
  EXPECT_EQ(std::string(json["id"].GetString()), segment->id().ToString());
  EXPECT_DOUBLE_EQ(json["end_time"].GetDouble() - json["start_time"].GetDouble(), 0.5);
  EXPECT_FALSE(json.HasMember("in_progress"));
  EXPECT_FALSE(json.HasMember("parent_id"));
  EXPECT_FALSE(json.HasMember("error"));
  EXPECT_STREQ(json["aws"]["xray"]["sdk"].GetString(), "X-Ray for C++ (xraysink-cpp)");
  EXPECT_STREQ(json["aws"]["xray"]["sdk_version"].GetString(), "0.1.0");
}

// Timestamps are written as text with exactly six decimals (never through float formatting),
// rounding to the nearest microsecond with the carry into the seconds.
TEST(SerializationTest, TimestampsAreExactMicroseconds) {
  const auto timestamps = [](double start, double end) {
    SegmentOptions options;
    options.name = "t";
    options.trace_id = *TraceId::Parse(kTrace);
    options.start_time = start;
    auto segment = Segment::Create(std::move(options), Settings(), nullptr);
    segment->End(end);
    const std::string json = SerializeDocument(DocumentRef{segment, nullptr});
    const size_t at = json.find("\"start_time\":");
    return json.substr(at, json.find(',', json.find("\"end_time\":")) - at);
  };
  EXPECT_EQ(timestamps(1700000000.123456, 1700000000.9999996),
            R"("start_time":1700000000.123456,"end_time":1700000001.000000)");
  EXPECT_EQ(timestamps(1.5, 2.0000004), R"("start_time":1.500000,"end_time":2.000000)");
}

TEST(SerializationTest, EverySegmentField) {
  auto settings = Settings();
  settings->aws.cloudwatch_logs.push_back(
      {"/my/group", "arn:aws:logs:us-east-1:1:log-group:/my/group:*"});
  settings->aws.ec2 = AwsData::Ec2{"i-1", "us-east-1a", "t3.micro", "ami-1"};
  settings->service.version = "1.2.3";
  settings->origin = "AWS::EC2::Instance";
  SegmentOptions options;
  options.name = "orders";
  options.trace_id = *TraceId::Parse(kTrace);
  options.parent_id = EntityId(0x53995c3f42cd8ad8);
  options.sampling_rule_name = "rule-1";
  auto segment = Segment::Create(std::move(options), settings, nullptr);
  segment->set_user("alice");
  segment->set_resource_arn("arn:aws:ec2:us-east-1:1:instance/i-1");
  auto& request = segment->http().request.emplace();
  request.method = "GET";
  request.url = "http://h/p?x=1";
  request.user_agent = "curl";
  request.client_ip = "10.0.0.1";
  request.x_forwarded_for = true;
  segment->ApplyStatusCode(429);
  segment->http().response->content_length = 12;
  segment->aws().account_id = "123456789012";
  segment->aws().ecs = AwsData::Ecs{"c1", "", ""};
  segment->aws().elastic_beanstalk = AwsData::ElasticBeanstalk{"env", "v1", 42};
  segment->aws().eks = AwsData::Eks{"cluster", "pod", "cid"};
  EXPECT_TRUE(segment->PutAnnotation("ok_key", 1.5));
  EXPECT_TRUE(segment->PutAnnotation("b", true));
  EXPECT_TRUE(segment->PutAnnotation("n", 7));
  EXPECT_TRUE(segment->PutAnnotation("s", "text"));
  EXPECT_FALSE(segment->PutAnnotation("bad-key", 1));
  EXPECT_FALSE(segment->PutAnnotation("", 1));
  EXPECT_FALSE(segment->PutAnnotation(std::string(501, 'a'), 1));
  EXPECT_EQ(segment->counters().annotations_dropped.load(), 3u);
  EXPECT_TRUE(segment->PutMetadata("m", JsonValue::Object({{"x", JsonValue::Array({1, 2})}})));
  EXPECT_TRUE(segment->PutMetadata("m3", "v", "ns"));
  EXPECT_FALSE(segment->PutMetadata("m4", 1, "AWS.reserved"));
  EXPECT_EQ(segment->counters().metadata_dropped.load(), 1u);
  segment->End();

  auto json = Emit(segment);
  EXPECT_STREQ(json["parent_id"].GetString(), "53995c3f42cd8ad8");
  EXPECT_STREQ(json["user"].GetString(), "alice");
  EXPECT_STREQ(json["origin"].GetString(), "AWS::EC2::Instance");
  EXPECT_STREQ(json["resource_arn"].GetString(), "arn:aws:ec2:us-east-1:1:instance/i-1");
  EXPECT_STREQ(json["service"]["version"].GetString(), "1.2.3");
  EXPECT_STREQ(json["http"]["request"]["method"].GetString(), "GET");
  EXPECT_STREQ(json["http"]["request"]["url"].GetString(), "http://h/p?x=1");
  EXPECT_STREQ(json["http"]["request"]["user_agent"].GetString(), "curl");
  EXPECT_STREQ(json["http"]["request"]["client_ip"].GetString(), "10.0.0.1");
  EXPECT_TRUE(json["http"]["request"]["x_forwarded_for"].GetBool());
  EXPECT_EQ(json["http"]["response"]["status"].GetInt(), 429);
  EXPECT_EQ(json["http"]["response"]["content_length"].GetInt(), 12);
  EXPECT_TRUE(json["error"].GetBool());
  EXPECT_TRUE(json["throttle"].GetBool());
  EXPECT_FALSE(json.HasMember("fault"));
  EXPECT_DOUBLE_EQ(json["annotations"]["ok_key"].GetDouble(), 1.5);
  EXPECT_TRUE(json["annotations"]["b"].GetBool());
  EXPECT_EQ(json["annotations"]["n"].GetInt(), 7);
  EXPECT_STREQ(json["annotations"]["s"].GetString(), "text");
  EXPECT_EQ(json["annotations"].MemberCount(), 4u);
  EXPECT_EQ(json["metadata"]["default"]["m"]["x"][1].GetInt(), 2);
  EXPECT_STREQ(json["metadata"]["ns"]["m3"].GetString(), "v");
  EXPECT_FALSE(json["metadata"].HasMember("AWS.reserved"));
  const auto& aws = json["aws"];
  EXPECT_STREQ(aws["account_id"].GetString(), "123456789012");
  EXPECT_STREQ(aws["ec2"]["instance_id"].GetString(), "i-1");
  EXPECT_STREQ(aws["ec2"]["instance_size"].GetString(), "t3.micro");
  EXPECT_STREQ(aws["ecs"]["container"].GetString(), "c1");
  EXPECT_EQ(aws["elastic_beanstalk"]["deployment_id"].GetInt(), 42);
  EXPECT_STREQ(aws["eks"]["pod"].GetString(), "pod");
  EXPECT_STREQ(aws["xray"]["sampling_rule_name"].GetString(), "rule-1");
  ASSERT_TRUE(aws["cloudwatch_logs"].IsArray());
  EXPECT_STREQ(aws["cloudwatch_logs"][0]["log_group"].GetString(), "/my/group");
  EXPECT_STREQ(aws["cloudwatch_logs"][0]["arn"].GetString(),
               "arn:aws:logs:us-east-1:1:log-group:/my/group:*");
}

TEST(SerializationTest, EverySubsegmentField) {
  auto segment = NewSegment();
  Subsegment* remote = segment->BeginSubsegment("api.example.com", Namespace::kRemote);
  auto& request = remote->http().request.emplace();
  request.method = "POST";
  request.url = "https://api.example.com/x";
  request.traced = true;
  remote->ApplyStatusCode(503);
  Subsegment* dynamo = segment->BeginSubsegment("DynamoDB", Namespace::kAws);
  dynamo->aws().operation = "PutItem";
  dynamo->aws().region = "us-east-1";
  dynamo->aws().request_id = "req-1";
  dynamo->aws().table_name = "orders";
  dynamo->aws().queue_url = "https://sqs/q";
  dynamo->aws().retries = 2;
  dynamo->aws().extra.emplace_back("consistent_read", true);
  dynamo->AddPrecursor(remote->id());
  Subsegment* db = dynamo->BeginSubsegment("db@localhost");
  db->sql().url = "jdbc:postgresql://localhost/db";
  db->sql().sanitized_query = "SELECT * FROM t WHERE id = ?";
  db->sql().database_type = "PostgreSQL";
  db->sql().database_version = "15";
  db->sql().driver_version = "libpq 15";
  db->sql().user = "app";
  db->sql().preparation = "statement";
  db->sql().connection_string = "host=localhost";
  db->End();
  dynamo->End();
  remote->End();
  segment->End();

  auto json = Emit(segment);
  const auto& subs = json["subsegments"];
  ASSERT_EQ(subs.Size(), 2u);
  EXPECT_STREQ(subs[0]["namespace"].GetString(), "remote");
  EXPECT_TRUE(subs[0]["fault"].GetBool());
  EXPECT_TRUE(subs[0]["http"]["request"]["traced"].GetBool());
  EXPECT_EQ(subs[0]["http"]["response"]["status"].GetInt(), 503);
  EXPECT_FALSE(subs[0].HasMember("type"));  // embedded: no type/trace_id
  EXPECT_FALSE(subs[0].HasMember("trace_id"));
  EXPECT_STREQ(subs[1]["namespace"].GetString(), "aws");
  EXPECT_STREQ(subs[1]["aws"]["operation"].GetString(), "PutItem");
  EXPECT_STREQ(subs[1]["aws"]["table_name"].GetString(), "orders");
  EXPECT_EQ(subs[1]["aws"]["retries"].GetInt(), 2);
  EXPECT_TRUE(subs[1]["aws"]["consistent_read"].GetBool());
  EXPECT_STREQ(subs[1]["precursor_ids"][0].GetString(), remote->id().ToString().c_str());
  const auto& sql = subs[1]["subsegments"][0]["sql"];
  EXPECT_STREQ(sql["sanitized_query"].GetString(), "SELECT * FROM t WHERE id = ?");
  EXPECT_STREQ(sql["preparation"].GetString(), "statement");
  EXPECT_STREQ(sql["user"].GetString(), "app");
  EXPECT_FALSE(subs[1]["subsegments"][0].HasMember("namespace"));  // local
}

TEST(SerializationTest, IndependentSubsegmentCarriesTypeTraceAndParent) {
  auto segment = NewSegment();
  Subsegment* outer = segment->BeginSubsegment("outer");
  Subsegment* inner = outer->BeginSubsegment("inner");
  inner->End();
  auto json = Emit(segment, inner);
  EXPECT_STREQ(json["type"].GetString(), "subsegment");
  EXPECT_STREQ(json["trace_id"].GetString(), kTrace);
  EXPECT_EQ(std::string(json["parent_id"].GetString()), outer->id().ToString());
  outer->End();
  segment->End();
}

TEST(SerializationTest, OpenEntitiesAreInProgress) {
  auto segment = NewSegment();
  segment->BeginSubsegment("open");
  auto json = Emit(segment);
  EXPECT_TRUE(json["in_progress"].GetBool());
  EXPECT_FALSE(json.HasMember("end_time"));
  EXPECT_TRUE(json["subsegments"][0]["in_progress"].GetBool());
}

TEST(SerializationTest, NamesAreSanitizedAndCut) {
  auto segment = NewSegment("GET /api?x=(1)!;*<>$~^");
  segment->End();
  auto json = Emit(segment);
  EXPECT_STREQ(json["name"].GetString(), "GET /apix=1");

  auto long_name = NewSegment(std::string(300, 'n'));
  long_name->End();
  EXPECT_EQ(std::string(Emit(long_name)["name"].GetString()).size(), 200u);

  auto unicode = NewSegment("caf\u00e9 \xe2\x98\x83 \xff");  // snowman: not a letter; \xff invalid
  unicode->End();
  EXPECT_STREQ(Emit(unicode)["name"].GetString(), "caf\u00e9  ");

  auto empty = NewSegment("???");
  empty->End();
  EXPECT_STREQ(Emit(empty)["name"].GetString(), "unnamed");
}

TEST(SerializationTest, HostileStringsStayValid) {
  auto segment = NewSegment();
  segment->set_user(std::string(300, 'u'));
  segment->http().request.emplace().url = std::string("http://x/\x01\x02\"\\\n") + "\xc3\x28";
  segment->PutAnnotation("long", std::string(2000, 'a'));
  segment->PutAnnotation("nan", std::nan(""));
  segment->PutAnnotation("inf", std::numeric_limits<double>::infinity());
  segment->PutMetadata("bad_utf8", std::string("\xed\xa0\x80 surrogate \xf8\x88"));
  segment->PutMetadata("nan",
                       JsonValue::Array({std::nan(""), -std::numeric_limits<double>::infinity()}));
  segment->PutMetadata("\x01key\xff", JsonValue::Object({{"\"quoted\"", nullptr}}));
  segment->End();
  auto json = Emit(segment);
  EXPECT_EQ(std::string(json["user"].GetString()).size(), 250u);
  EXPECT_EQ(std::string(json["annotations"]["long"].GetString()).size(), 1000u);
  EXPECT_STREQ(json["annotations"]["nan"].GetString(), "NaN");
  EXPECT_STREQ(json["annotations"]["inf"].GetString(), "Infinity");
  EXPECT_TRUE(json["metadata"]["default"]["nan"][0].IsNull());
  EXPECT_TRUE(json["metadata"]["default"]["nan"][1].IsNull());
  EXPECT_EQ(std::string(json["http"]["request"]["url"].GetString()),
            "http://x/\x01\x02\"\\\n\xef\xbf\xbd(");
}

// Metadata is turned into JSON when put: putting the same key (in the same namespace) again
// replaces the value, longer or shorter, and namespaces keep their keys apart.
TEST(SerializationTest, MetadataPutAgainReplacesTheValue) {
  auto segment = NewSegment();
  Subsegment* sub = segment->BeginSubsegment("sub");
  for (Entity* entity : {static_cast<Entity*>(segment.get()), static_cast<Entity*>(sub)}) {
    EXPECT_TRUE(entity->PutMetadata("m", 1));
    EXPECT_TRUE(entity->PutMetadata("m", JsonValue::Object({{"list", JsonValue::Array({1, 2, 3})},
                                                            {"text", std::string(100, 't')}})));
    EXPECT_TRUE(entity->PutMetadata("m", "short"));
    EXPECT_TRUE(entity->PutMetadata("m", JsonValue::Array({true, nullptr}), "other"));
    EXPECT_TRUE(entity->PutMetadata("n", 2.5));
  }
  sub->End();
  segment->End();
  auto json = Emit(segment);
  const rapidjson::Value& segment_json = json;
  const rapidjson::Value& subsegment_json = json["subsegments"][0];
  for (const rapidjson::Value* entity : {&segment_json, &subsegment_json}) {
    const rapidjson::Value& metadata = (*entity)["metadata"];
    EXPECT_EQ(metadata.MemberCount(), 2u);
    EXPECT_EQ(metadata["default"].MemberCount(), 2u);
    EXPECT_STREQ(metadata["default"]["m"].GetString(), "short");
    EXPECT_EQ(metadata["default"]["n"].GetDouble(), 2.5);
    ASSERT_TRUE(metadata["other"]["m"].IsArray());
    EXPECT_TRUE(metadata["other"]["m"][0].GetBool());
    EXPECT_TRUE(metadata["other"]["m"][1].IsNull());
  }
}

TEST(SerializationTest, ExceptionCauseAndReference) {
  auto segment = NewSegment();
  Subsegment* sub = segment->BeginSubsegment("work");
  try {
    throw std::invalid_argument("bad input");
  } catch (const std::exception& e) {
    sub->AddException(e, /*remote=*/true);
    sub->End();
    segment->AddException(std::current_exception());
  }
  segment->End();
  auto json = Emit(segment);
  const auto& sub_json = json["subsegments"][0];
  EXPECT_TRUE(sub_json["fault"].GetBool());
  const auto& exception = sub_json["cause"]["exceptions"][0];
  EXPECT_STREQ(exception["type"].GetString(), "std::invalid_argument");
  EXPECT_STREQ(exception["message"].GetString(), "bad input");
  EXPECT_TRUE(exception["remote"].GetBool());
  EXPECT_TRUE(exception["stack"].IsArray());
  EXPECT_LE(exception["stack"].Size(), 10u);
  EXPECT_TRUE(sub_json["cause"].HasMember("working_directory"));
  // The segment refers to the same exception by id.
  ASSERT_TRUE(json["cause"].IsString());
  EXPECT_STREQ(json["cause"].GetString(), exception["id"].GetString());
  EXPECT_TRUE(json["fault"].GetBool());
}

// Each attempt of a retry loop throws a new exception, often at the address the last one had
// (freed at the end of its handler): recognising exceptions by address alone made every attempt
// after the first refer to the first attempt's exception.
TEST(SerializationTest, EachAttemptOfARetryLoopHasItsOwnException) {
  auto segment = NewSegment();
  for (int attempt = 0; attempt < 3; ++attempt) {
    Subsegment* sub = segment->BeginSubsegment("attempt");
    try {
      throw std::runtime_error("connection refused");
    } catch (const std::exception& e) {
      sub->AddException(e, /*remote=*/true, /*with_stack=*/false);
    }
    sub->End();
    // An exception_ptr the same way.
    Subsegment* again = segment->BeginSubsegment("attempt");
    try {
      throw std::runtime_error("connection refused");
    } catch (...) {
      again->AddException(std::current_exception(), true, false);
    }
    again->End();
  }
  segment->End();
  auto json = Emit(segment);
  std::set<std::string> ids;
  for (const auto& sub : json["subsegments"].GetArray()) {
    ASSERT_TRUE(sub["cause"].IsObject()) << "a reference: " << sub["cause"].GetString();
    ids.insert(sub["cause"]["exceptions"][0]["id"].GetString());
  }
  EXPECT_EQ(ids.size(), 6u);
}

// An exception object that is not the one being handled (made by hand, on the stack) has no
// identity: its address may be a later object's as well as its own, so it is described each
// time it is recorded (a duplicate description misleads nobody; a reference to another
// exception would).
TEST(SerializationTest, AnExceptionThatWasNotThrownIsNotReferenced) {
  auto segment = NewSegment();
  Subsegment* sub = segment->BeginSubsegment("work");
  const std::runtime_error made("made by hand");
  sub->AddException(made, false, false);
  sub->End();
  segment->AddException(made, false, false);
  segment->End();
  auto json = Emit(segment);
  EXPECT_TRUE(json["cause"].IsObject());
  EXPECT_TRUE(json["subsegments"][0]["cause"].IsObject());
}

TEST(SerializationTest, NonStdExceptionAndManualException) {
  auto segment = NewSegment();
  try {
    throw 42;
  } catch (...) {
    segment->AddException(std::current_exception(), false, /*with_stack=*/false);
  }
  ExceptionData manual;
  manual.message = "timeout";
  manual.type = "Timeout";
  manual.stack.push_back({"client.cc", 10, "Call"});
  segment->AddException(std::move(manual));
  segment->End();
  auto json = Emit(segment);
  const auto& exceptions = json["cause"]["exceptions"];
  ASSERT_EQ(exceptions.Size(), 2u);
  EXPECT_STREQ(exceptions[0]["type"].GetString(), "int");
  EXPECT_FALSE(exceptions[0].HasMember("stack"));
  EXPECT_STREQ(exceptions[1]["stack"][0]["path"].GetString(), "client.cc");
  EXPECT_EQ(exceptions[1]["stack"][0]["line"].GetInt(), 10);
}

TEST(SerializationTest, StatusFlags) {
  for (auto [status, error, throttle, fault] : {std::tuple{200, false, false, false},
                                                {403, true, false, false},
                                                {429, true, true, false},
                                                {503, false, false, true}}) {
    auto segment = NewSegment();
    segment->ApplyStatusCode(status);
    segment->End();
    auto json = Emit(segment);
    EXPECT_EQ(json.HasMember("error"), error) << status;
    EXPECT_EQ(json.HasMember("throttle"), throttle) << status;
    EXPECT_EQ(json.HasMember("fault"), fault) << status;
  }
}

TEST(SerializationTest, MutationsAfterEndAreIgnoredAndCounted) {
  auto segment = NewSegment();
  segment->End();
  EXPECT_FALSE(segment->PutAnnotation("late", 1));
  EXPECT_FALSE(segment->PutMetadata("late", 1));
  EXPECT_EQ(segment->counters().mutations_after_end.load(), 2u);
  EXPECT_FALSE(Emit(segment).HasMember("annotations"));
}

TEST(SerializationTest, OversizeSegmentIsSplitIntoFittingDatagrams) {
  auto settings = Settings();
  settings->streaming_threshold = 1000;  // nothing streamed ahead: one big document at the end
  auto segment = NewSegment("svc", settings);
  for (int i = 0; i < 50; ++i) {
    Subsegment* sub = segment->BeginSubsegment("chunk");
    sub->PutMetadata("blob", std::string(4000, 'x'));
    sub->End();
  }
  segment->End();
  std::vector<std::string> datagrams;
  SerializationStats stats;
  SerializeDatagrams(DocumentRef{segment, nullptr}, 20000, datagrams, stats);
  EXPECT_EQ(stats.split_documents, 1u);
  EXPECT_EQ(stats.trimmed_documents, 0u);
  EXPECT_EQ(datagrams.size(), 51u);
  for (const std::string& datagram : datagrams) {
    EXPECT_LE(datagram.size(), 20000u);
    ASSERT_EQ(datagram.rfind(kDaemonHeader, 0), 0u);
    const std::string body = datagram.substr(sizeof(kDaemonHeader) - 1);
    EXPECT_TRUE(ValidateSegmentDocument(body).ok()) << ValidateSegmentDocument(body).message();
  }
  auto last = Parse(datagrams.back().substr(sizeof(kDaemonHeader) - 1));
  EXPECT_FALSE(last.HasMember("subsegments"));  // the segment itself, children sent apart
  auto first = Parse(datagrams.front().substr(sizeof(kDaemonHeader) - 1));
  EXPECT_EQ(std::string(first["parent_id"].GetString()), segment->id().ToString());
}

TEST(SerializationTest, OversizeSingleEntityIsTrimmedOrDropped) {
  auto segment = NewSegment();
  for (const char* key : {"a", "b", "c"}) segment->PutMetadata(key, std::string(30000, 'x'));
  segment->End();
  std::vector<std::string> datagrams;
  SerializationStats stats;
  SerializeDatagrams(DocumentRef{segment, nullptr}, kMaxDatagramBytes, datagrams, stats);
  ASSERT_EQ(datagrams.size(), 1u);
  EXPECT_EQ(stats.trimmed_documents, 1u);
  EXPECT_LE(datagrams[0].size(), kMaxDatagramBytes);
  EXPECT_FALSE(Parse(datagrams[0].substr(sizeof(kDaemonHeader) - 1)).HasMember("metadata"));

  datagrams.clear();
  SerializeDatagrams(DocumentRef{segment, nullptr}, 100, datagrams, stats);
  EXPECT_TRUE(datagrams.empty());
  EXPECT_EQ(stats.dropped_documents, 1u);
}

// Spare strings (datagrams already sent) are refilled, their memory reused, and hold exactly
// what a fresh datagram would.
TEST(SerializationTest, DatagramsReuseSpareStrings) {
  auto segment = NewSegment();
  segment->PutMetadata("blob", std::string(3000, 'x'));
  segment->End();
  std::vector<std::string> fresh;
  SerializationStats stats;
  SerializeDatagrams(DocumentRef{segment, nullptr}, kMaxDatagramBytes, fresh, stats);
  ASSERT_EQ(fresh.size(), 1u);

  std::vector<std::string> spare(1, std::string(8000, 'y'));
  const char* const memory = spare[0].data();
  std::vector<std::string> datagrams;
  SerializeDatagrams(DocumentRef{segment, nullptr}, kMaxDatagramBytes, datagrams, stats, &spare);
  ASSERT_EQ(datagrams.size(), 1u);
  EXPECT_TRUE(spare.empty());
  EXPECT_EQ(datagrams[0].data(), memory);
  EXPECT_EQ(datagrams[0], fresh[0]);
}

}  // namespace
}  // namespace xraysink::core
