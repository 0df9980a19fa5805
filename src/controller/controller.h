// The controller's I/O shell (README.md): reads a snapshot of the store, runs the pure
// reconcile() and writes the plan back as compare-and-swap transactions.
//
//   snapshot:  list /baton/{apps,instances,status,nodes,scale,rollouts}/ (retried until all six
//              lists were read at the same revision, up to 3 tries; the CAS guards below make a
//              torn read harmless anyway)
//   decide:    reconcile(snapshot, clock.now()) -> ReconcilePlan
//   write:     transactions of at most ~100 compares/ops (etcd's default txn limit is 128);
//              every create is guarded by Compare::absent(instance key), every change by the
//              mod_revision the snapshot saw for the instance (and status), its app and scale
//              override keys, and each placement by its node's create_revision. If a guard fails
//              the rest of the plan is dropped and the next pass decides again from fresh state.
//   loop:      start() runs a thread that reconciles when a watch on /baton/ fires (debounced)
//              and at least every `resync`: level-triggered, so a missed event only delays.
//
// Thread safety: reconcileOnce() may be called from any thread; passes are serialized.
// start()/stop() must not be called concurrently with each other. The store and clock must
// outlive the controller. The event callback runs on the reconciling thread and must not call
// back into the controller.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "controller/reconcile.h"
#include "core/clock.h"
#include "core/result.h"
#include "state/store.h"

namespace baton::controller {

using EventSink = std::function<void(const std::string& kind, const std::string& message)>;

struct ControllerOptions {
  Duration resync = Duration(1000);  // reconcile at least this often
  Duration debounce = Duration(50);  // after a watch event, wait this long for more
  ReconcileOptions reconcile;
  IdGenerator ids;     // default: "<app>-<service>-<16 random hex digits>"
  EventSink on_event;  // optional: every event of an applied plan, and
                       // warnings when they first appear
};

struct ControllerStats {
  uint64_t passes = 0;     // reconcileOnce() calls that read a snapshot
  uint64_t applied = 0;    // non-empty plans written completely
  uint64_t conflicts = 0;  // plans dropped because a guard failed
  uint64_t errors = 0;     // store errors
};

class Controller {
 public:
  Controller(state::Store& store, Clock& clock, ControllerOptions options = {});
  ~Controller();  // stops the loop
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // One pass: snapshot, reconcile, write. OK when the plan was empty or fully written;
  // kConflict when a guard failed (nothing after it was written; the next pass retries);
  // the store's error otherwise.
  Status reconcileOnce();

  void start();
  // Asks for a pass now (e.g. the autoscaler changed a desired count). Never blocks.
  void poke() { wake(); }
  void stop();

  ControllerStats stats() const;

 private:
  void loop();
  void wake();
  void emit(const std::string& kind, const std::string& message);

  state::Store& store_;
  Clock& clock_;
  ControllerOptions options_;

  mutable std::mutex pass_mu_;  // serializes passes; guards stats_ and warnings_
  ControllerStats stats_;
  std::set<std::string> warnings_;  // warnings reported by the previous pass

  std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  bool running_ = false;
  bool dirty_ = false;
  bool watch_broken_ = false;
  std::thread thread_;
};

}  // namespace baton::controller
