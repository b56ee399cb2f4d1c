#include "emitter/internal/http_post.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "core/testing/loopback_listener.h"

namespace xraysink::emitter::internal {
namespace {

using Clock = std::chrono::steady_clock;

// A resolver that does not answer until the test lets it (a DNS server that is down: glibc then
// waits out its timeouts, attempts and servers), and answers addresses at once, as glibc does.
// Let go, it fails without asking glibc, so that nothing of glibc's resolver is still allocated
// on a thread the test abandoned when the process exits (LeakSanitizer would report it).
std::mutex hang_mu;
std::condition_variable hang_changed;
bool released = false;
int hanging = 0;                             // calls in HangingResolve
std::map<std::string, int> hanging_by_host;  // of those, by the name they resolve

int HangingResolve(const char* host, const char*, const addrinfo* hints, addrinfo**) {
  if ((hints->ai_flags & AI_NUMERICHOST) != 0) return EAI_NONAME;
  std::unique_lock lock(hang_mu);
  ++hanging;
  ++hanging_by_host[host];
  hang_changed.notify_all();
  hang_changed.wait(lock, [] { return released; });
  --hanging_by_host[host];
  --hanging;
  hang_changed.notify_all();
  return EAI_AGAIN;
}

// Lets every hanging resolution go and waits until they have.
void ReleaseResolver() {
  std::unique_lock lock(hang_mu);
  released = true;
  hang_changed.notify_all();
  hang_changed.wait(lock, [] { return hanging == 0; });
}

// Calls PostJson on a thread of its own; fails the test (and lets the resolver go, so the call
// can end) when it has not returned within a few seconds.
absl::StatusOr<HttpAnswer> PostWithHangingResolver(NameResolver& resolver,
                                                   Clock::time_point deadline, int cancel_fd,
                                                   const std::string& host = "daemon.invalid") {
  auto call = std::async(std::launch::async, [&] {
    return PostJson({host, 2000}, "/GetSamplingRules", "{}", deadline, cancel_fd, resolver);
  });
  if (call.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << "PostJson waited for the resolver past its deadline";
    ReleaseResolver();
  }
  return call.get();
}

TEST(HttpPostTest, AResolverThatDoesNotAnswerEndsAtTheDeadline) {
  NameResolver resolver(&HangingResolve);
  const absl::StatusOr<HttpAnswer> answer =
      PostWithHangingResolver(resolver, Clock::now() + std::chrono::milliseconds(200), -1);
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kDeadlineExceeded) << answer.status();
  EXPECT_NE(answer.status().message().find("resolving"), std::string::npos) << answer.status();
}

TEST(HttpPostTest, AResolverThatDoesNotAnswerIsCancelled) {
  const int cancel = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(cancel, 0);
  std::thread canceller([cancel] {
    const uint64_t one = 1;
    ASSERT_EQ(write(cancel, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  });
  NameResolver resolver(&HangingResolve);
  const absl::StatusOr<HttpAnswer> answer =
      PostWithHangingResolver(resolver, Clock::now() + std::chrono::hours(1), cancel);
  canceller.join();
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kCancelled) << answer.status();
  close(cancel);
}

// Each poll of a daemon whose name does not resolve gives up at its deadline; the lookup it
// left running is the one the next poll waits for, not a second thread inside the resolver.
TEST(HttpPostTest, CallsThatGiveUpShareTheLookupStillRunning) {
  // A name of its own: the lookups other tests abandoned may still be starting.
  const std::string host = "shared-lookup.invalid";
  NameResolver resolver(&HangingResolve);
  const absl::StatusOr<HttpAnswer> first =
      PostWithHangingResolver(resolver, Clock::now() + std::chrono::milliseconds(100), -1, host);
  EXPECT_EQ(first.status().code(), absl::StatusCode::kDeadlineExceeded) << first.status();
  {
    std::unique_lock lock(hang_mu);
    ASSERT_TRUE(hang_changed.wait_for(lock, std::chrono::seconds(5),
                                      [&] { return hanging_by_host[host] == 1; }));
  }
  for (int poll = 0; poll < 3; ++poll) {
    const absl::StatusOr<HttpAnswer> next =
        PostWithHangingResolver(resolver, Clock::now() + std::chrono::milliseconds(100), -1, host);
    EXPECT_EQ(next.status().code(), absl::StatusCode::kDeadlineExceeded) << next.status();
  }
  std::lock_guard lock(hang_mu);
  EXPECT_EQ(hanging_by_host[host], 1) << "one lookup in the resolver, whatever the polls";
}

// A name that resolves (through the resolver thread) is connected to and answered.
TEST(HttpPostTest, ANameIsResolvedAndAnswered) {
  core::testing::LoopbackListener listener(1);
  ASSERT_TRUE(listener.ok());
  std::thread server([&listener] {
    const int connection = accept(listener.fd(), nullptr, nullptr);
    if (connection < 0) return;
    std::string request;
    char buffer[4096];
    while (request.find("\r\n\r\n{}") == std::string::npos) {
      const ssize_t got = recv(connection, buffer, sizeof(buffer), 0);
      if (got <= 0) break;
      request.append(buffer, static_cast<size_t>(got));
    }
    constexpr char kAnswer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    send(connection, kAnswer, sizeof(kAnswer) - 1, MSG_NOSIGNAL);
    close(connection);
  });
  NameResolver resolver;
  const absl::StatusOr<HttpAnswer> answer =
      PostJson({"localhost", listener.port()}, "/SamplingTargets", "{}",
               Clock::now() + std::chrono::seconds(10), -1, resolver);
  server.join();
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(answer->body, "ok");
}

// Let the abandoned resolutions finish before the process ends.
class ReleaseResolverAtExit : public ::testing::Environment {
 public:
  void TearDown() override { ReleaseResolver(); }
};
const auto* const release_at_exit = ::testing::AddGlobalTestEnvironment(new ReleaseResolverAtExit);

}  // namespace
}  // namespace xraysink::emitter::internal
