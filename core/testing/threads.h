#ifndef XRAYSINK_CORE_TESTING_THREADS_H_
#define XRAYSINK_CORE_TESTING_THREADS_H_

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace xraysink::core::testing {

// How many threads of this process are named `name` (pthread_setname_np; /proc/self/task).
inline int CountThreadsNamed(std::string_view name) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(entry.path() / "comm");
    std::string thread_name;
    std::getline(comm, thread_name);
    if (thread_name == name) ++count;
  }
  return count;
}

}  // namespace xraysink::core::testing

#endif  // XRAYSINK_CORE_TESTING_THREADS_H_
