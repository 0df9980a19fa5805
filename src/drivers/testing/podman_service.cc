#include "drivers/testing/podman_service.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "drivers/docker_engine.h"

namespace baton::drivers::testing {
namespace {

constexpr const char* kImage = "localhost/baton/busybox:4";

struct Service {
  pid_t pid = -1;
  std::filesystem::path dir;
  ~Service() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

bool answers(const std::filesystem::path& socket) {
  docker::EngineClient client({.socket = socket, .timeout = Duration(2000)});
  auto r = client.request("GET", "/_ping");
  return r && r->status == 200;
}

}  // namespace

std::optional<EngineForTests> engineForTests(std::string* why) {
  static Service service;
  static std::optional<EngineForTests> engine;
  static std::string failure;
  static bool tried = false;
  if (tried) {
    if (!engine && why) *why = failure;
    return engine;
  }
  tried = true;
  std::string repo = BATON_SOURCE_DIR;
  if (std::system(("bash " + repo + "/tests/images/busybox-image.sh >/dev/null").c_str()) != 0) {
    failure = "podman or busybox-static is missing: tests/images/busybox-image.sh failed";
    if (why) *why = failure;
    return std::nullopt;
  }
  if (const char* s = std::getenv("BATON_DOCKER_SOCKET"); s && *s) {
    engine = EngineForTests{s, kImage};
    return engine;
  }
  char tmpl[] = "/tmp/baton-podman-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    failure = "mkdtemp failed";
    if (why) *why = failure;
    return std::nullopt;
  }
  service.dir = tmpl;
  std::filesystem::path socket = service.dir / "podman.sock";
  std::string uri = "unix://" + socket.string();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    std::string log = (service.dir / "podman.log").string();
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    ::execlp("podman", "podman", "--runtime=runc", "--cgroup-manager=cgroupfs", "system",
             "service", "--time=0", uri.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  service.pid = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (answers(socket)) {
      engine = EngineForTests{socket, kImage};
      return engine;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      service.pid = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  failure = "podman system service did not answer on " + socket.string();
  if (why) *why = failure;
  return std::nullopt;
}

}  // namespace baton::drivers::testing
