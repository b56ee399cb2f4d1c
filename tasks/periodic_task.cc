#include "tasks/periodic_task.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "absl/strings/str_cat.h"
#include "core/context_slot.h"
#include "core/log.h"

namespace xraysink::tasks {

namespace asio = boost::asio;

namespace {
// Shorter periods are mistakes (a traced job, a new trace, a thousand times a second and more);
// longer ones too (steady_clock::duration::max() would overflow the schedule's arithmetic).
constexpr std::chrono::milliseconds kMinimumPeriod(1);
constexpr std::chrono::hours kMaximumPeriod(24 * 366);
}  // namespace

PeriodicTask::PeriodicTask(asio::any_io_executor executor, std::string name,
                           std::chrono::steady_clock::duration period, Job job, Options options)
    : executor_(std::move(executor)),
      name_(std::move(name)),
      period_(period),
      job_(std::move(job)),
      options_(std::move(options)),
      timer_(executor_) {}

std::shared_ptr<PeriodicTask> PeriodicTask::Start(asio::any_io_executor executor, std::string name,
                                                  std::chrono::steady_clock::duration period,
                                                  Job job, Options options) {
  std::shared_ptr<PeriodicTask> task(new PeriodicTask(std::move(executor), std::move(name), period,
                                                      std::move(job), std::move(options)));
  if (period < kMinimumPeriod || period > kMaximumPeriod) {
    core::Log(
        core::LogLevel::kError,
        absl::StrCat("periodic task '", task->name_,
                     "' not started: its period must be from 1 ms to 366 days, not ",
                     std::chrono::duration_cast<std::chrono::nanoseconds>(period).count(), " ns"));
    task->stopped_.store(true);
    return task;
  }
  // The loop starts from no trace: a traced executor gives what it spawns a copy of the current
  // context, which would otherwise hold the starting flow's segment for the schedule's life.
  core::TraceContext none;
  core::ScopedContext no_trace(none);
  asio::co_spawn(
      task->executor_, [task]() { return task->Loop(); }, asio::detached);
  return task;
}

void PeriodicTask::Stop() {
  if (stopped_.exchange(true)) return;
  std::lock_guard<std::mutex> lock(timer_mu_);
  timer_.cancel();
}

asio::awaitable<void> PeriodicTask::RunOnce() {
  runs_started_.fetch_add(1);
  // Each run is a new trace, whoever started the schedule and whatever this thread holds: decided
  // (by Traced, when called) with no current entity, leaving alone the context of the thread
  // this runs on (on a plain executor, that thread's own).
  auto run = [this] {
    core::TraceContext none;
    core::ScopedContext no_trace(none);
    return Traced(name_, job_(), options_.task);
  };
  try {
    co_await run();
  } catch (...) {
    runs_failed_.fetch_add(1);  // recorded on the run's segment; the schedule goes on
  }
  running_runs_.fetch_sub(1);
}

asio::awaitable<void> PeriodicTask::Loop() {
  auto next = std::chrono::steady_clock::now();
  if (!options_.run_immediately) next += period_;
  while (!stopped_.load()) {
    {
      std::lock_guard<std::mutex> lock(timer_mu_);
      timer_.expires_at(next);
    }
    boost::system::error_code error;
    auto token = asio::redirect_error(asio::use_awaitable, error);
    co_await asio::async_initiate<decltype(token), void(boost::system::error_code)>(
        [this](auto handler) {
          std::lock_guard<std::mutex> lock(timer_mu_);
          // A Stop() since expires_at found no wait to cancel: do not wait a whole period.
          if (stopped_.load()) timer_.expires_at(std::chrono::steady_clock::time_point::min());
          timer_.async_wait(std::move(handler));
        },
        token);
    if (stopped_.load()) break;
    next += period_;
    // After a stall (a blocked executor, a suspended VM) the ticks it slept through are skipped
    // (counted), not replayed back to back; the schedule keeps its phase.
    if (const auto now = std::chrono::steady_clock::now(); next <= now) {
      const auto missed = (now - next) / period_ + 1;
      ticks_skipped_.fetch_add(static_cast<uint64_t>(missed));
      next += missed * period_;
    }
    if (running_runs_.load() > 0 && !options_.allow_overlap) {
      ticks_skipped_.fetch_add(1);
      continue;
    }
    running_runs_.fetch_add(1);
    auto self = shared_from_this();
    asio::co_spawn(
        executor_, [self] { return self->RunOnce(); }, asio::detached);
  }
}

}  // namespace xraysink::tasks
