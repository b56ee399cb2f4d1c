#include "core/context_slot.h"

#include <gtest/gtest.h>

#include <memory>
#include <utility>

#include "core/entity.h"

namespace xraysink::core {
namespace {

// Makes a fresh segment each time, and counts.
struct CountingBuilder : SegmentBuilder {
  std::shared_ptr<Segment> BuildSegment() const override {
    ++built;
    SegmentOptions options;
    options.name = "deferred";
    options.sampled = false;
    return Segment::Create(std::move(options), std::make_shared<SegmentSettings>(), nullptr);
  }
  mutable int built = 0;
};

TEST(TraceContextTest, ADeferredSegmentIsBuiltOnceWhenFirstAskedFor) {
  CountingBuilder builder;
  TraceContext context;
  context.Defer(&builder);
  EXPECT_FALSE(context.empty());
  EXPECT_TRUE(context.deferred());
  EXPECT_FALSE(context.Pop(nullptr));  // nothing begun under it
  EXPECT_EQ(builder.built, 0);

  Entity* current = context.current();
  ASSERT_NE(current, nullptr);
  EXPECT_EQ(builder.built, 1);
  EXPECT_FALSE(context.deferred());
  EXPECT_EQ(context.segment(), current);
  EXPECT_EQ(context.segment()->name(), "deferred");
  EXPECT_EQ(builder.built, 1);
}

// A child flow and its parent see one segment, whichever asks first: copying builds it.
TEST(TraceContextTest, CopiesAndMovesShareTheOneDeferredSegment) {
  CountingBuilder builder;
  TraceContext parent;
  parent.Defer(&builder);
  TraceContext child = parent;
  EXPECT_EQ(builder.built, 1);
  EXPECT_FALSE(parent.deferred());
  EXPECT_EQ(child.segment(), parent.segment());

  TraceContext assigned;
  TraceContext source;
  source.Defer(&builder);
  assigned = source;
  EXPECT_EQ(builder.built, 2);
  EXPECT_EQ(assigned.segment(), source.segment());

  TraceContext moved_from;
  moved_from.Defer(&builder);
  TraceContext moved(std::move(moved_from));  // the builder may not outlive moved_from's owner
  EXPECT_EQ(builder.built, 3);
  EXPECT_FALSE(moved.deferred());
  ASSERT_NE(moved.segment(), nullptr);
}

// The owner of a context and its builder hands the deferral over when it moves.
TEST(TraceContextTest, TakeFromKeepsTheSegmentDeferredWithTheNewBuilder) {
  CountingBuilder old_builder, new_builder;
  TraceContext old_context;
  old_context.Defer(&old_builder);
  TraceContext new_context;
  new_context.TakeFrom(old_context, &new_builder);
  EXPECT_TRUE(old_context.empty());
  EXPECT_TRUE(new_context.deferred());
  ASSERT_NE(new_context.segment(), nullptr);
  EXPECT_EQ(old_builder.built, 0);
  EXPECT_EQ(new_builder.built, 1);

  TraceContext plain;
  plain.TakeFrom(new_context, &old_builder);  // built already: nothing deferred to hand over
  EXPECT_FALSE(plain.deferred());
  EXPECT_NE(plain.segment(), nullptr);
  EXPECT_EQ(old_builder.built, 0);
}

TEST(TraceContextTest, ResetDropsADeferral) {
  CountingBuilder builder;
  TraceContext context;
  context.Defer(&builder);
  context.Reset();
  EXPECT_TRUE(context.empty());
  EXPECT_EQ(context.segment(), nullptr);
  EXPECT_EQ(builder.built, 0);
}

}  // namespace
}  // namespace xraysink::core
