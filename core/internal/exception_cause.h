#ifndef XRAYSINK_CORE_INTERNAL_EXCEPTION_CAUSE_H_
#define XRAYSINK_CORE_INTERNAL_EXCEPTION_CAUSE_H_

#include <exception>
#include <memory>
#include <string>

#include "core/entity.h"

namespace xraysink::core::internal {

// Describes a C++ exception: demangled type, what(), and (when max_depth > 0) the current stack
// of the recording thread, at most max_depth frames, our own frames left out. `identity` is the
// address of a thrown exception object, for recognising the same exception recorded again (as it
// propagates up); `object` holds that object, so that while it is remembered its address cannot
// be reused by a later exception (the next attempt of a retry loop). Null for an object that is
// not the exception being handled: its address says nothing about which exception it is.
struct DescribedException {
  ExceptionData data;
  const void* identity = nullptr;
  std::exception_ptr object;
};
DescribedException Describe(const std::exception_ptr& exception, bool remote, int max_depth);
DescribedException Describe(const std::exception& exception, bool remote, int max_depth);

// The process's working directory, read once.
const std::string& WorkingDirectory();

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_EXCEPTION_CAUSE_H_
