// A Docker Engine API for tests: `podman system service` on a socket of its own (runc,
// cgroupfs: what this host supports), started once per test binary and stopped at its end,
// with the busybox test image built offline (tests/images/busybox-image.sh). When
// BATON_DOCKER_SOCKET is set, that engine is used instead and nothing is started.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace baton::drivers::testing {

struct EngineForTests {
  std::filesystem::path socket;
  std::string image;  // the busybox test image
};

// The engine, started on first use; nullopt (with `why`) when podman is missing or does not
// come up. Thread-compatible: call from the test thread.
std::optional<EngineForTests> engineForTests(std::string* why);

}  // namespace baton::drivers::testing
