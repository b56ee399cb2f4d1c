#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "context/handoff.h"
#include "context/scopes.h"
#include "context/testing/test_recorder.h"
#include "context/traced_executor.h"
#include "core/recorder.h"
#include "logs/spdlog_formatter.h"
#include "logs/trace_id.h"
#include "rapidjson/document.h"
#include "spdlog/async_logger.h"
#include "spdlog/details/thread_pool.h"
#include "spdlog/logger.h"
#include "spdlog/sinks/ostream_sink.h"

namespace xraysink::logs {
namespace {

namespace asio = boost::asio;
using context::SegmentScope;
using context::SubsegmentScope;

std::vector<std::string> Lines(const std::ostringstream& stream) {
  std::vector<std::string> lines;
  std::istringstream in(stream.str());
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string IdsOf(const core::Entity& entity) {
  return std::string(entity.segment().trace_id().view()) + "@" + entity.id().ToString();
}

class SpdlogTest : public ::testing::Test {
 protected:
  // A logger writing to `out_` through spdlog's thread-safe ostream sink.
  std::shared_ptr<spdlog::logger> Logger(const std::string& pattern) {
    auto logger = std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
    EXPECT_TRUE(InstallTraceIdFlag(*logger, pattern).ok());
    return logger;
  }

  context::testing::TestRecorder t_;
  core::Recorder& recorder_ = *t_.recorder;
  context::ScopedRestore fresh_{context::CapturedContext()};  // no context left by others
  std::ostringstream out_;
};

TEST_F(SpdlogTest, TextFlagWritesTheIdsOrNothing) {
  auto logger = Logger("[%l] %v AWS-XRAY-TRACE-ID: %k.");
  logger->info("outside");
  std::string segment_ids, subsegment_ids;
  {
    SegmentScope segment(recorder_, "request");
    segment_ids = IdsOf(*segment.segment());
    logger->info("in segment");
    SubsegmentScope work(recorder_, "work");
    subsegment_ids = IdsOf(*work.subsegment());
    logger->warn("in subsegment");
  }
  EXPECT_EQ(Lines(out_), (std::vector<std::string>{
                             "[info] outside AWS-XRAY-TRACE-ID: .",
                             "[info] in segment AWS-XRAY-TRACE-ID: " + segment_ids + ".",
                             "[warning] in subsegment AWS-XRAY-TRACE-ID: " + subsegment_ids + ".",
                         }));
}

TEST_F(SpdlogTest, JsonFlagWritesTheTraceIdMember) {
  auto logger = Logger(R"({"level":"%l","message":"%v",%K})");
  logger->info("outside");
  std::string ids;
  {
    SegmentScope segment(recorder_, "request");
    ids = IdsOf(*segment.segment());
    logger->info("inside");
  }
  const std::vector<std::string> lines = Lines(out_);
  ASSERT_EQ(lines.size(), 2u);
  const std::string expected[] = {"", ids};
  for (size_t i = 0; i < lines.size(); ++i) {
    rapidjson::Document record;
    record.Parse(lines[i].c_str());
    ASSERT_FALSE(record.HasParseError()) << lines[i];
    EXPECT_EQ(record["traceId"].GetString(), expected[i]);
  }
}

TEST_F(SpdlogTest, EverySinkOfTheLoggerGetsTheFlags) {
  std::ostringstream second;
  spdlog::logger logger("two", {std::make_shared<spdlog::sinks::ostream_sink_mt>(out_),
                                std::make_shared<spdlog::sinks::ostream_sink_mt>(second)});
  ASSERT_TRUE(InstallTraceIdFlag(logger, "%v %k").ok());
  SegmentScope segment(recorder_, "request");
  logger.info("hello");
  const std::string line = "hello " + IdsOf(*segment.segment()) + "\n";
  EXPECT_EQ(out_.str(), line);
  EXPECT_EQ(second.str(), line);
}

TEST_F(SpdlogTest, LogCallsInCoroutinesCarryTheirFlowsIdsAfterThreadHops) {
  constexpr int kFlows = 100;
  auto logger = Logger("%v got=%k");
  asio::io_context io(4);
  const auto ex = context::MakeTracedExecutor(io.get_executor());
  // Each record states the ids its flow expects, and the flag adds the ids it finds.
  auto flow = [&](int n) -> asio::awaitable<void> {
    SegmentScope segment(recorder_, "flow");
    for (int hop = 0; hop < 2; ++hop) {
      co_await asio::post(ex, asio::use_awaitable);
      logger->info("want={}", IdsOf(*segment.segment()));
      SubsegmentScope work(recorder_, "work");
      asio::steady_timer timer(ex, std::chrono::microseconds((n * 7 + hop) % 500));
      co_await timer.async_wait(asio::use_awaitable);
      logger->info("want={}", IdsOf(*work.subsegment()));
    }
  };
  for (int n = 0; n < kFlows; ++n) asio::co_spawn(ex, flow(n), asio::detached);
  ASSERT_TRUE(context::testing::RunPool(io, 4));

  const std::vector<std::string> lines = Lines(out_);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kFlows * 4));
  for (const std::string& line : lines) {
    const size_t got = line.find(" got=");
    ASSERT_NE(got, std::string::npos) << line;
    EXPECT_EQ(line.substr(0, got), "want=" + line.substr(got + 5)) << line;
    EXPECT_EQ(line.size(), got + 5 + TraceIdValue::kLength) << line;
  }
}

// An async logger would format on its worker thread, without the caller's context: refused,
// with the reason, and left as it was.
TEST_F(SpdlogTest, AnAsyncLoggerIsRefused) {
  auto pool = std::make_shared<spdlog::details::thread_pool>(16, 1);
  auto logger = std::make_shared<spdlog::async_logger>(
      "async", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_), pool);
  logger->set_pattern("%v");
  const absl::Status installed = InstallTraceIdFlag(*logger, "%v %k");
  EXPECT_EQ(installed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(installed.message().find("synchronous"), absl::string_view::npos)
      << installed.message();
  logger->info("unchanged");
  pool.reset();  // the last owner: its worker writes what is queued, then stops
  EXPECT_EQ(out_.str(), "unchanged\n");
}

}  // namespace
}  // namespace xraysink::logs
