#include "core/daemon_address.h"

#include <gtest/gtest.h>

#include "core/testing/scoped_env.h"

namespace xraysink::core {
namespace {

using ::xraysink::core::testing::ScopedEnv;

// Spec 8.5.
TEST(DaemonAddressTest, ValidForms) {
  DaemonAddress both = *DaemonAddress::Parse("192.168.0.1:3000");
  EXPECT_EQ(both.udp.ToString(), "192.168.0.1:3000");
  EXPECT_EQ(both.tcp.ToString(), "192.168.0.1:3000");
  for (const char* split :
       {"tcp:192.168.0.1:3000 udp:127.0.0.2:8080", "udp:127.0.0.2:8080 tcp:192.168.0.1:3000"}) {
    DaemonAddress address = *DaemonAddress::Parse(split);
    EXPECT_EQ(address.tcp.ToString(), "192.168.0.1:3000") << split;
    EXPECT_EQ(address.udp.ToString(), "127.0.0.2:8080") << split;
  }
  EXPECT_EQ(DaemonAddress::Parse("localhost:2000")->udp.host, "localhost");
  EXPECT_EQ(DaemonAddress::Default().udp.ToString(), "127.0.0.1:2000");
}

TEST(DaemonAddressTest, InvalidForms) {
  for (const char* bad : {"192.168.0.1", "tcp:192.168.0.1:3000", "127.0.0.2:8080 192.168.0.1:3000",
                          "udp:127.0.0.2:8080 192.168.0.1:3000", "[::1]:2000", "host:port", "h:0",
                          "h:65536", ":2000", "", "udp:a:1 udp:b:2", "tcp:a:1 udp:b:2 udp:c:3"}) {
    absl::StatusOr<DaemonAddress> address = DaemonAddress::Parse(bad);
    EXPECT_FALSE(address.ok()) << bad;
    if (!address.ok()) {
      EXPECT_NE(address.status().message().find("daemon address"), absl::string_view::npos);
    }
  }
}

TEST(DaemonAddressTest, EnvironmentWins) {
  {
    ScopedEnv unset("AWS_XRAY_DAEMON_ADDRESS", nullptr);
    EXPECT_EQ(DaemonAddress::FromEnvironment()->udp.ToString(), "127.0.0.1:2000");
    EXPECT_EQ(DaemonAddress::FromEnvironment("10.0.0.1:9")->udp.ToString(), "10.0.0.1:9");
    EXPECT_FALSE(DaemonAddress::FromEnvironment("10.0.0.1").ok());
  }
  {
    ScopedEnv set("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:4000");
    EXPECT_EQ(DaemonAddress::FromEnvironment("10.0.0.1:9")->udp.ToString(), "127.0.0.1:4000");
  }
  {
    ScopedEnv empty("AWS_XRAY_DAEMON_ADDRESS", "");  // empty = unset
    EXPECT_EQ(DaemonAddress::FromEnvironment("10.0.0.1:9")->udp.ToString(), "10.0.0.1:9");
  }
  ScopedEnv bad_value("AWS_XRAY_DAEMON_ADDRESS", "nonsense");
  const absl::StatusOr<DaemonAddress> bad = DaemonAddress::FromEnvironment("10.0.0.1:9");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("AWS_XRAY_DAEMON_ADDRESS"), absl::string_view::npos);
}

}  // namespace
}  // namespace xraysink::core
