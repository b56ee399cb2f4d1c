#include "core/internal/read_mostly.h"

namespace xraysink::core::internal {

int ReadMostlyShard() {
  static std::atomic<uint32_t> next{0};
  // Constant-initialised, so reading it needs no TLS guard; -1 = not assigned yet.
  thread_local int shard = -1;
  if (shard < 0) shard = static_cast<int>(next.fetch_add(1) % kReadMostlyShards);
  return shard;
}

}  // namespace xraysink::core::internal
