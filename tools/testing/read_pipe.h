#ifndef XRAYSINK_TOOLS_TESTING_READ_PIPE_H_
#define XRAYSINK_TOOLS_TESTING_READ_PIPE_H_

#include <unistd.h>

#include <string>

namespace xraysink::tools::testing {

// Appends one read's worth of what a child process wrote to `fd` (a pipe poll() reported
// readable) to `out`. False once the pipe is done: end of file, or an error.
inline bool ReadPipe(int fd, std::string& out) {
  char buffer[4096];
  const ssize_t size = read(fd, buffer, sizeof(buffer));
  if (size <= 0) return false;
  out.append(buffer, static_cast<size_t>(size));
  return true;
}

}  // namespace xraysink::tools::testing

#endif  // XRAYSINK_TOOLS_TESTING_READ_PIPE_H_
