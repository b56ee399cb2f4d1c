#include "core/internal/exception_cause.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <unistd.h>

#include <boost/stacktrace.hpp>
#include <cstdlib>
#include <typeinfo>

namespace xraysink::core::internal {
namespace {

std::string Demangle(const char* mangled) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || demangled == nullptr) return mangled;
  std::string result(demangled);
  std::free(demangled);
  return result;
}

std::string Basename(const char* path) {
  if (path == nullptr) return "";
  std::string_view view(path);
  const size_t slash = view.rfind('/');
  return std::string(slash == std::string_view::npos ? view : view.substr(slash + 1));
}

void CaptureStack(int max_depth, ExceptionData& data) {
  if (max_depth <= 0) return;
  // Skip this function, Describe and Entity::AddException.
  constexpr int kOwnFrames = 3;
  boost::stacktrace::stacktrace trace(kOwnFrames, static_cast<size_t>(max_depth) + 1);
  for (const auto& frame : trace) {
    if (static_cast<int>(data.stack.size()) == max_depth) {
      ++data.truncated;
      continue;
    }
    StackFrame out;
    Dl_info info;
    if (dladdr(frame.address(), &info) != 0) out.path = Basename(info.dli_fname);
    out.label = frame.name();
    if (out.label.empty()) out.label = "??";
    data.stack.push_back(std::move(out));
  }
}

DescribedException DescribeStd(const std::exception& exception, bool remote, int max_depth) {
  DescribedException described;
  described.data.id = EntityId::Generate();
  described.data.type = Demangle(typeid(exception).name());
  described.data.message = exception.what();
  described.data.remote = remote;
  CaptureStack(max_depth, described.data);
  return described;
}

}  // namespace

DescribedException Describe(const std::exception_ptr& exception, bool remote, int max_depth) {
  try {
    std::rethrow_exception(exception);
  } catch (const std::exception& e) {
    DescribedException described = DescribeStd(e, remote, max_depth);
    described.identity = &e;  // the object `exception` holds
    described.object = exception;
    return described;
  } catch (...) {
    DescribedException described;
    described.data.id = EntityId::Generate();
    const std::type_info* type = abi::__cxa_current_exception_type();
    described.data.type = type != nullptr ? Demangle(type->name()) : "unknown";
    described.data.remote = remote;
    CaptureStack(max_depth, described.data);
    return described;
  }
}

DescribedException Describe(const std::exception& exception, bool remote, int max_depth) {
  DescribedException described = DescribeStd(exception, remote, max_depth);
  // Called in a handler for `exception` (catch (const std::exception& e) { ...AddException(e) }):
  // it has an identity, held through the handler's exception_ptr.
  if (std::exception_ptr current = std::current_exception()) {
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& handled) {
      if (&handled == &exception) {
        described.identity = &exception;
        described.object = std::move(current);
      }
    } catch (...) {
    }
  }
  return described;
}

const std::string& WorkingDirectory() {
  static const std::string* const directory = [] {
    char buffer[4096];
    return new std::string(getcwd(buffer, sizeof(buffer)) != nullptr ? buffer : "");
  }();
  return *directory;
}

}  // namespace xraysink::core::internal
