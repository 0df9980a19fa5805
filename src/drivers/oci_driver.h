// The oci driver (`driver = "oci"`): runs a service from an OCI image with runc, on hosts that
// have runc but no container engine. See README.md "oci driver".
//
//   prepare(spec)  unpacks the image once per manifest digest into a shared read-only rootfs
//                  (oci_image_store.h), on a thread of its own
//   start(config)  checks the program exists in the image, makes the instance's network
//                  namespace (instance_net.h), writes the runtime bundle (oci_bundle.h) and runs
//                  `runc run --detach` under the exec driver's per-instance supervisor, which
//                  adopts the container's init from runc's pid file: logs, exit status and
//                  recovery after an agent restart are the exec driver's
//   stop           `runc kill TERM`, the grace, then `runc kill --all KILL`; `runc delete
//                  --force` makes sure nothing is left
//
// Layout under state_dir: tasks/<id>/ (the exec driver's task dir for `runc run`),
// bundles/<id>/ (config.json for runc, oci.json: the instance's network and container pid),
// runc/ (runc's own state), images/ (the image cache, unless image_dir says otherwise).
//
// Thread safety: all methods may be called concurrently (start of one id is serialized).
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "drivers/driver.h"
#include "drivers/exec_driver.h"
#include "drivers/exec_internal.h"
#include "drivers/instance_net.h"
#include "drivers/oci_image_store.h"
#include "drivers/oom_watch.h"

namespace baton::drivers {

struct OciDriverOptions {
  std::filesystem::path state_dir;  // created if missing
  std::filesystem::path image_dir;  // the image cache; default <state_dir>/images
  // How to run the exec driver's supervisor (ExecDriverOptions::supervisor_argv).
  std::vector<std::string> supervisor_argv;
  // runc's path; a bare name is looked up in PATH when the driver is made.
  std::string runc = "runc";
  // Containers' cgroups are /<cgroup_parent>/<instance id> (runc's cgroupsPath); the `runc run`
  // processes' own (made by the supervisor) are <cgroup_parent>-runc/<instance id>.
  std::string cgroup_parent = "baton-oci";
  // Network namespaces are <netns_prefix><instance id>, made by `networks` (shared with the
  // other drivers so that they never pick the same address; not owned) or, when null, by the
  // driver's own.
  std::string netns_prefix = "baton-";
  InstanceNetworks* networks = nullptr;
  // /etc/resolv.conf inside containers (the mesh's DNS); "" = the image's own.
  std::string resolv_conf;
  // RLIMIT_NOFILE inside containers (soft = hard): the agent passes the soft limit it inherited;
  // 0: oci::kDefaultNofile.
  uint64_t child_nofile = 0;
  Duration start_timeout = Duration(10'000);
  Duration poll_interval = Duration(10);
  std::string os = "linux";
  std::string arch = oci::hostArchitecture();
};

class OciDriver final : public Driver {
 public:
  explicit OciDriver(OciDriverOptions options, Clock& clock = SystemClock::instance());
  ~OciDriver() override;

  std::string name() const override { return "oci"; }
  // Unpacks spec.image in the background: "unpacking image X: layer 1 of 3 (2.1 MB)".
  Result<Preparation> prepare(const model::ServiceSpec& spec) override;
  bool ownNetwork() const override { return true; }
  // A manifest's `user` names a user of the image (its /etc/passwd), when the node gives no uid.
  bool imageUsers() const override { return true; }

  // The image is unpacked first if prepare() did not (blocking). Errors before anything runs:
  // run[0] "x": no such file or directory (in image ...), an unknown ${VAR}, a bad image. The
  // status's address is the instance end of its veth pair, port the container port.
  Result<TaskStatus> start(const TaskConfig& config) override;
  Status stop(const std::string& instance_id, Duration grace) override;
  Status signal(const std::string& instance_id, int signal) override;
  Result<TaskStatus> inspect(const std::string& instance_id) override;
  Result<ExitStatus> wait(const std::string& instance_id, Duration timeout) override;
  // Stops the task, then removes its network namespace, bundle and task dir (logs stay unless
  // they are in the task dir).
  Status destroy(const std::string& instance_id) override;
  Result<std::vector<TaskStatus>> recover() override;
  // From the container's cgroup.
  Result<TaskStats> stats(const std::string& instance_id) override;

  std::filesystem::path bundleDir(const std::string& instance_id) const;
  std::string netnsName(const std::string& instance_id) const;

 private:
  Result<TaskStatus> startLocked(const TaskConfig& config);
  Result<TaskStatus> waitRunning(const TaskConfig& config);
  TaskStatus withOciFields(TaskStatus status);
  Status runc(const std::vector<std::string>& args);
  void forceDelete(const std::string& instance_id);
  ExitStatus withOom(const std::string& instance_id, ExitStatus e);

  OciDriverOptions options_;
  Clock& clock_;
  std::filesystem::path runc_root_;
  ExecDriver exec_;
  InstanceNetworks own_nets_;
  InstanceNetworks& nets_;
  oci::ImageStore images_;
  exec::StartingIds starting_;
  OomWatch oom_;  // runc reports an OOM kill as a plain SIGKILL
};

}  // namespace baton::drivers
