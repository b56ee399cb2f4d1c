#include "core/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace xraysink::core {
namespace {

TEST(ConfigTest, SdkEnabledParsesLikeTheSdks) {
  for (const char* on : {"TrUE", "true", "1", "y", "t", "yes", "on", "INVALID"}) {
    EXPECT_TRUE(ParseSdkEnabled(on)) << on;
  }
  for (const char* off : {"False", "falSE", "0", "n", "no", "f", "off"}) {
    EXPECT_FALSE(ParseSdkEnabled(off)) << off;
  }
}

TEST(ConfigTest, ContextMissing) {
  EXPECT_EQ(*ParseContextMissing("LOG_ERROR"), ContextMissing::kLogError);
  EXPECT_EQ(*ParseContextMissing("runtime_error"), ContextMissing::kRuntimeError);
  EXPECT_EQ(*ParseContextMissing("Ignore_Error"), ContextMissing::kIgnoreError);
  const auto bad = ParseContextMissing("PANIC");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("PANIC"), absl::string_view::npos);
}

TEST(ConfigTest, ReadsEnvironment) {
  setenv("AWS_XRAY_SDK_ENABLED", "off", 1);
  setenv("AWS_XRAY_CONTEXT_MISSING", "RUNTIME_ERROR", 1);
  setenv("AWS_XRAY_TRACING_NAME", "svc", 1);
  setenv("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:3000", 1);
  EnvironmentSettings settings = EnvironmentSettings::Read();
  EXPECT_EQ(settings.sdk_enabled, false);
  EXPECT_EQ(settings.context_missing, ContextMissing::kRuntimeError);
  EXPECT_EQ(settings.tracing_name, "svc");
  EXPECT_EQ(settings.daemon_address, "127.0.0.1:3000");
  EXPECT_TRUE(settings.warnings.empty());

  setenv("AWS_XRAY_SDK_ENABLED", "maybe", 1);
  setenv("AWS_XRAY_CONTEXT_MISSING", "PANIC", 1);
  settings = EnvironmentSettings::Read();
  EXPECT_EQ(settings.sdk_enabled, true);
  EXPECT_FALSE(settings.context_missing.has_value());
  EXPECT_EQ(settings.warnings.size(), 2u);

  for (const char* name : {"AWS_XRAY_SDK_ENABLED", "AWS_XRAY_CONTEXT_MISSING",
                           "AWS_XRAY_TRACING_NAME", "AWS_XRAY_DAEMON_ADDRESS"}) {
    unsetenv(name);
  }
  settings = EnvironmentSettings::Read();
  EXPECT_FALSE(settings.sdk_enabled.has_value());
  EXPECT_FALSE(settings.tracing_name.has_value());
}

}  // namespace
}  // namespace xraysink::core
