// The docker driver (DESIGN.md §1 `image = ...`): runs an instance as a container through the
// Docker Engine HTTP API on a unix socket (Docker's, or Podman's `podman system service`).
//
// A task is a container named "baton-<instance id>" with labels that tie it to its instance
// and to this agent (docker_protocol.h), the manifest's memory, CPU and pids limits, no new
// privileges, a read-only root and an unprivileged user by default.
//
// Its network, with `networks` (an isolated node, docs/mesh.md): the container is created with
// NetworkMode "none" (its own network namespace with only `lo`) and no published port; once it
// runs, the driver names its main process's namespace <netns_prefix><instance id> (`ip netns
// attach`) and gives it the same veth pair, addresses and routes as an exec or oci instance
// (InstanceNetworks::attach). The node reaches it at the pair's instance address and the port it
// listens on; /etc/resolv.conf is `resolv_conf` (the mesh's DNS), bind-mounted read-only from
// the task dir. The service starts before `eth0` exists (the engine starts it; the driver can
// only attach a namespace that exists): a service that binds 0.0.0.0 (as it must, docs/mesh.md)
// is reachable once start() returns; one that binds its eth0 address, or calls out, in its
// first milliseconds may find neither yet. Without `networks` (`[node] network = "host"`): the
// engine's default network, the port published on 127.0.0.1 for the gateway.
//
// One follower thread per running container copies its multiplexed log stream into the
// instance's stdout.log / stderr.log (rotated) and, when the stream ends, records the exit
// status (an OOM kill seen by OomWatch when the engine misses it); a cursor file in the task dir
// lets the follower of a restarted agent go on where the last one stopped. Containers outlive
// the agent: recover() finds them by label, and an isolated one's network by its namespace's
// name (a running container whose namespace is gone is killed, with an error in the log, and
// reported ended: the node starts a new one, rather than be told an address that leads
// nowhere). Pulls run in the background (prepare()).
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
#include "drivers/instance_net.h"
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
  // Networks of their own: namespaces <netns_prefix><instance id>, made by `networks` (shared
  // with the other drivers so that they never pick the same address; not owned). Null: the
  // engine's default network, the port published on 127.0.0.1.
  InstanceNetworks* networks = nullptr;
  std::string netns_prefix = "baton-";
  // /etc/resolv.conf inside isolated containers (the mesh's DNS); "" = the engine's.
  std::string resolv_conf;
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
  // Creates and starts the container (pulling first if the image is missing) and, with
  // `networks`, attaches its network. A program the image lacks: run[0] "x": no such file or
  // directory in image IMG. The status's address is 127.0.0.1 and port config.port (published),
  // or, isolated, the instance end of its veth pair and the container port.
  Result<TaskStatus> start(const TaskConfig& config) override;
  // SIGTERM to the container's main process, up to `grace`, then SIGKILL (the whole pid
  // namespace dies with it). Unknown or ended id: ok.
  Status stop(const std::string& instance_id, Duration grace) override;
  Status signal(const std::string& instance_id, int signal) override;
  Result<TaskStatus> inspect(const std::string& instance_id) override;
  Result<ExitStatus> wait(const std::string& instance_id, Duration timeout) override;
  // Removes the container (forcibly), its network namespace and the task dir; the logs stay.
  Status destroy(const std::string& instance_id) override;
  Result<std::vector<TaskStatus>> recover() override;
  Result<TaskStats> stats(const std::string& instance_id) override;

  // "baton-<instance id>".
  static std::string containerName(const std::string& instance_id);
  // <netns_prefix><instance id>.
  std::string netnsName(const std::string& instance_id) const;

 private:
  struct Task;
  struct Pull;

  std::shared_ptr<Task> find(const std::string& id);
  void follow(std::shared_ptr<Task> task);
  void startFollower(const std::shared_ptr<Task>& task);
  // Takes a container of ours that the engine has into tasks_ (and follows it). `link`: the
  // network of a container made with one (kLabelNetns) as found now; nullopt when there is
  // none (then a running one is killed and reported ended: see the comment at the top).
  TaskStatus adopt(const std::string& id, const docker::ContainerState& state,
                   const std::optional<InstanceLink>& link);
  // Names the network namespace of a container that runs as `state` and gives it its link.
  Result<InstanceLink> attachNetwork(const std::string& id, const docker::ContainerState& state);
  // Whether the engine says the container is no longer running.
  bool endedMeanwhile(const std::string& container);
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
