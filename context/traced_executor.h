#ifndef XRAYSINK_CONTEXT_TRACED_EXECUTOR_H_
#define XRAYSINK_CONTEXT_TRACED_EXECUTOR_H_

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution/prefer_only.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/strand.hpp>
#include <concepts>
#include <type_traits>
#include <utility>

#include "context/handoff.h"

namespace xraysink::context {

// An Asio standard executor (usable wherever one is: any_io_executor, strands, co_spawn, post,
// dispatch, defer, timers, sockets, awaitables) that makes the X-Ray context follow async work
// over `Inner`, on any thread of a pool.
//
// Unbound (the default), each function submitted runs in a fresh copy of the context current
// at submission: post(traced, f) from a flow gives f its own stack (child isolation), and
// co_spawn(traced, ...) starts the coroutine in a copy of the spawner's context.
//
// Bound (kBound), each function runs in a fresh copy of `captured()`. An unbound executor
// becomes bound when Asio asks it to track outstanding work, which Asio does on the handler's
// executor when an asynchronous operation is initiated: so a completion, and thus a coroutine's
// resumption, runs where its initiation left the flow, without any user code.
//
// Plain executors are untouched: their handlers see whatever context is installed.
template <typename Inner, bool kBound = false>
class TracedExecutor;

namespace internal {

// A submitted function with the context it runs in.
template <typename Function>
class InContext {
 public:
  template <typename F>
  InContext(CapturedContext captured, F&& function)
      : captured_(std::move(captured)), function_(std::forward<F>(function)) {}

  // Executors run a submitted function once.
  void operator()() {
    ScopedRestore restore(std::move(captured_));
    std::move(function_)();
  }

 private:
  CapturedContext captured_;
  Function function_;
};

// Whether a property asks to track outstanding work (any_io_executor forwards its preferences
// wrapped in prefer_only).
template <typename Property>
inline constexpr bool kTracksWork =
    std::is_same_v<Property, boost::asio::execution::outstanding_work_t::tracked_t> ||
    std::is_same_v<Property, boost::asio::execution::prefer_only<
                                 boost::asio::execution::outstanding_work_t::tracked_t>>;

struct Unbound {
  friend bool operator==(Unbound, Unbound) noexcept { return true; }
};

template <typename Executor>
struct Untraced {
  using type = Executor;
  static const Executor& Get(const Executor& executor) { return executor; }
};

template <typename Inner, bool kBound>
struct Untraced<TracedExecutor<Inner, kBound>> {
  using type = Inner;
  static const Inner& Get(const TracedExecutor<Inner, kBound>& executor) {
    return executor.get_inner_executor();
  }
};

}  // namespace internal

template <typename Inner, bool kBound>
class TracedExecutor {
 public:
  using inner_executor_type = Inner;

  // Takes exactly `Inner`. A constructor from anything converting to `Inner` is a candidate for
  // copying a TracedExecutor<any_io_executor>; checking it asks whether a TracedExecutor
  // converts to any_io_executor, i.e. whether it is an executor, i.e. whether it is copyable: a
  // loop, which made TracedExecutor<any_io_executor> unusable as an any_io_executor.
  template <typename I>
  requires(!kBound &&
           std::same_as<std::decay_t<I>, Inner>) explicit TracedExecutor(I&& inner) noexcept
      : inner_(std::forward<I>(inner)) {}
  TracedExecutor(Inner inner, CapturedContext captured) noexcept requires(kBound)
      : inner_(std::move(inner)), captured_(std::move(captured)) {}

  const Inner& get_inner_executor() const noexcept { return inner_; }
  // Where the handlers of a bound executor run.
  const CapturedContext& captured() const noexcept requires(kBound) { return captured_; }

  template <typename Function>
  void execute(Function&& function) const {
    CapturedContext captured;
    if constexpr (kBound) {
      captured = captured_;
    } else {
      captured = Capture();
    }
    inner_.execute(internal::InContext<std::decay_t<Function>>(std::move(captured),
                                                               std::forward<Function>(function)));
  }

  template <typename Property>
  requires boost::asio::can_query<const Inner&, Property>::value decltype(auto) query(
      const Property& property) const
      noexcept(boost::asio::is_nothrow_query<const Inner&, Property>::value) {
    return boost::asio::query(inner_, property);
  }

  // Asio derives executors from temporaries (prefer(require(ex, ...), ...)): the && overloads
  // move the captured context instead of copying it.
  template <typename Property>
  requires boost::asio::can_require<const Inner&, Property>::value auto require(
      const Property& property) const& {
    return Derive(property, boost::asio::require(inner_, property), captured_);
  }
  template <typename Property>
  requires boost::asio::can_require<const Inner&, Property>::value auto require(
      const Property& property) && {
    return Derive(property, boost::asio::require(inner_, property), std::move(captured_));
  }

  template <typename Property>
  requires boost::asio::can_prefer<const Inner&, Property>::value auto prefer(
      const Property& property) const& {
    return Derive(property, boost::asio::prefer(inner_, property), captured_);
  }
  template <typename Property>
  requires boost::asio::can_prefer<const Inner&, Property>::value auto prefer(
      const Property& property) && {
    return Derive(property, boost::asio::prefer(inner_, property), std::move(captured_));
  }

  bool running_in_this_thread() const noexcept requires requires(const Inner& inner) {
    inner.running_in_this_thread();
  }
  { return inner_.running_in_this_thread(); }

  friend bool operator==(const TracedExecutor& a, const TracedExecutor& b) noexcept {
    return a.inner_ == b.inner_ && a.captured_ == b.captured_;
  }

 private:
  // The executor over `inner`, derived from ours for `Property`: bound as ours is (`captured`
  // is ours), except that an unbound executor asked to track work binds to the current context
  // (see the class comment).
  template <typename Property, typename NewInner, typename Captured>
  static auto Derive(const Property&, NewInner&& inner, Captured&& captured) {
    using Result = std::decay_t<NewInner>;
    if constexpr (kBound) {
      return TracedExecutor<Result, true>(std::forward<NewInner>(inner),
                                          std::forward<Captured>(captured));
    } else if constexpr (internal::kTracksWork<Property>) {
      return TracedExecutor<Result, true>(std::forward<NewInner>(inner), Capture());
    } else {
      return TracedExecutor<Result, false>(std::forward<NewInner>(inner));
    }
  }

  Inner inner_;
  // Empty when unbound: an unbound executor is as small as `Inner`, and a bound one over an
  // io_context executor still fits any_io_executor's inline storage (no allocation per copy).
  [[no_unique_address]] std::conditional_t<kBound, CapturedContext, internal::Unbound> captured_;
};

// An unbound TracedExecutor over `executor` (over its inner executor if it is traced).
template <typename Executor>
auto MakeTracedExecutor(const Executor& executor) {
  using Untraced = internal::Untraced<Executor>;
  return TracedExecutor<typename Untraced::type>(Untraced::Get(executor));
}

// `executor` bound to `captured`: its handlers run in copies of that position.
template <typename Executor>
auto Bind(const Executor& executor, CapturedContext captured) {
  using Untraced = internal::Untraced<Executor>;
  return TracedExecutor<typename Untraced::type, true>(Untraced::Get(executor),
                                                       std::move(captured));
}

// `executor` bound to the current context: work submitted through it later, from anywhere,
// still runs as a child of this point. For handlers and callbacks, not coroutines: a coroutine
// spawned on a bound executor resumes at the bound point after each co_await (the asynchronous
// operations it starts track work on that executor), so what it began before a co_await is no
// longer current after it. Spawn coroutines on MakeTracedExecutor's executor from the flow that
// should be their parent: they start in a copy of its context, and keep their own.
template <typename Executor>
auto Fork(const Executor& executor) {
  return Bind(executor, Capture());
}

}  // namespace xraysink::context

namespace boost::asio {

// make_strand(traced) and strand<TracedExecutor<...>>: a TracedExecutor over a strand of the
// inner executor. Asio's own strand would queue the functions bare and run a batch of them
// (from any number of flows) inside one function submitted to the traced executor, i.e. under
// one flow's context; here each function keeps its own.
template <typename Inner, bool kBound>
class strand<xraysink::context::TracedExecutor<Inner, kBound>>
    : public xraysink::context::TracedExecutor<strand<Inner>, kBound> {
  using Traced = xraysink::context::TracedExecutor<Inner, kBound>;
  using Base = xraysink::context::TracedExecutor<strand<Inner>, kBound>;

 public:
  explicit strand(const Traced& executor) : Base(Rebase(executor)) {}

 private:
  static Base Rebase(const Traced& executor) {
    strand<Inner> inner(executor.get_inner_executor());
    if constexpr (kBound) {
      return Base(std::move(inner), executor.captured());
    } else {
      return Base(std::move(inner));
    }
  }
};

}  // namespace boost::asio

#endif  // XRAYSINK_CONTEXT_TRACED_EXECUTOR_H_
