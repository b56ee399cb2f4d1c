#include "core/ids.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace xraysink::core {
namespace {

constexpr char kHex[] = "0123456789abcdef";

TEST(IdsTest, TraceIdForm) {
  const TraceId id = TraceId::GenerateAt(0x5759e988);
  const std::string text(id.view());
  ASSERT_EQ(text.size(), 35u);
  EXPECT_EQ(text.substr(0, 11), "1-5759e988-");
  EXPECT_EQ(text.find_first_not_of(kHex, 11), std::string::npos);
  EXPECT_EQ(id.epoch_seconds(), 0x5759e988u);
  EXPECT_EQ(TraceId::GenerateAt(0x0000abcd).ToString().substr(0, 11), "1-0000abcd-");
  EXPECT_GT(TraceId::Generate().epoch_seconds(), 0x60000000u);  // after 2021
}

TEST(IdsTest, EntityIdForm) {
  EXPECT_EQ(EntityId(0x53995c3f42cd8ad8).ToString(), "53995c3f42cd8ad8");
  EXPECT_EQ(EntityId(1).ToString(), "0000000000000001");
  // Every digit in every position (the digits are formatted eight at a time).
  EXPECT_EQ(EntityId(0x0123456789abcdef).ToString(), "0123456789abcdef");
  EXPECT_EQ(EntityId(0xfedcba9876543210).ToString(), "fedcba9876543210");
  EXPECT_EQ(EntityId(0xa0b1c2d3e4f5a6b7).ToString(), "a0b1c2d3e4f5a6b7");
  EXPECT_EQ(EntityId(0xffffffffffffffff).ToString(), "ffffffffffffffff");
  EXPECT_EQ(TraceId::GenerateAt(0x9abcdef0).ToString().substr(0, 11), "1-9abcdef0-");
  const std::string text = EntityId::Generate().ToString();
  ASSERT_EQ(text.size(), 16u);
  EXPECT_EQ(text.find_first_not_of(kHex), std::string::npos);
}

// The digits as printf writes them, for values that reach every nibble in every position.
TEST(IdsTest, HexDigitsMatchPrintf) {
  std::vector<uint64_t> values = {0, 1, 0x8000000000000000u, 0xffffffffffffffffu};
  for (int nibble = 0; nibble < 16; ++nibble) {
    values.push_back(0x1111111111111111u * static_cast<uint64_t>(nibble));
  }
  for (int i = 0; i < 10000; ++i) values.push_back(internal::RandomU64());
  for (const uint64_t value : values) {
    char expected[17];
    std::snprintf(expected, sizeof(expected), "%016llx", static_cast<unsigned long long>(value));
    ASSERT_EQ(EntityId(value).ToString(), expected);
    std::snprintf(expected, sizeof(expected), "%08x", static_cast<unsigned>(value));
    ASSERT_EQ(TraceId::GenerateAt(static_cast<uint32_t>(value)).ToString().substr(2, 8), expected);
  }
}

TEST(IdsTest, ParseValid) {
  const std::string trace = "1-5759e988-bd862e3fe1be46a994272793";
  EXPECT_EQ(TraceId::Parse(trace)->view(), trace);
  EXPECT_EQ(TraceId::Parse("1-5759E988-BD862E3FE1BE46A994272793")->view(), trace);
  EXPECT_EQ(TraceId::Parse(trace)->epoch_seconds(), 0x5759e988u);
  const TraceId generated = TraceId::Generate();
  EXPECT_EQ(*TraceId::Parse(generated.view()), generated);

  EXPECT_EQ(EntityId::Parse("53995c3f42cd8ad8")->value(), 0x53995c3f42cd8ad8u);
  EXPECT_EQ(EntityId::Parse("53995C3F42CD8AD8")->ToString(), "53995c3f42cd8ad8");
  const EntityId entity = EntityId::Generate();
  EXPECT_EQ(*EntityId::Parse(entity.ToString()), entity);
}

TEST(IdsTest, ParseRejectsMalformed) {
  for (const char* bad :
       {"", "1-5759e988-bd862e3fe1be46a99427279", "2-5759e988-bd862e3fe1be46a994272793",
        "1-5759e98g-bd862e3fe1be46a994272793", "1_5759e988-bd862e3fe1be46a994272793",
        "1-5759e988_bd862e3fe1be46a994272793", "1-5759e988-bd862e3fe1be46a99427279 ",
        "1-5759e988-bd862e3fe1be46a9942727930", "1-5759e98-8bd862e3fe1be46a994272793"}) {
    EXPECT_FALSE(TraceId::Parse(bad)) << bad;
  }
  for (const char* bad : {"", "53995c3f42cd8ad", "53995c3f42cd8adz", "53995c3f42cd8ad80",
                          " 53995c3f42cd8ad", "0x995c3f42cd8ad8"}) {
    EXPECT_FALSE(EntityId::Parse(bad)) << bad;
  }
  EXPECT_TRUE(TraceId().empty());
  EXPECT_TRUE(TraceId().view().empty());
  EXPECT_TRUE(EntityId().empty());
}

// Ids generated on many threads at once are well formed, non-zero and never repeat.
TEST(IdsTest, UniqueAcrossThreads) {
  constexpr int kThreads = 8, kPerThread = 20000;
  std::vector<std::vector<uint64_t>> entity_ids(kThreads);
  std::vector<std::vector<std::string>> trace_ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        entity_ids[t].push_back(EntityId::Generate().value());
        trace_ids[t].push_back(TraceId::GenerateAt(0x5759e988).ToString());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<uint64_t> entities;
  std::set<std::string> traces;
  for (int t = 0; t < kThreads; ++t) {
    entities.insert(entity_ids[t].begin(), entity_ids[t].end());
    traces.insert(trace_ids[t].begin(), trace_ids[t].end());
  }
  EXPECT_EQ(entities.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(entities.count(0), 0u);
  // Same second on purpose: only the random part can tell them apart.
  EXPECT_EQ(traces.size(), static_cast<size_t>(kThreads * kPerThread));
  for (const std::string& trace : traces) {
    ASSERT_TRUE(TraceId::Parse(trace)) << trace;
  }
}

// A pre-forking server's workers each make ids from the thread that forked: the child must not
// go on with the generator state its parent keeps using (nor two children with the same one).
TEST(IdsTest, AForkedChildMakesIdsOfItsOwn) {
  constexpr int kIds = 64;
  EntityId::Generate();  // this thread's generator is seeded before the fork
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    uint64_t ids[kIds];
    for (uint64_t& id : ids) id = EntityId::Generate().value();
    const bool written = write(pipe_fds[1], ids, sizeof(ids)) == static_cast<ssize_t>(sizeof(ids));
    _exit(written ? 0 : 1);
  }
  close(pipe_fds[1]);
  std::set<uint64_t> parents;
  for (int i = 0; i < kIds; ++i) parents.insert(EntityId::Generate().value());
  uint64_t childs[kIds];
  size_t received = 0;
  for (ssize_t n; received < sizeof(childs) &&
                  (n = read(pipe_fds[0], reinterpret_cast<char*>(childs) + received,
                            sizeof(childs) - received)) > 0;) {
    received += static_cast<size_t>(n);
  }
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(received, sizeof(childs));
  int shared = 0;
  for (uint64_t id : childs) shared += parents.count(id) > 0 ? 1 : 0;
  EXPECT_EQ(shared, 0) << "the child repeated its parent's ids";
}

}  // namespace
}  // namespace xraysink::core
