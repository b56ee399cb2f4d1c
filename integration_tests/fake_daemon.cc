#include "integration_tests/fake_daemon.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"

namespace xraysink::integration_tests {

absl::StatusOr<std::unique_ptr<FakeDaemon>> FakeDaemon::Start() {
  absl::StatusOr<std::unique_ptr<tools::UdpListener>> listener =
      tools::UdpListener::Bind("127.0.0.1", 0);
  if (!listener.ok()) return listener.status();
  return std::unique_ptr<FakeDaemon>(new FakeDaemon(*std::move(listener)));
}

FakeDaemon::FakeDaemon(std::unique_ptr<tools::UdpListener> listener)
    : listener_(std::move(listener)), receiver_([this] { Receive(); }) {}

FakeDaemon::~FakeDaemon() {
  stopping_ = true;
  listener_->Wake();
  receiver_.join();
}

std::string FakeDaemon::address() const { return absl::StrCat("127.0.0.1:", port()); }

void FakeDaemon::Receive() {
  while (!stopping_) {
    absl::StatusOr<std::optional<std::string>> datagram =
        listener_->Receive(absl::InfiniteDuration());
    if (!datagram.ok()) {
      // Nothing more will arrive; waiting tests time out with this reason in their log.
      std::fprintf(stderr, "FakeDaemon: %s\n", std::string(datagram.status().message()).c_str());
      return;
    }
    if (!datagram->has_value()) continue;
    absl::StatusOr<tools::ReceivedDocument> document = tools::ParseDatagram(**datagram);
    {
      std::lock_guard<std::mutex> lock(mu_);
      datagrams_.push_back(**std::move(datagram));
      if (document.ok()) {
        documents_.push_back(*document);
        assembler_.Add(*std::move(document), absl::Now());
      } else {
        malformed_reasons_.emplace_back(document.status().message());
      }
    }
    arrived_.notify_all();
  }
}

bool FakeDaemon::WaitUntil(absl::Duration timeout, const std::function<bool()>& done) {
  std::unique_lock<std::mutex> lock(mu_);
  return arrived_.wait_for(lock, absl::ToChronoNanoseconds(timeout), done);
}

bool FakeDaemon::WaitFor(size_t documents, absl::Duration timeout) {
  return WaitUntil(timeout, [&] { return documents_.size() >= documents; });
}

bool FakeDaemon::WaitForDatagrams(size_t datagrams, absl::Duration timeout) {
  return WaitUntil(timeout, [&] { return datagrams_.size() >= datagrams; });
}

std::vector<std::string> FakeDaemon::datagrams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return datagrams_;
}

std::vector<tools::ReceivedDocument> FakeDaemon::documents() const {
  std::lock_guard<std::mutex> lock(mu_);
  return documents_;
}

size_t FakeDaemon::malformed_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return malformed_reasons_.size();
}

std::vector<std::string> FakeDaemon::malformed_reasons() const {
  std::lock_guard<std::mutex> lock(mu_);
  return malformed_reasons_;
}

std::vector<std::string> FakeDaemon::trace_ids() const {
  std::lock_guard<std::mutex> lock(mu_);
  return assembler_.TraceIds();
}

std::optional<tools::Trace> FakeDaemon::trace(std::string_view trace_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return assembler_.Get(trace_id);
}

std::optional<tools::Trace> FakeDaemon::TraceWithEntity(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& id : assembler_.TraceIds()) {
    std::optional<tools::Trace> trace = assembler_.Get(id);
    if (trace->FindByName(name) != nullptr) return trace;
  }
  return std::nullopt;
}

}  // namespace xraysink::integration_tests
