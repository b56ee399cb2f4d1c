#ifndef XRAYSINK_CORE_INTERNAL_EXCEPTION_CAUSE_H_
#define XRAYSINK_CORE_INTERNAL_EXCEPTION_CAUSE_H_

#include <exception>
#include <memory>
#include <string>

#include "core/entity.h"

namespace xraysink::core::internal {

// Describes a C++ exception: demangled type, what(), and (when max_depth > 0) the current stack
// of the recording thread, at most max_depth frames, our own frames left out. `identity` is the
// exception object's address, for recognising the same exception recorded again.
struct DescribedException {
  ExceptionData data;
  const void* identity = nullptr;
};
DescribedException Describe(const std::exception_ptr& exception, bool remote, int max_depth);
DescribedException Describe(const std::exception& exception, bool remote, int max_depth);

// The process's working directory, read once.
const std::string& WorkingDirectory();

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_EXCEPTION_CAUSE_H_
