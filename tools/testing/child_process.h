#ifndef XRAYSINK_TOOLS_TESTING_CHILD_PROCESS_H_
#define XRAYSINK_TOOLS_TESTING_CHILD_PROCESS_H_

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace xraysink::tools::testing {

// A binary run as a child process of the test, for the tools' end-to-end tests. It inherits
// the test's stdin; its stdout and stderr are captured. SIGINT and SIGTERM start unblocked,
// with their default actions, whatever the test's thread had: a test can stop it as a user
// would. A thread reads both outputs as they come and watches for the child's exit through a
// pidfd, so every wait is on a condition, with a deadline. Failures (it could not be started,
// it outlived a deadline, it died of a signal) are reported to gtest as they happen.
class ChildProcess {
 public:
  // Changes to the test's environment for the child: each name set to its value, or removed
  // when the value is nullopt.
  using Environment = std::map<std::string, std::optional<std::string>, std::less<>>;
  // Called with all the child has written so far to stdout and to stderr.
  using OutputPredicate = std::function<bool(const std::string& out, const std::string& err)>;

  // Starts `argv[0]` (a path) with `argv` as its arguments. When it cannot be started (a test
  // failure), the object acts as a child that exited with no output, and Wait returns nullopt.
  explicit ChildProcess(std::vector<std::string> argv, const Environment& env = {});
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills (SIGKILL) and reaps the child if Wait has not.
  ~ChildProcess();

  // What the child has written so far; safe to call at any time.
  std::string out() const;
  std::string err() const;

  // Waits until `done(out, err)` holds, and says whether it does. It is false when `deadline`
  // passes or both outputs close first, as then it can no longer change. `done` runs with
  // the output lock held: it must not call out() or err().
  bool WaitFor(const OutputPredicate& done, absl::Time deadline);

  // The port of the first stdout line, "listening on PORT" (the tools' servers all start so);
  // 0, and a test failure, when the first line is something else or none came by `deadline`.
  uint16_t ListeningPort(absl::Time deadline);

  // Sends `signal`; nothing once the child has been reaped, as its pid may be reused.
  void Signal(int signal);

  // Waits until the child is stopped (after a SIGSTOP, say), and says whether it is; false
  // when `deadline` passes, the child exits first, or it has been reaped. A stop signal takes
  // effect after kill() returns, when the child is next scheduled: a test that relies on the
  // stop waits for it.
  bool WaitUntilStopped(absl::Time deadline);

  // Waits until the child has exited and both its outputs are closed, then reaps it; its exit
  // code. When it is still running at `deadline` it is killed with SIGKILL; that, or an exit by
  // a signal, is a failure and nullopt. Later calls return the same result.
  std::optional<int> Wait(absl::Time deadline);

 private:
  static constexpr int kOut = 0;
  static constexpr int kErr = 1;

  // Waits on `changed_` until `condition` holds or `deadline` passes; whether it holds.
  bool AwaitLocked(std::unique_lock<std::mutex>& lock, absl::Time deadline,
                   const std::function<bool()>& condition);
  // The child's scheduler state as /proc shows it ('R', 'S', 'T', ...); '?' when unreadable.
  char SchedulerState() const;
  // For failure messages: the child's state, where the kernel has it waiting, and stdout.
  std::string Describe() const;
  // Collects both outputs until they close and the child exits.
  void Read();
  // Reaps the child (blocking) and ends the reader; the wait status.
  int Reap();

  std::string name_;  // argv[0]'s file name, for failure messages
  pid_t pid_ = -1;    // -1 when the child could not be started
  int pidfd_ = -1;
  int pipes_[2] = {-1, -1};  // read ends of stdout, stderr
  std::thread reader_;
  // Used by the test's thread only.
  bool reaped_ = false;
  std::optional<int> exit_code_;

  mutable std::mutex mu_;
  std::condition_variable changed_;  // notified on new output, a closed output, the exit
  // Until a child is started there is nothing to wait for.
  bool open_[2] = {false, false};
  bool exited_ = true;
  std::string output_[2];
};

// The test's environment variables whose names start with `prefix`, removed: e.g. "AWS_XRAY_",
// so that a developer's settings do not change what a tool under test does.
ChildProcess::Environment WithoutVariables(std::string_view prefix);

}  // namespace xraysink::tools::testing

#endif  // XRAYSINK_TOOLS_TESTING_CHILD_PROCESS_H_
