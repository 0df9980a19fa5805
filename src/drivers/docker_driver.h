// The docker driver (DESIGN.md §1 `image = ...`): runs an instance as a container through the
// Docker Engine HTTP API on a unix socket (Docker's, or Podman's `podman system service`).
//
// A task is a container named "baton-<instance id>" with labels that tie it to its instance
// and to this agent (docker_protocol.h), its port published on 127.0.0.1 for the gateway, the
// manifest's memory, CPU and pids limits, no new privileges, a read-only root and an
// unprivileged user by default. One follower thread per running container copies its
// multiplexed log stream into the instance's stdout.log / stderr.log (rotated) and, when the
// stream ends, records the exit status (an OOM kill seen by OomWatch when the engine misses it); a cursor file in the task dir lets the follower of a
// restarted agent go on where the last one stopped. Containers outlive the agent: recover()
// finds them by label. Pulls run in the background (prepare()).
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "drivers/docker_engine.h"
#include "drivers/driver.h"
#include "drivers/oom_watch.h"

namespace baton::drivers {
namespace docker {
struct ContainerState;
}

struct DockerDriverOptions {
  docker::EngineOptions engine;
  std::filesystem::path state_dir;  // <data_dir>/docker: a dir per task (the log cursor)
  std::string owner;                // this agent's id: a label on every container it creates
  uint64_t child_nofile = 1024;     // RLIMIT_NOFILE inside containers (the host's soft limit)
  Duration poll_interval = Duration(20);
};

class DockerDriver final : public Driver {
 public:
  explicit DockerDriver(DockerDriverOptions options);
  ~DockerDriver() override;  // ends the followers; containers keep running

  std::string name() const override { return "docker"; }
  bool ownNetwork() const override { return true; }
  bool imageUsers() const override { return true; }

  // Ready when the engine has the image; otherwise starts one pull per image in the
  // background and reports its progress; a failed pull is reported once.
  Result<Preparation> prepare(const model::ServiceSpec& spec) override;
  // Creates and starts the container (pulling first if the image is missing). A program the
  // image lacks: run[0] "x": no such file or directory in image IMG.
  Result<TaskStatus> start(const TaskConfig& config) override;
  // SIGTERM to the container's main process, up to `grace`, then SIGKILL (the whole pid
  // namespace dies with it). Unknown or ended id: ok.
  Status stop(const std::string& instance_id, Duration grace) override;
  Result<TaskStatus> inspect(const std::string& instance_id) override;
  Result<ExitStatus> wait(const std::string& instance_id, Duration timeout) override;
  // Removes the container (forcibly) and the task dir; the logs stay.
  Status destroy(const std::string& instance_id) override;
  Result<std::vector<TaskStatus>> recover() override;
  Result<TaskStats> stats(const std::string& instance_id) override;

  // "baton-<instance id>".
  static std::string containerName(const std::string& instance_id);

 private:
  struct Task;
  struct Pull;

  std::shared_ptr<Task> find(const std::string& id);
  void follow(std::shared_ptr<Task> task);
  void startFollower(const std::shared_ptr<Task>& task);
  // Takes a container of ours that the engine has into tasks_ (and follows it).
  TaskStatus adopt(const std::string& id, const docker::ContainerState& state);
  ExitStatus exitOf(const std::string& id, const docker::ContainerState& state);
  Status pullNow(const std::string& image, Pull* progress);
  Result<bool> imagePresent(const std::string& image);
  Status removeContainer(const std::string& name_or_id);

  DockerDriverOptions options_;
  docker::EngineClient engine_;
  std::mutex mu_;
  std::condition_variable cv_;  // a task's exit was recorded
  std::map<std::string, std::shared_ptr<Task>> tasks_;
  std::map<std::string, std::shared_ptr<Pull>> pulls_;  // by image text
  std::map<std::string, bool> present_;                // images known to be on the engine
  bool closing_ = false;
  OomWatch oom_;  // the engine may not see OOM kills (OomWatch's comment says when)
};

}  // namespace baton::drivers
