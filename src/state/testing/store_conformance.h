// The store conformance suite: every Store backend must pass it (STYLE.md, "every store backend
// passes the same store suite").
//
// Usage, in a backend's test file (link the baton_state_testing object library):
//
//   class MyHarness : public baton::state::testing::StoreHarness { ... };
//   BATON_INSTANTIATE_STORE_CONFORMANCE(MyBackend, [] { return std::make_unique<MyHarness>(); });
//
// Each test makes a fresh harness (fresh, empty data), opens the store through it, and may close
// and reopen it (persistence). Asynchronous watch deliveries are awaited with a deadline, never
// with sleeps.
#pragma once

#include <gtest/gtest.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/clock.h"
#include "state/store.h"

namespace baton::state::testing {

class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  // Opens the store on this harness's data; called again after the previous store was destroyed,
  // it must reopen the same data.
  virtual std::unique_ptr<Store> open() = 0;
  // Moves the clock the store's leases are measured by.
  virtual void advanceClock(Duration d) = 0;
  // Makes the store expire every lease whose TTL has passed, before returning.
  virtual void expireLeases(Store& store) = 0;
};

using StoreHarnessFactory = std::function<std::unique_ptr<StoreHarness>()>;

class StoreConformanceTest : public ::testing::TestWithParam<StoreHarnessFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Destroys the current store and opens the same data again.
  void reopen();

  std::unique_ptr<StoreHarness> harness_;
  std::unique_ptr<Store> store_;
};

// Collects a watch's deliveries; thread-safe; callbacks() may be handed to Store::watch.
class WatchRecorder {
 public:
  WatchRecorder();
  WatchCallbacks callbacks();
  // Waits until at least `n` events (over all batches) arrived; false on timeout.
  bool waitForEvents(size_t n, Duration timeout = Duration(10'000));
  bool waitForError(Duration timeout = Duration(10'000));
  std::vector<std::vector<Event>> batches() const;
  std::vector<Event> events() const;  // flattened
  std::optional<Status> error() const;

 private:
  struct State {
    mutable std::mutex mu;
    std::condition_variable cv;
    std::vector<std::vector<Event>> batches;
    size_t count = 0;
    std::optional<Status> error;
  };
  std::shared_ptr<State> state_;
};

}  // namespace baton::state::testing

// Use at namespace scope, once per backend.
#define BATON_INSTANTIATE_STORE_CONFORMANCE(name, factory)                    \
  using StoreConformanceTest = ::baton::state::testing::StoreConformanceTest; \
  INSTANTIATE_TEST_SUITE_P(                                                   \
      name, StoreConformanceTest,                                             \
      ::testing::Values(::baton::state::testing::StoreHarnessFactory(factory)))
