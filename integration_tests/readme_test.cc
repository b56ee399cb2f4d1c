// The README's quick start, compiled and run against the fake daemon: what a new user copies
// first must build and send what it says. readme_quick_start.inc holds the README's first C++
// block; the test checks that the README still has it, word for word.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "integration_tests/fake_daemon.h"
#include "rapidjson/document.h"
#include "tools/local_daemon/trace.h"

// The quick start's main(), under another name.
#define main QuickStartMain
#include "integration_tests/readme_quick_start.inc"
#undef main

namespace xraysink::integration_tests {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(120);

std::string ReadRunfile(const std::string& path) {
  std::ifstream file(std::filesystem::path(std::getenv("TEST_SRCDIR")) /
                     std::getenv("TEST_WORKSPACE") / path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST(ReadmeTest, TheQuickStartIsTheReadmesFirstCodeBlock) {
  const std::string quick_start = ReadRunfile("integration_tests/readme_quick_start.inc");
  ASSERT_FALSE(quick_start.empty());
  const std::string readme = ReadRunfile("README.md");
  const size_t first_block = readme.find("```cpp\n");
  ASSERT_NE(first_block, std::string::npos);
  EXPECT_EQ(readme.substr(first_block + 7, quick_start.size() + 4), quick_start + "```\n")
      << "update integration_tests/readme_quick_start.inc with the README's first C++ block";
}

TEST(ReadmeTest, TheQuickStartSendsItsTraceToTheDaemon) {
  absl::StatusOr<std::unique_ptr<FakeDaemon>> daemon = FakeDaemon::Start();
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  // As a user would run it: the daemon's address from the environment.
  setenv("AWS_XRAY_DAEMON_ADDRESS", (*daemon)->daemon_address().c_str(), 1);
  ASSERT_EQ(QuickStartMain(), 0);

  ASSERT_TRUE((*daemon)->WaitFor(1, kTimeout));
  const std::optional<tools::Trace> trace = (*daemon)->TraceWithEntity("orders");
  ASSERT_TRUE(trace.has_value());
  EXPECT_TRUE(trace->complete());
  ASSERT_EQ(trace->roots().size(), 1u);
  const tools::TraceNode& root = trace->roots()[0];
  const rapidjson::Value& segment = *root.entity->json;
  EXPECT_STREQ(segment["annotations"]["customer"].GetString(), "c-42");
  ASSERT_EQ(root.children.size(), 1u);
  const rapidjson::Value& cart = *root.children[0].entity->json;
  EXPECT_STREQ(cart["name"].GetString(), "load-cart");
  EXPECT_EQ(cart["metadata"]["default"]["cart"]["items"].GetInt(), 3);
  EXPECT_EQ((*daemon)->malformed_count(), 0u);
}

}  // namespace
}  // namespace xraysink::integration_tests
