#include "core/ids.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace xraysink::core {
namespace {

TEST(IdsTest, TraceIdForm) {
  const TraceId id = TraceId::GenerateAt(0x5759e988);
  const std::string text(id.view());
  ASSERT_EQ(text.size(), 35u);
  EXPECT_EQ(text.substr(0, 11), "1-5759e988-");
  EXPECT_EQ(text.find_first_not_of("0123456789abcdef", 11), std::string::npos);
  EXPECT_EQ(id.epoch_seconds(), 0x5759e988u);
  EXPECT_EQ(*TraceId::Parse(text), id);
  EXPECT_GT(TraceId::Generate().epoch_seconds(), 0x60000000u);
}

TEST(IdsTest, ParseRejectsMalformed) {
  for (const char* bad : {"", "1-5759e988-bd862e3fe1be46a99427279", "2-5759e988-bd862e3fe1be46a994272793",
                          "1-5759e98g-bd862e3fe1be46a994272793", "1_5759e988-bd862e3fe1be46a994272793",
                          "1-5759e988-bd862e3fe1be46a9942727930"}) {
    EXPECT_FALSE(TraceId::Parse(bad)) << bad;
  }
  EXPECT_FALSE(EntityId::Parse("53995c3f42cd8ad"));
  EXPECT_FALSE(EntityId::Parse("53995c3f42cd8adz"));
  EXPECT_EQ(EntityId::Parse("53995C3F42CD8AD8")->ToString(), "53995c3f42cd8ad8");
  EXPECT_TRUE(TraceId().empty());
  EXPECT_TRUE(EntityId().empty());
}

TEST(IdsTest, UniqueAcrossThreads) {
  constexpr int kThreads = 8, kPerThread = 20000;
  std::vector<std::vector<uint64_t>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, t] {
      for (int i = 0; i < kPerThread; ++i) ids[t].push_back(EntityId::Generate().value());
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<uint64_t> all;
  for (const auto& list : ids) all.insert(list.begin(), list.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(all.count(0), 0u);
}

}  // namespace
}  // namespace xraysink::core
