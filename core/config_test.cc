#include "core/config.h"

#include <gtest/gtest.h>

#include <string>

#include "core/testing/scoped_env.h"

namespace xraysink::core {
namespace {

using ::xraysink::core::testing::ScopedEnv;

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
  {
    ScopedEnv enabled("AWS_XRAY_SDK_ENABLED", "off");
    ScopedEnv missing("AWS_XRAY_CONTEXT_MISSING", "RUNTIME_ERROR");
    ScopedEnv name("AWS_XRAY_TRACING_NAME", "svc");
    ScopedEnv address("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:3000");
    const EnvironmentSettings settings = EnvironmentSettings::Read();
    EXPECT_EQ(settings.sdk_enabled, false);
    EXPECT_EQ(settings.context_missing, ContextMissing::kRuntimeError);
    EXPECT_EQ(settings.tracing_name, "svc");
    EXPECT_EQ(settings.daemon_address, "127.0.0.1:3000");
    EXPECT_TRUE(settings.warnings.empty());
  }
  {
    ScopedEnv enabled("AWS_XRAY_SDK_ENABLED", "maybe");
    ScopedEnv missing("AWS_XRAY_CONTEXT_MISSING", "PANIC");
    const EnvironmentSettings settings = EnvironmentSettings::Read();
    EXPECT_EQ(settings.sdk_enabled, true);
    EXPECT_FALSE(settings.context_missing.has_value());
    ASSERT_EQ(settings.warnings.size(), 2u);
    EXPECT_NE(settings.warnings[0].find("maybe"), std::string::npos);
    EXPECT_NE(settings.warnings[1].find("PANIC"), std::string::npos);
  }
  ScopedEnv enabled("AWS_XRAY_SDK_ENABLED", nullptr);
  ScopedEnv missing("AWS_XRAY_CONTEXT_MISSING", "");  // empty = unset
  ScopedEnv name("AWS_XRAY_TRACING_NAME", nullptr);
  ScopedEnv address("AWS_XRAY_DAEMON_ADDRESS", nullptr);
  const EnvironmentSettings settings = EnvironmentSettings::Read();
  EXPECT_FALSE(settings.sdk_enabled.has_value());
  EXPECT_FALSE(settings.context_missing.has_value());
  EXPECT_FALSE(settings.tracing_name.has_value());
  EXPECT_FALSE(settings.daemon_address.has_value());
  EXPECT_TRUE(settings.warnings.empty());
}

}  // namespace
}  // namespace xraysink::core
