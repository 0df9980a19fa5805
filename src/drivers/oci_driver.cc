#include "drivers/oci_driver.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "drivers/cgroup.h"
#include "drivers/exec_internal.h"
#include "drivers/oci_bundle.h"

namespace baton::drivers {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kOciFile = "oci.json";
constexpr const char* kRuntimeConfig = "config.json";
constexpr Duration kKillWait = Duration(10'000);  // runc kill KILL -> `runc run` has exited
constexpr const char* kRuncPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool validId(const std::string& id) { return exec::validTaskId(id); }

std::string lookPath(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":" + kRuncPath;
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t colon = dirs.find(':', start);
    if (colon == std::string::npos) colon = dirs.size();
    std::string dir = dirs.substr(start, colon - start);
    if (!dir.empty() && ::access((dir + "/" + program).c_str(), X_OK) == 0) {
      return dir + "/" + program;
    }
    start = colon + 1;
  }
  return program;
}

// What the driver keeps per instance besides the bundle (oci.json).
struct OciRecord {
  std::string image;
  std::string netns;
  std::string address;
  int port = 0;
  int container_pid = 0;  // the container's init, as the host sees it
};

std::string encodeRecord(const OciRecord& r) {
  return json{{"image", r.image},
              {"netns", r.netns},
              {"address", r.address},
              {"port", r.port},
              {"container_pid", r.container_pid}}
      .dump();
}

std::optional<OciRecord> loadRecord(const fs::path& file) {
  auto text = exec::readWholeFile(file);
  if (!text) return std::nullopt;
  try {
    json j = json::parse(*text);
    OciRecord r;
    r.image = j.value("image", "");
    r.netns = j.value("netns", "");
    r.address = j.value("address", "");
    r.port = j.value("port", 0);
    r.container_pid = j.value("container_pid", 0);
    return r;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

// runc reports a container killed by signal N as exit code 128 + N (as docker does); the
// task's ExitStatus says which signal it was.
ExitStatus translateExit(ExitStatus e) {
  if (!e.signal && e.exit_code > 128 && e.exit_code <= 128 + 64) e.signal = e.exit_code - 128;
  return e;
}

constexpr const char* kRuncLog = "runc.log";
constexpr const char* kPidFile = "container.pid";  // runc --pid-file

// runc's own error from its log (`--log-format json`: one {"level":..,"msg":..} per line), ""
// when it logged none: then the container did run (and may have ended at once).
std::string runcError(const fs::path& log) {
  auto text = exec::readWholeFile(log);
  if (!text) return "";
  std::string error;
  size_t start = 0;
  while (start < text->size()) {
    size_t nl = text->find('\n', start);
    if (nl == std::string::npos) nl = text->size();
    try {
      json j = json::parse(text->substr(start, nl - start));
      if (j.value("level", "") == "error" || j.value("level", "") == "fatal") {
        error = j.value("msg", "");
      }
    } catch (const json::exception&) {
    }
    start = nl + 1;
  }
  return error;
}

// `${` in a path becomes `$${`, so the exec driver's ${VAR} expansion leaves it alone.
std::string escapeVars(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') out += '$';
    out += s[i];
  }
  return out;
}

ExecDriverOptions execOptions(const OciDriverOptions& o) {
  ExecDriverOptions e;
  e.state_dir = o.state_dir / "tasks";
  e.supervisor_argv = o.supervisor_argv;
  e.cgroup_root = o.cgroup_parent + "-runc";
  e.start_timeout = o.start_timeout;
  e.poll_interval = o.poll_interval;
  return e;
}

}  // namespace

OciDriver::OciDriver(OciDriverOptions options, Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      runc_root_(options_.state_dir / "runc"),
      exec_(execOptions(options_), clock),
      nets_(options_.networks != nullptr ? *options_.networks : own_nets_),
      images_(options_.image_dir.empty() ? options_.state_dir / "images" : options_.image_dir,
              options_.os, options_.arch) {
  options_.runc = lookPath(options_.runc);
  std::error_code ec;
  fs::create_directories(options_.state_dir / "bundles", ec);
  fs::create_directories(runc_root_, ec);
}

OciDriver::~OciDriver() = default;

fs::path OciDriver::bundleDir(const std::string& id) const {
  return options_.state_dir / "bundles" / id;
}

std::string OciDriver::netnsName(const std::string& id) const { return options_.netns_prefix + id; }

Result<Preparation> OciDriver::prepare(const model::ServiceSpec& spec) {
  if (spec.image.empty()) return invalidArgument("service \"" + spec.name + "\": image is empty");
  return images_.prepare(spec.image);
}

Status OciDriver::runc(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {options_.runc, "--root", runc_root_.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto out = runCommand(argv, Duration(30'000));
  return out ? Status::ok() : out.status();
}

void OciDriver::forceDelete(const std::string& id) {
  std::error_code ec;
  if (!fs::exists(runc_root_ / id, ec)) return;  // runc run cleaned up after itself
  Status s = runc({"delete", "--force", id});
  if (!s && fs::exists(runc_root_ / id, ec)) {
    // Nothing of it runs any more (the caller made sure); runc only lost track of it.
    fs::remove_all(runc_root_ / id, ec);
    TaskCgroup::paths(options_.cgroup_parent, id).remove();
  }
}

Result<TaskStatus> OciDriver::start(const TaskConfig& config) {
  if (!validId(config.instance_id)) {
    return invalidArgument("instance id \"" + config.instance_id +
                           "\" is not filesystem-safe ([A-Za-z0-9._-])");
  }
  if (config.spec.image.empty()) {
    return invalidArgument("service \"" + config.spec.name + "\": image is empty");
  }
  if (options_.runc.find('/') == std::string::npos) {
    return Status(Code::kFailedPrecondition, "oci driver: runc is not installed (not in PATH)");
  }
  return starting_.run(config.instance_id, [&] { return startLocked(config); });
}

Result<TaskStatus> OciDriver::startLocked(const TaskConfig& config) {
  const std::string& id = config.instance_id;
  if (auto st = exec_.inspect(id); st && !st->exit) {
    return Status(Code::kAlreadyExists, "task \"" + id + "\" is running");
  }
  auto image = images_.get(config.spec.image);
  if (!image) return image.status();

  // Everything that can be refused is decided before anything is made.
  std::map<std::string, std::string> env = oci::mergeEnv(image->config.env, config.env);
  auto args = oci::processArgs(config.spec, image->config, env);
  if (!args) return args.status();
  std::string cwd = image->config.working_dir.empty() ? "/" : image->config.working_dir;
  if (auto found = oci::findProgram(image->rootfs, (*args)[0], env, cwd); !found) {
    std::string what = config.spec.run.empty() ? "the image's entrypoint" : "run[0]";
    return Status(Code::kFailedPrecondition, what + " \"" + (*args)[0] +
                                                 "\": no such file or directory (in image " +
                                                 config.spec.image + ")");
  }
  auto user =
      oci::chooseUser(config, image->config, oci::readImageFile(image->rootfs, "/etc/passwd"),
                      oci::readImageFile(image->rootfs, "/etc/group"));
  if (!user)
    return Status(user.status().code(),
                  "image " + config.spec.image + ": " + user.status().message());

  // Made in this order so that destroy() finds whatever a crash half-way left: the bundle dir
  // first (destroy's sign that there is something to clean), then the network.
  fs::path bundle = bundleDir(id);
  std::error_code ec;
  fs::create_directories(bundle, ec);
  if (ec) return ioError("cannot create " + bundle.string() + ": " + ec.message());
  OciRecord record;
  record.image = config.spec.image;
  record.netns = netnsName(id);
  record.port = config.container_port > 0 ? config.container_port : config.port;
  if (Status s = exec::writeFileAtomic(bundle / kOciFile, encodeRecord(record)); !s) return s;
  auto link = nets_.create(record.netns);
  if (!link) return link.status();
  record.address = link->instance_ip;
  if (Status s = exec::writeFileAtomic(bundle / kOciFile, encodeRecord(record)); !s) return s;

  oci::BundleSpec spec;
  spec.hostname = id.substr(0, 63);
  spec.rootfs = image->rootfs;
  spec.args = std::move(args.value());
  spec.env = oci::envList(env);
  spec.cwd = cwd;
  spec.uid = user->uid;
  spec.gid = user->gid;
  spec.additional_gids = user->additional_gids;
  spec.netns_path = link->netnsPath();
  spec.secrets_dir = config.secrets_dir.string();
  if (!options_.resolv_conf.empty()) {
    spec.resolv_conf = (bundle / "resolv.conf").string();
    // Readable by the container's user alone (a bind mount: only the file's own mode counts).
    const std::string path = (bundle / "resolv.conf").string();
    if (Status s = exec::writeFileAtomic(path, options_.resolv_conf); !s) return s;
    if (::chown(path.c_str(), static_cast<uid_t>(user->uid), static_cast<gid_t>(user->gid)) != 0) {
      return ioError("chown " + path + ": " + exec::errnoText(errno));
    }
    std::error_code pec;
    std::filesystem::permissions(path, std::filesystem::perms(0400), pec);
  }
  spec.cgroups_path = "/" + options_.cgroup_parent + "/" + id;
  spec.memory_bytes = config.spec.memory;
  spec.cpu_cores = config.spec.cpu;
  spec.cpu_limit_cores = config.spec.cpu_limit;
  spec.pids_max = config.pids_max;
  spec.nofile = options_.child_nofile > 0 ? options_.child_nofile : oci::kDefaultNofile;
  if (Status s = exec::writeFileAtomic(bundle / kRuntimeConfig, oci::runtimeConfig(spec)); !s) {
    return s;
  }
  forceDelete(id);  // a container of an earlier run of this id that runc still knows

  // `runc run --detach` is the supervised "service": it starts the container and exits,
  // leaving the container's init (which keeps runc's stdout and stderr, the supervisor's log
  // pipes) re-parented to the supervisor, which adopts it by its pid file and reports its exit
  // status. A foreground `runc run` would stay beside every container (3.3 MiB PSS each,
  // BENCHMARKS.md "Containers").
  TaskConfig inner;
  inner.instance_id = id;
  inner.spec.name = config.spec.name;
  fs::remove(bundle / kRuncLog, ec);
  inner.spec.run = {escapeVars(options_.runc),
                    "--root",
                    escapeVars(runc_root_.string()),
                    "--log",
                    escapeVars((bundle / kRuncLog).string()),
                    "--log-format",
                    "json",
                    "run",
                    "--detach",
                    "--pid-file",
                    escapeVars((bundle / kPidFile).string()),
                    "--bundle",
                    escapeVars(bundle.string()),
                    id};
  fs::remove(bundle / kPidFile, ec);
  inner.adopt_pid_file = bundle / kPidFile;
  inner.spec.cpu = 0;
  inner.spec.memory = 0;
  inner.env = {{"PATH", kRuncPath}};
  inner.port = config.port;
  inner.task_dir = bundle;
  inner.log_dir = config.log_dir;
  inner.log_max_bytes = config.log_max_bytes;
  inner.log_max_files = config.log_max_files;
  auto started = exec_.start(inner);
  if (!started) return started.status();
  return waitRunning(config);
}

// `runc run` has been exec'd; the container runs once runc's state names its init process and
// the exec fifo is gone (that is when runc considers it "running").
Result<TaskStatus> OciDriver::waitRunning(const TaskConfig& config) {
  const std::string& id = config.instance_id;
  fs::path state_file = runc_root_ / id / "state.json";
  fs::path fifo = runc_root_ / id / "exec.fifo";
  SteadyPoint deadline = clock_.steadyNow() + options_.start_timeout;
  while (true) {
    int pid = 0;
    if (auto text = exec::readWholeFile(state_file)) {
      try {
        pid = json::parse(*text).value("init_process_pid", 0);
      } catch (const json::exception&) {
        pid = 0;  // being written
      }
    }
    std::error_code ec;
    if (pid > 0 && !fs::exists(fifo, ec)) {
      fs::path file = bundleDir(id) / kOciFile;
      OciRecord record = loadRecord(file).value_or(OciRecord{});
      record.container_pid = pid;
      if (Status s = exec::writeFileAtomic(file, encodeRecord(record)); !s) return s;
      (void)oom_.watch(id, pid);  // without it an OOM kill is only "killed by signal 9"
      return inspect(id);
    }
    auto st = exec_.inspect(id);
    if (st && st->exit) {
      std::string why = runcError(bundleDir(id) / kRuncLog);
      if (why.empty()) return inspect(id);  // it ran, and ended before we looked
      return Status(Code::kFailedPrecondition, "runc could not start the container: " + why);
    }
    if (clock_.steadyNow() >= deadline) {
      (void)stop(id, Duration(0));
      return unavailable("container \"" + id + "\" did not start within " +
                         std::to_string(options_.start_timeout.count()) + "ms");
    }
    std::this_thread::sleep_for(options_.poll_interval);
  }
}

TaskStatus OciDriver::withOciFields(TaskStatus status) {
  if (auto record = loadRecord(bundleDir(status.instance_id) / kOciFile)) {
    if (record->container_pid > 0) status.pid = record->container_pid;
    status.address = record->address;
    status.port = record->port;
  }
  if (status.exit) status.exit = withOom(status.instance_id, translateExit(*status.exit));
  return status;
}

ExitStatus OciDriver::withOom(const std::string& id, ExitStatus e) {
  if (e.oom_killed || e.signal != SIGKILL) return e;
  // The kernel's OOM notification and the exit race: give the watcher a moment.
  for (int i = 0; i < 10 && !oom_.oomKilled(id); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  e.oom_killed = oom_.oomKilled(id);
  return e;
}

Result<TaskStatus> OciDriver::inspect(const std::string& id) {
  auto st = exec_.inspect(id);
  if (!st) return st.status();
  return withOciFields(std::move(st.value()));
}

Result<ExitStatus> OciDriver::wait(const std::string& id, Duration timeout) {
  auto e = exec_.wait(id, timeout);
  if (!e) return e.status();
  return withOom(id, translateExit(*e));
}

Status OciDriver::signal(const std::string& id, int sig) {
  if (!validId(id)) return Status(Code::kNotFound, "no task " + id);
  auto st = exec_.inspect(id);
  if (!st) return st.status();
  if (st->exit) return Status(Code::kFailedPrecondition, "task " + id + " is not running");
  // runc takes the number as well as the name.
  return runc({"kill", id, std::to_string(sig)});
}

Status OciDriver::stop(const std::string& id, Duration grace) {
  if (!validId(id)) return Status::ok();
  auto st = exec_.inspect(id);
  if (!st) return Status::ok();  // unknown
  if (!st->exit) {
    // TERM to the container's init (as `docker stop`): an init without a handler for it (pid 1
    // ignores default-action signals) waits for the KILL.
    (void)runc({"kill", id, "TERM"});
    auto ended = exec_.wait(id, grace);
    if (!ended && ended.status().code() == Code::kTimeout) {
      (void)runc({"kill", "--all", id, "KILL"});
      (void)exec_.wait(id, kKillWait);
    }
  }
  // Makes sure `runc run` and its supervisor are gone (SIGKILL if runc itself hangs; the
  // supervisor kills whatever it adopted), then that runc forgets the container, killing what
  // might be left of it and removing its cgroup.
  Status s = exec_.stop(id, Duration(0));
  forceDelete(id);
  return s;
}

Status OciDriver::destroy(const std::string& id) {
  if (!validId(id)) return Status::ok();
  std::error_code ec;
  bool known = exec_.inspect(id).isOk() || fs::exists(bundleDir(id), ec);
  if (!known) return Status::ok();
  if (Status s = stop(id, Duration(0)); !s) return s;
  if (Status s = exec_.destroy(id); !s) return s;
  if (Status s = nets_.remove(netnsName(id)); !s) return s;
  oom_.forget(id);
  fs::remove_all(bundleDir(id), ec);
  if (ec) return ioError("cannot remove " + bundleDir(id).string() + ": " + ec.message());
  return Status::ok();
}

Result<std::vector<TaskStatus>> OciDriver::recover() {
  auto tasks = exec_.recover();
  if (!tasks) return tasks.status();
  std::vector<TaskStatus> out;
  for (auto& t : *tasks) {
    TaskStatus st = withOciFields(std::move(t));
    if (!st.exit && st.pid > 0) (void)oom_.watch(st.instance_id, st.pid);
    out.push_back(std::move(st));
  }
  return out;
}

Result<TaskStats> OciDriver::stats(const std::string& id) {
  auto st = inspect(id);
  if (!st) return st.status();
  TaskStats out;
  if (st->exit) return out;
  TaskCgroup cgroup = TaskCgroup::paths(options_.cgroup_parent, id);
  if (!cgroup.valid()) return out;
  CgroupUsage u = cgroup.usage();
  out.memory_bytes = u.memory_bytes;
  out.cpu_usage_ns = u.cpu_usage_ns;
  out.processes = u.processes;
  out.throttled_periods = u.throttled_periods;
  return out;
}

}  // namespace baton::drivers
