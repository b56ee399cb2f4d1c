#ifndef XRAYSINK_TASKS_PERIODIC_TASK_H_
#define XRAYSINK_TASKS_PERIODIC_TASK_H_

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "tasks/task.h"

namespace xraysink::tasks {

// Runs a job every `period` on an executor, each run traced as its own new trace (see
// RunTraced/Traced). Runs never overlap unless `allow_overlap`: a tick that finds the previous
// run still going is skipped (counted), and so are the ticks an executor stalled through (one
// run when it wakes, then the schedule as before, not a burst of missed runs). Stop() ends the
// schedule; a run in progress completes.
// Give it an executor from context::MakeTracedExecutor so each run's context is its own.
// A period under 1 ms (zero, negative, or a units slip such as steady_clock::duration(30),
// which is 30 ns) would run the job back to back, and one over 366 days is a slip too: such a
// task never runs, and the library's log (core/log.h) says why.
class PeriodicTask : public std::enable_shared_from_this<PeriodicTask> {
 public:
  using Job = std::function<boost::asio::awaitable<void>()>;

  struct Options {
    TaskOptions task;
    bool allow_overlap = false;
    bool run_immediately = false;  // first run at once instead of after one period
  };

  static std::shared_ptr<PeriodicTask> Start(boost::asio::any_io_executor executor,
                                             std::string name,
                                             std::chrono::steady_clock::duration period, Job job,
                                             Options options);
  static std::shared_ptr<PeriodicTask> Start(boost::asio::any_io_executor executor,
                                             std::string name,
                                             std::chrono::steady_clock::duration period, Job job) {
    return Start(std::move(executor), std::move(name), period, std::move(job), Options());
  }

  // Thread-safe; idempotent.
  void Stop();

  uint64_t runs_started() const { return runs_started_.load(); }
  uint64_t runs_failed() const { return runs_failed_.load(); }
  uint64_t ticks_skipped() const { return ticks_skipped_.load(); }
  bool running() const { return running_runs_.load() > 0; }

 private:
  PeriodicTask(boost::asio::any_io_executor executor, std::string name,
               std::chrono::steady_clock::duration period, Job job, Options options);
  boost::asio::awaitable<void> Loop();
  boost::asio::awaitable<void> RunOnce();

  boost::asio::any_io_executor executor_;
  const std::string name_;
  const std::chrono::steady_clock::duration period_;
  const Job job_;
  const Options options_;
  std::mutex timer_mu_;
  boost::asio::steady_timer timer_;
  std::atomic<bool> stopped_{false};
  std::atomic<int> running_runs_{0};
  std::atomic<uint64_t> runs_started_{0};
  std::atomic<uint64_t> runs_failed_{0};
  std::atomic<uint64_t> ticks_skipped_{0};
};

}  // namespace xraysink::tasks

#endif  // XRAYSINK_TASKS_PERIODIC_TASK_H_
