#include "tools/testing/child_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace xraysink::tools::testing {
namespace {

// The test's environment with `changes` applied, as posix_spawn wants it ("NAME=value").
std::vector<std::string> ChildEnvironment(const ChildProcess::Environment& changes) {
  std::vector<std::string> env;
  for (char** var = environ; *var != nullptr; ++var) {
    const std::string_view entry(*var);
    if (!changes.contains(entry.substr(0, entry.find('=')))) env.emplace_back(entry);
  }
  for (const auto& [name, value] : changes) {
    if (value.has_value()) env.push_back(absl::StrCat(name, "=", *value));
  }
  return env;
}

// As posix_spawn wants argv and envp: null-terminated; valid while `strings` is unchanged.
std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& string : strings) pointers.push_back(string.data());
  pointers.push_back(nullptr);
  return pointers;
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> argv, const Environment& env) {
  if (argv.empty()) {
    ADD_FAILURE() << "ChildProcess: no argv[0] to run";
    return;
  }
  name_ = std::filesystem::path(argv[0]).filename().string();
  std::vector<std::string> vars = ChildEnvironment(env);
  const std::vector<char*> argv_pointers = Pointers(argv);
  const std::vector<char*> env_pointers = Pointers(vars);

  // Close-on-exec: a child spawned meanwhile by another thread must not hold a write end open
  // (our reads would never see the end); dup2 gives this child its own inheritable copies.
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    close(out[0]);
    close(out[1]);
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  // A child inherits the spawning thread's signal mask and any ignored dispositions (a test
  // runner may set either), which would make the SIGINT/SIGTERM a test sends do nothing.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, stop_signals;
  sigemptyset(&none);
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &stop_signals);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const int spawned = posix_spawn(&pid_, argv_pointers[0], &actions, &attributes,
                                  argv_pointers.data(), env_pointers.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  pipes_[kOut] = out[0];
  pipes_[kErr] = err[0];
  if (spawned != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(spawned);
    pid_ = -1;
    return;
  }
  // The child is not reaped before Wait (or the destructor), so neither its pid nor this pidfd
  // can name another process meanwhile. By syscall: glibc 2.36's <sys/pidfd.h> lacks
  // extern "C" (its pidfd_open does not link).
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd_ < 0) {
    // Without it the exit cannot be waited for with a deadline: give up on this child.
    ADD_FAILURE() << "pidfd_open: " << std::strerror(errno);
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return;
  }
  open_[kOut] = open_[kErr] = true;
  exited_ = false;
  reader_ = std::thread([this] { Read(); });
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    Reap();
  }
  for (int fd : {pipes_[kOut], pipes_[kErr], pidfd_}) {
    if (fd >= 0) close(fd);
  }
}

std::string ChildProcess::out() const {
  std::lock_guard<std::mutex> lock(mu_);
  return output_[kOut];
}

std::string ChildProcess::err() const {
  std::lock_guard<std::mutex> lock(mu_);
  return output_[kErr];
}

bool ChildProcess::WaitFor(const OutputPredicate& done, absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  AwaitLocked(lock, deadline,
              [&] { return done(output_[kOut], output_[kErr]) || (!open_[kOut] && !open_[kErr]); });
  return done(output_[kOut], output_[kErr]);
}

void ChildProcess::Signal(int signal) {
  if (pid_ > 0 && !reaped_) kill(pid_, signal);
}

bool ChildProcess::WaitUntilStopped(absl::Time deadline) {
  if (pid_ <= 0 || reaped_) return false;
  // Nothing signals a stop to a pidfd, so the state is polled; it changes within a time slice.
  for (;;) {
    const char state = SchedulerState();
    if (state == 'T') return true;
    if (state == 'Z' || state == 'X' || state == '?' || absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

char ChildProcess::SchedulerState() const {
  std::ifstream stat(absl::StrCat("/proc/", pid_, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return '?';
  // "pid (comm) state ...": comm may hold spaces and parentheses, the last ')' ends it.
  const size_t end_of_name = line.rfind(')');
  if (end_of_name == std::string::npos || end_of_name + 2 >= line.size()) return '?';
  return line[end_of_name + 2];
}

std::string ChildProcess::Describe() const {
  const auto read_file = [this](const char* name) {
    std::ifstream file(absl::StrCat("/proc/", pid_, "/", name));
    std::string text;
    std::getline(file, text);
    return text.empty() ? std::string("?") : text;
  };
  return absl::StrCat("state: ", std::string(1, SchedulerState()),
                      ", waiting in: ", read_file("wchan"), ", syscall: ", read_file("syscall"),
                      "\nstdout: ", out(), "\n");
}

uint16_t ChildProcess::ListeningPort(absl::Time deadline) {
  const auto has_a_line = [](const std::string& out, const std::string&) {
    return out.find('\n') != std::string::npos;
  };
  WaitFor(has_a_line, deadline);
  const std::string out = this->out();
  const std::string line = out.substr(0, out.find('\n'));
  uint32_t port = 0;
  if (!absl::StartsWith(line, "listening on ") ||
      !absl::SimpleAtoi(line.substr(sizeof("listening on ") - 1), &port) || port == 0 ||
      port > 65535) {
    ADD_FAILURE() << name_ << ": expected 'listening on PORT' first, got stdout: " << out
                  << "\nstderr: " << err();
    return 0;
  }
  return static_cast<uint16_t>(port);
}

std::optional<int> ChildProcess::Wait(absl::Time deadline) {
  if (pid_ <= 0 || reaped_) return exit_code_;
  bool finished = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    finished = AwaitLocked(lock, deadline, [&] { return exited_ && !open_[kOut] && !open_[kErr]; });
  }
  // Described before the kill, which changes what it would show.
  const std::string description = finished ? "" : Describe();
  if (!finished) kill(pid_, SIGKILL);
  const int status = Reap();
  if (!finished) {
    ADD_FAILURE() << name_ << " did not exit by the deadline: killed with SIGKILL\n"
                  << description << "stderr: " << err();
  } else if (!WIFEXITED(status)) {
    ADD_FAILURE() << name_ << " was killed by signal " << WTERMSIG(status) << "\nstderr: " << err();
  } else {
    exit_code_ = WEXITSTATUS(status);
  }
  return exit_code_;
}

bool ChildProcess::AwaitLocked(std::unique_lock<std::mutex>& lock, absl::Time deadline,
                               const std::function<bool()>& condition) {
  // An infinite deadline has no chrono equivalent: the conversion would overflow.
  if (deadline == absl::InfiniteFuture()) {
    changed_.wait(lock, condition);
    return true;
  }
  // A relative wait is on the steady clock: a wall clock step cannot stretch or cut it short.
  return changed_.wait_for(lock, absl::ToChronoNanoseconds(deadline - absl::Now()), condition);
}

void ChildProcess::Read() {
  for (;;) {
    // Only this thread changes open_ and exited_ once it runs: no lock to read them here.
    if (exited_ && !open_[kOut] && !open_[kErr]) return;
    pollfd fds[3] = {
        {open_[kOut] ? pipes_[kOut] : -1, POLLIN, 0},
        {open_[kErr] ? pipes_[kErr] : -1, POLLIN, 0},
        {exited_ ? -1 : pidfd_, POLLIN, 0},
    };
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      // Waiters then run to their deadlines; Wait kills the child.
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      return;
    }
    char buffer[2][4096];
    ssize_t sizes[2] = {0, 0};
    for (int i : {kOut, kErr}) {
      if (fds[i].revents != 0) sizes[i] = read(pipes_[i], buffer[i], sizeof(buffer[i]));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int i : {kOut, kErr}) {
        if (fds[i].revents == 0) continue;
        // End of file, or an error: either way nothing more will come.
        if (sizes[i] <= 0) {
          open_[i] = false;
        } else {
          output_[i].append(buffer[i], static_cast<size_t>(sizes[i]));
        }
      }
      if (fds[2].revents != 0) exited_ = true;
    }
    changed_.notify_all();
  }
}

int ChildProcess::Reap() {
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  // The child is gone, so its outputs close and the reader returns.
  if (reader_.joinable()) reader_.join();
  return status;
}

ChildProcess::Environment WithoutVariables(std::string_view prefix) {
  ChildProcess::Environment env;
  for (char** var = environ; *var != nullptr; ++var) {
    const std::string_view entry(*var);
    if (entry.substr(0, prefix.size()) == prefix) {
      env[std::string(entry.substr(0, entry.find('=')))] = std::nullopt;
    }
  }
  return env;
}

}  // namespace xraysink::tools::testing
