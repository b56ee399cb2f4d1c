#ifndef XRAYSINK_CORE_TESTING_THREADS_H_
#define XRAYSINK_CORE_TESTING_THREADS_H_

#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace xraysink::core::testing {

// The ids of this process's threads named `name` (pthread_setname_np; /proc/self/task).
inline std::vector<pid_t> ThreadIdsNamed(std::string_view name) {
  std::vector<pid_t> ids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(entry.path() / "comm");
    std::string thread_name;
    std::getline(comm, thread_name);
    if (thread_name == name) ids.push_back(std::stoi(entry.path().filename().string()));
  }
  return ids;
}

// How many threads of this process are named `name`.
inline int CountThreadsNamed(std::string_view name) {
  return static_cast<int>(ThreadIdsNamed(name).size());
}

}  // namespace xraysink::core::testing

#endif  // XRAYSINK_CORE_TESTING_THREADS_H_
