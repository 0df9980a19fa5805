// The driver conformance suite (STYLE.md "a harness per module"; Nomad's driver tests): every
// driver (exec, docker, oci, wasm) passes the same tests. A driver's test file provides a
// DriverHarness and instantiates the suite:
//
//   INSTANTIATE_TEST_SUITE_P(Exec, DriverConformanceTest,
//                            ::testing::Values(DriverHarnessFactory([] {
//                              return std::make_unique<MyHarness>();
//                            })),
//                            driverHarnessName);
//
// and links the `baton_drivers_conformance` object library. The tests run real services: a
// POSIX shell script (sh -c) inside whatever the driver runs (a process, a container), so the
// harness only says how to turn a script into a TaskConfig.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "drivers/driver.h"

namespace baton::drivers::testing {

class DriverHarness {
 public:
  virtual ~DriverHarness() = default;
  virtual std::string name() const = 0;
  // A new driver object over the harness's persistent state (state dir, daemon, ...). Calling
  // it again after dropping the previous driver simulates an agent restart.
  virtual std::unique_ptr<Driver> makeDriver() = 0;
  // A task running `script` with sh -c, env `env` (the harness adds PATH and PORT=port),
  // logging to a fresh log dir, with small rotation limits irrelevant to the suite.
  virtual TaskConfig shellTask(const std::string& instance_id, const std::string& script,
                               const std::map<std::string, std::string>& env, int port) = 0;
  // A task whose program does not exist ("nosuch-program-<something>").
  virtual TaskConfig missingProgramTask(const std::string& instance_id) = 0;
  // A task that listens for TCP on ${PORT} (accepting and closing connections), or nullopt
  // when the driver has no such service to offer. The suite connects where the started task's
  // status says (address:port), else to 127.0.0.1:port.
  virtual std::optional<TaskConfig> listenerTask(const std::string& instance_id, int port) {
    return std::nullopt;
  }
  // Whether a pid the service reported (via $$ in its output) still runs. The default checks
  // the host's /proc (right for process drivers); drivers in another pid namespace override.
  virtual bool serviceProcessAlive(int pid);
  // Why the driver cannot run here (its engine or runtime is missing): the suite is skipped
  // with this reason. Empty: it can.
  virtual std::string unavailable() const { return ""; }
  // Called after each test: stop and destroy whatever the test left, remove temp state.
  virtual void tearDown() {}
};

using DriverHarnessFactory = std::function<std::unique_ptr<DriverHarness>()>;

// Test-name generator for INSTANTIATE_TEST_SUITE_P: the harness's name().
std::string driverHarnessName(const ::testing::TestParamInfo<DriverHarnessFactory>& info);

class DriverConformanceTest : public ::testing::TestWithParam<DriverHarnessFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Polls the task's log `file` (stdout.log / stderr.log) until it contains `needle` or
  // `timeout` passes (real I/O from another process: polling is the only way to observe it).
  bool waitForLog(const TaskConfig& task, const std::string& file, const std::string& needle,
                  Duration timeout = Duration(10'000));
  static std::string readLog(const TaskConfig& task, const std::string& file);
  // A free TCP port on 127.0.0.1 (bound to 0, then released).
  static int freePort();

  std::unique_ptr<DriverHarness> harness_;
  std::unique_ptr<Driver> driver_;
};

}  // namespace baton::drivers::testing
