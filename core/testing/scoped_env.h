#ifndef XRAYSINK_CORE_TESTING_SCOPED_ENV_H_
#define XRAYSINK_CORE_TESTING_SCOPED_ENV_H_

#include <stdlib.h>

#include <optional>
#include <string>

namespace xraysink::core::testing {

// Sets (or, with nullptr, unsets) an environment variable for one scope and restores the
// previous value afterwards: Bazel sets AWS_XRAY_DAEMON_ADDRESS for every test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    Set(name, value);
  }
  ~ScopedEnv() { Set(name_, old_ ? old_->c_str() : nullptr); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  static void Set(const char* name, const char* value) {
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }

  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace xraysink::core::testing

#endif  // XRAYSINK_CORE_TESTING_SCOPED_ENV_H_
