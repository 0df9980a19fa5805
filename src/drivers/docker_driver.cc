#include "drivers/docker_driver.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/ascii.h"
#include "drivers/docker_protocol.h"
#include "drivers/exec_internal.h"

namespace baton::drivers {
namespace {

using docker::ContainerState;
using docker::EngineResponse;
using docker::LogDemuxer;
constexpr const char* kCursorFile = "log-cursor";

std::string urlEncode(std::string_view s) { return percentEncode(s); }

bool ok2xx(const EngineResponse& r) { return r.status >= 200 && r.status < 300; }

Status engineFailure(const std::string& what, const EngineResponse& r) {
  Code code = r.status == 404 ? Code::kNotFound
              : r.status == 409 ? Code::kConflict
              : r.status >= 500 ? Code::kUnavailable
                                : Code::kInvalidArgument;
  return Status(code, what + ": " + docker::engineMessage(r));
}

ExitStatus exitFrom(const ContainerState& c) {
  ExitStatus e;
  e.exit_code = c.exit_code;
  e.oom_killed = c.oom_killed;
  // The engine gives 128 + signal for a main process killed by a signal (and so does a shell
  // for its last command: the two cannot be told apart).
  if (c.exit_code > 128 && c.exit_code <= 128 + 64) e.signal = c.exit_code - 128;
  e.finished_at = c.finished_at.time_since_epoch().count() > 0 ? c.finished_at : SystemClock::instance().now();
  return e;
}

// The program the engine could not find, from its start error; empty when it is another error.
bool isMissingProgram(const std::string& message) {
  return message.find("executable file not found") != std::string::npos ||
         message.find("no such file or directory") != std::string::npos ||
         message.find("command was not found") != std::string::npos ||
         message.find("command not found") != std::string::npos;
}

// Whether `pid` is in this process's network namespace (the host's): an engine that ignored
// NetworkMode "none" would otherwise have the driver name, and configure, the host's network.
bool inHostNetwork(int pid) {
  struct stat mine = {};
  struct stat its = {};
  if (::stat("/proc/self/ns/net", &mine) != 0) return false;
  if (::stat(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), &its) != 0) return false;
  return mine.st_dev == its.st_dev && mine.st_ino == its.st_ino;
}

// The container's /etc/resolv.conf, readable by its user: owned by it, 0400, when the node
// chose the uid; else (a user named in the image, whose uid only the image knows) 0444: the file
// holds no secret, only the mesh's DNS address.
Status writeResolvConf(const std::filesystem::path& path, const std::string& text,
                       const TaskConfig& config) {
  if (Status s = exec::writeFileAtomic(path, text); !s) return s;
  std::filesystem::perms mode = std::filesystem::perms(0444);
  if (config.uid >= 0) {
    gid_t gid = static_cast<gid_t>(config.gid >= 0 ? config.gid : config.uid);
    if (::chown(path.c_str(), static_cast<uid_t>(config.uid), gid) != 0) {
      return ioError("chown " + path.string() + ": " + exec::errnoText(errno));
    }
    mode = std::filesystem::perms(0400);
  }
  std::error_code ec;
  std::filesystem::permissions(path, mode, ec);
  if (ec) return ioError("chmod " + path.string() + ": " + ec.message());
  return Status::ok();
}

std::string labelOf(const ContainerState& c, const char* key) {
  auto it = c.labels.find(key);
  return it == c.labels.end() ? std::string() : it->second;
}

}  // namespace

struct DockerDriver::Task {
  std::string id;
  std::string container;  // the engine's id
  std::string netns;      // its network namespace's name; empty on the engine's network
  std::filesystem::path task_dir;
  std::filesystem::path log_dir;
  uint64_t log_max_bytes = 10ull << 20;
  int log_max_files = 3;
  TaskStatus status;     // guarded by the driver's mu_
  bool follower_running = false;
  std::thread follower;
  docker::StreamHandle handle;
};

struct DockerDriver::Pull {
  std::string progress = "pulling";
  std::optional<std::string> error;
  bool done = false;
  std::thread thread;
  docker::StreamHandle handle;
};

DockerDriver::DockerDriver(DockerDriverOptions options)
    : options_(std::move(options)), engine_(options_.engine) {
  std::error_code ec;
  std::filesystem::create_directories(options_.state_dir, ec);
}

DockerDriver::~DockerDriver() {
  std::vector<std::shared_ptr<Task>> tasks;
  std::vector<std::shared_ptr<Pull>> pulls;
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    for (auto& [_, t] : tasks_) tasks.push_back(t);
    for (auto& [_, p] : pulls_) pulls.push_back(p);
  }
  for (auto& t : tasks) t->handle.cancel();
  for (auto& p : pulls) p->handle.cancel();
  for (auto& t : tasks) {
    if (t->follower.joinable()) t->follower.join();
  }
  for (auto& p : pulls) {
    if (p->thread.joinable()) p->thread.join();
  }
}

std::string DockerDriver::containerName(const std::string& instance_id) {
  return "baton-" + instance_id;
}

std::string DockerDriver::netnsName(const std::string& instance_id) const {
  return options_.netns_prefix + instance_id;
}

std::shared_ptr<DockerDriver::Task> DockerDriver::find(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : it->second;
}

Result<bool> DockerDriver::imagePresent(const std::string& image) {
  auto r = engine_.request("GET", "/images/" + urlEncode(image) + "/json");
  if (!r) return r.status();
  if (r->status == 404) return false;
  if (!ok2xx(*r)) return engineFailure("image " + image, *r);
  return true;
}

Status DockerDriver::pullNow(const std::string& image, Pull* pull) {
  auto ref = docker::parseImageRef(image);
  if (!ref) return ref.status();
  std::string target = "/images/create?fromImage=" + urlEncode(ref->name) +
                       (ref->digest.empty() ? "&tag=" + urlEncode(ref->tag)
                                            : "&tag=" + urlEncode(ref->digest));
  docker::PullProgress progress;
  auto r = engine_.stream(
      "POST", target, {},
      [&](std::string_view data) {
        progress.feed(data);
        if (pull) {
          std::lock_guard lock(mu_);
          pull->progress = "pulling image " + image + ": " + progress.summary();
        }
        return true;
      },
      Duration(5 * 60'000), pull ? &pull->handle : nullptr);
  progress.finish();
  if (!r) return Status(r.status().code(), "pulling image " + image + ": " + r.status().message());
  if (!ok2xx(*r)) return engineFailure("pulling image " + image, *r);
  if (progress.error()) {
    return Status(Code::kUnavailable, "pulling image " + image + ": " + *progress.error());
  }
  // Some engines end a failed pull without an error line: check that the image is there now.
  auto present = imagePresent(image);
  if (!present) return present.status();
  if (!*present) return Status(Code::kNotFound, "pulling image " + image + ": the engine did not get it");
  return Status::ok();
}

Result<Preparation> DockerDriver::prepare(const model::ServiceSpec& spec) {
  auto ref = docker::parseImageRef(spec.image);
  if (!ref) return ref.status();
  const std::string image = spec.image;
  std::shared_ptr<Pull> old;
  {
    std::lock_guard lock(mu_);
    if (present_.count(image)) return Preparation{};
    auto it = pulls_.find(image);
    if (it != pulls_.end()) {
      if (!it->second->done) return Preparation{false, it->second->progress};
      old = it->second;
      pulls_.erase(it);
    }
  }
  if (old) {
    if (old->thread.joinable()) old->thread.join();
    if (old->error) return Status(Code::kUnavailable, *old->error);
    std::lock_guard lock(mu_);
    present_[image] = true;
    return Preparation{};
  }
  auto present = imagePresent(image);
  if (!present) return present.status();
  std::lock_guard lock(mu_);
  if (*present) {
    present_[image] = true;
    return Preparation{};
  }
  if (closing_) return Status(Code::kUnavailable, "the driver is stopping");
  auto pull = std::make_shared<Pull>();
  pull->progress = "pulling image " + image;
  pulls_[image] = pull;
  pull->thread = std::thread([this, pull, image] {
    Status s = pullNow(image, pull.get());
    if (!s) spdlog::warn("docker: {}", s.message());
    std::lock_guard lock(mu_);
    if (!s) pull->error = s.message();
    pull->done = true;
  });
  return Preparation{false, pull->progress};
}

Status DockerDriver::removeContainer(const std::string& name_or_id) {
  auto r = engine_.request("DELETE", "/containers/" + urlEncode(name_or_id) + "?force=1&v=1");
  if (!r) return r.status();
  if (r->status == 404 || ok2xx(*r)) return Status::ok();
  return engineFailure("removing container " + name_or_id, *r);
}

Result<TaskStatus> DockerDriver::start(const TaskConfig& config) {
  const std::string& id = config.instance_id;
  if (auto old = find(id)) {
    {
      std::lock_guard lock(mu_);
      if (!old->status.exit) {
        return Status(Code::kAlreadyExists, "instance " + id + " is already running");
      }
    }
    Status s = destroy(id);  // an ended task of the same id is replaced
    if (!s) return s;
  }
  auto ref = docker::parseImageRef(config.spec.image);
  if (!ref) return ref.status();
  // prepare() has usually seen the image already: no second engine call for it (a create that
  // finds it gone answers 404, which forgets it).
  bool known;
  {
    std::lock_guard lock(mu_);
    known = present_.count(config.spec.image) > 0;
  }
  if (!known) {
    auto present = imagePresent(config.spec.image);
    if (!present) return present.status();
    if (!*present) {
      Status pulled = pullNow(config.spec.image, nullptr);
      if (!pulled) return pulled;
    }
  }
  docker::CreateOptions copts;
  copts.owner = options_.owner;
  copts.nofile = options_.child_nofile > 0 ? options_.child_nofile : 1024;
  copts.nproc = config.pids_max > 0 ? static_cast<uint64_t>(config.pids_max) : 4096;
  const std::filesystem::path task_dir = options_.state_dir / id;
  std::error_code ec;
  std::filesystem::create_directories(task_dir, ec);
  if (options_.networks) {
    copts.netns = netnsName(id);
    if (!options_.resolv_conf.empty()) {
      const std::filesystem::path path = task_dir / "resolv.conf";
      if (Status s = writeResolvConf(path, options_.resolv_conf, config); !s) return s;
      copts.resolv_conf_path = path.string();
    }
  }
  auto body = docker::createBody(config, copts);
  if (!body) return body.status();

  const std::string name = containerName(id);
  Result<EngineResponse> created = Status::ok();
  for (int attempt = 0; attempt < 2; ++attempt) {
    created = engine_.request("POST", "/containers/create?name=" + urlEncode(name), *body);
    if (!created) return created.status();
    // Docker answers a taken name with 409; Podman 4.3, at times, with 500 "... is already in use".
    bool name_taken = created->status == 409 ||
                      (created->status == 500 &&
                       docker::engineMessage(*created).find("already in use") != std::string::npos);
    if (!name_taken) break;
    // A container of that name exists: ours from a lost start reply, or a leftover.
    auto existing = engine_.request("GET", "/containers/" + urlEncode(name) + "/json");
    if (!existing) return existing.status();
    auto st = docker::parseInspect(existing->body);
    if (!st || st->labels[docker::kLabelInstance] != id ||
        st->labels[docker::kLabelOwner] != options_.owner) {
      return Status(Code::kAlreadyExists,
                    "a container named " + name + " exists and is not this agent's instance");
    }
    if (st->running) {
      // Ours and running (the engine was out of reach when recover() ran): adopt it, so that
      // inspect() finds it, as the node does after kAlreadyExists.
      if (st->id.empty()) st->id = name;
      std::optional<InstanceLink> link;
      if (std::string netns = labelOf(*st, docker::kLabelNetns);
          !netns.empty() && options_.networks) {
        auto found = options_.networks->find(netns);
        if (!found) return found.status();
        link = *found;
      }
      adopt(id, *st, link);
      return Status(Code::kAlreadyExists, "instance " + id + " is already running");
    }
    Status removed = removeContainer(name);
    if (!removed) return removed;
  }
  if (created->status == 404) {
    std::lock_guard lock(mu_);
    present_.erase(config.spec.image);
    return Status(Code::kNotFound, "image " + config.spec.image + " is not on this node's engine");
  }
  if (!ok2xx(*created)) return engineFailure("creating container " + name, *created);
  std::string container;
  try {
    container = nlohmann::json::parse(created->body).at("Id").get<std::string>();
  } catch (const nlohmann::json::exception&) {
    (void)removeContainer(name);
    return Status(Code::kInternal, "creating container " + name + ": no Id in the engine's answer");
  }

  auto started = engine_.request("POST", "/containers/" + container + "/start");
  if (!started || !(ok2xx(*started) || started->status == 304)) {
    std::string msg = started ? docker::engineMessage(*started) : started.status().message();
    (void)removeContainer(container);
    if (started && isMissingProgram(msg)) {
      std::string program = config.spec.run.empty() ? "the image's command" : config.spec.run[0];
      return Status(Code::kNotFound, "run[0] \"" + program +
                                         "\": no such file or directory in image " +
                                         config.spec.image);
    }
    return Status(started ? Code::kUnavailable : started.status().code(),
                  "starting container " + name + ": " + msg);
  }
  auto inspected = engine_.request("GET", "/containers/" + container + "/json");
  Result<ContainerState> state = inspected ? docker::parseInspect(inspected->body)
                                           : Result<ContainerState>(inspected.status());
  std::optional<InstanceLink> link;
  if (options_.networks && !(state && !state->running)) {
    // (A container that has already ended needs no network: the follower records its exit.)
    auto attached = state ? attachNetwork(id, *state) : Result<InstanceLink>(state.status());
    if (attached) {
      link = *attached;
    } else if (endedMeanwhile(container)) {
      // Its process was gone before its namespace could be named: an ended task, as above.
      (void)options_.networks->remove(copts.netns);
    } else {
      (void)removeContainer(container);
      (void)options_.networks->remove(copts.netns);
      return Status(attached.status().code(),
                    "network of container " + name + ": " + attached.status().message());
    }
  }
  auto task = std::make_shared<Task>();
  task->id = id;
  task->container = container;
  task->netns = copts.netns;
  task->task_dir = task_dir;
  task->log_dir = config.log_dir.empty() ? task->task_dir / "logs" : config.log_dir;
  task->log_max_bytes = config.log_max_bytes;
  task->log_max_files = config.log_max_files;
  std::filesystem::create_directories(task->log_dir, ec);
  std::filesystem::remove(task->task_dir / kCursorFile, ec);  // a new container's logs
  task->status.instance_id = id;
  task->status.pid = state ? state->pid : 0;
  task->status.started_at = state && state->started_at.time_since_epoch().count() > 0
                                ? state->started_at
                                : SystemClock::instance().now();
  if (options_.networks) {
    task->status.address = link ? link->instance_ip : std::string();
    task->status.port = config.container_port > 0 ? config.container_port : config.port;
  } else {
    task->status.address = "127.0.0.1";
    task->status.port = config.port;
  }
  TaskStatus result = task->status;
  if (task->status.pid > 0) {
    if (Status w = oom_.watch(id, task->status.pid); !w) {
      spdlog::debug("docker: {}: OOM kills will not be recognised: {}", id, w.message());
    }
  }
  {
    std::lock_guard lock(mu_);
    tasks_[id] = task;
  }
  startFollower(task);
  return result;
}

bool DockerDriver::endedMeanwhile(const std::string& container) {
  auto inspected = engine_.request("GET", "/containers/" + container + "/json");
  if (!inspected || !ok2xx(*inspected)) return false;
  auto state = docker::parseInspect(inspected->body);
  return state && !state->running;
}

Result<InstanceLink> DockerDriver::attachNetwork(const std::string& id,
                                                 const ContainerState& state) {
  if (state.pid <= 0) {
    return Status(Code::kUnavailable, "the engine reports no process for the running container");
  }
  if (inHostNetwork(state.pid)) {
    return Status(Code::kFailedPrecondition,
                  "the container's process " + std::to_string(state.pid) +
                      " is in the host's network namespace, not one of its own "
                      "(the engine ignored NetworkMode \"none\")");
  }
  return options_.networks->attach(netnsName(id), state.pid);
}

void DockerDriver::startFollower(const std::shared_ptr<Task>& task) {
  std::lock_guard lock(mu_);
  if (closing_ || task->follower_running) return;
  if (task->follower.joinable()) task->follower.join();  // it ended by itself before
  task->follower_running = true;
  task->follower = std::thread([this, task] { follow(task); });
}

// A log stream quiet this long ends, and the follower asks the engine whether the container
// still runs: an engine that keeps a stream open after its container exited (Podman does, now
// and then, for one that exits at once) cannot hide the exit for longer than this.
constexpr Duration kLogIdleCheck = Duration(5'000);

void DockerDriver::follow(std::shared_ptr<Task> task) {
  exec::RotatingLog out(task->log_dir / "stdout.log", task->log_max_bytes, task->log_max_files);
  exec::RotatingLog err(task->log_dir / "stderr.log", task->log_max_bytes, task->log_max_files);
  if (Status s = out.open(); !s) spdlog::warn("docker: {}: {}", task->id, s.message());
  if (Status s = err.open(); !s) spdlog::warn("docker: {}: {}", task->id, s.message());
  const auto cursor_path = task->task_dir / kCursorFile;
  LogDemuxer::Cursor cursor;
  if (auto text = exec::readWholeFile(cursor_path)) cursor = docker::decodeCursor(*text);
  int failures = 0;
  while (!task->handle.cancelled()) {
    LogDemuxer demux(cursor, true, [&](int stream, std::string_view payload) {
      (stream == 2 ? err : out).write(payload.data(), payload.size());
    });
    auto last_saved = std::chrono::steady_clock::now();
    std::string target = "/containers/" + task->container +
                         "/logs?follow=1&stdout=1&stderr=1&timestamps=1";
    if (cursor.nanos > 0) target += "&since=" + std::to_string(cursor.nanos / 1'000'000'000);
    auto r = engine_.stream(
        "GET", target, {},
        [&](std::string_view data) {
          if (Status s = demux.feed(data); !s) {
            spdlog::warn("docker: {}: {}", task->id, s.message());
            return false;
          }
          auto now = std::chrono::steady_clock::now();
          if (now - last_saved > std::chrono::seconds(1)) {
            (void)exec::writeFileAtomic(cursor_path, docker::encodeCursor(demux.cursor()));
            last_saved = now;
          }
          return true;
        },
        kLogIdleCheck, &task->handle);
    cursor = demux.cursor();
    (void)exec::writeFileAtomic(cursor_path, docker::encodeCursor(cursor));
    if (task->handle.cancelled()) break;
    auto inspected = engine_.request("GET", "/containers/" + task->container + "/json");
    if (inspected && inspected->status == 404) {
      std::lock_guard lock(mu_);
      if (!task->status.exit) {
        ExitStatus e;
        e.exit_code = 255;
        e.finished_at = SystemClock::instance().now();
        task->status.exit = e;
      }
      break;
    }
    auto state = inspected && ok2xx(*inspected) ? docker::parseInspect(inspected->body)
                                                : Result<ContainerState>(Status(Code::kUnavailable, "engine"));
    if (state && !state->running) {
      ExitStatus e = exitOf(task->id, *state);
      std::lock_guard lock(mu_);
      if (!task->status.exit) task->status.exit = e;  // adopt() may have decided already
      break;
    }
    // Quiet for kLogIdleCheck and still running: follow again from the cursor.
    const bool quiet = !r && r.status().code() == Code::kTimeout;
    if ((!r && !quiet) || !state) {
      // The engine is down or restarting: try again, slower each time (at most 5 s).
      ++failures;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5000, 100 * failures)));
    }
  }
  {
    std::lock_guard lock(mu_);
    task->follower_running = false;
  }
  cv_.notify_all();
}

ExitStatus DockerDriver::exitOf(const std::string& id, const ContainerState& state) {
  ExitStatus e = exitFrom(state);
  if (!e.oom_killed && e.signal == SIGKILL) {
    // The kernel's OOM notification and the container's exit race: give the watcher a moment.
    for (int i = 0; i < 10 && !oom_.oomKilled(id); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    e.oom_killed = oom_.oomKilled(id);
  }
  return e;
}

Status DockerDriver::signal(const std::string& id, int sig) {
  auto task = find(id);
  if (!task) return Status(Code::kNotFound, "no task " + id);
  {
    std::lock_guard lock(mu_);
    if (task->status.exit) return Status(Code::kFailedPrecondition, "task " + id + " is not running");
  }
  auto r = engine_.request("POST", "/containers/" + task->container + "/kill?signal=" +
                                       std::to_string(sig));
  if (!r) return r.status();
  if (!ok2xx(*r)) return engineFailure("signalling container " + task->container, *r);
  return Status::ok();
}

Status DockerDriver::stop(const std::string& id, Duration grace) {
  auto task = find(id);
  if (!task) return Status::ok();
  {
    std::lock_guard lock(mu_);
    if (task->status.exit) return Status::ok();
  }
  auto term = engine_.request("POST", "/containers/" + task->container + "/kill?signal=SIGTERM");
  if (!term) return term.status();
  if (grace.count() > 0 && wait(id, grace)) return Status::ok();
  auto kill = engine_.request("POST", "/containers/" + task->container + "/kill?signal=SIGKILL");
  if (!kill) return kill.status();
  auto done = wait(id, Duration(20'000));
  if (!done) return Status(Code::kTimeout, "container " + containerName(id) + " did not end after SIGKILL");
  return Status::ok();
}

Result<TaskStatus> DockerDriver::inspect(const std::string& id) {
  auto task = find(id);
  if (!task) return Status(Code::kNotFound, "no task " + id);
  std::lock_guard lock(mu_);
  return task->status;
}

Result<ExitStatus> DockerDriver::wait(const std::string& id, Duration timeout) {
  auto task = find(id);
  if (!task) return Status(Code::kNotFound, "no task " + id);
  std::unique_lock lock(mu_);
  bool ended = cv_.wait_for(lock, timeout, [&] { return task->status.exit.has_value(); });
  if (!ended) return Status(Code::kTimeout, "task " + id + " still runs");
  return *task->status.exit;
}

Status DockerDriver::destroy(const std::string& id) {
  auto task = find(id);
  std::string container = task ? task->container : containerName(id);
  // Unknown to this driver (a start that failed half-way, say): the namespace it would have had.
  std::string netns = task ? task->netns : options_.networks ? netnsName(id) : std::string();
  if (task) {
    bool running;
    {
      std::lock_guard lock(mu_);
      running = !task->status.exit;
    }
    if (running) {
      Status s = stop(id, Duration(0));
      if (!s) return s;
    }
    task->handle.cancel();
    if (task->follower.joinable()) task->follower.join();
  }
  Status removed = removeContainer(container);
  if (!removed) return removed;
  if (!netns.empty() && options_.networks) {
    if (Status s = options_.networks->remove(netns); !s) return s;
  }
  std::error_code ec;
  std::filesystem::remove_all(options_.state_dir / id, ec);
  oom_.forget(id);
  std::lock_guard lock(mu_);
  tasks_.erase(id);
  return Status::ok();
}

Result<std::vector<TaskStatus>> DockerDriver::recover() {
  nlohmann::json filters = {{"label", {std::string(docker::kLabelOwner) + "=" + options_.owner}}};
  auto listed = engine_.request("GET", "/containers/json?all=1&filters=" + urlEncode(filters.dump()));
  if (!listed) return listed.status();
  if (!ok2xx(*listed)) return engineFailure("listing containers", *listed);
  auto containers = docker::parseContainerList(listed->body);
  if (!containers) return containers.status();
  // The networks of isolated containers: one listing for all of them, when there are any.
  std::optional<std::vector<InstanceLink>> links;
  auto linkOf = [&](const std::string& netns) -> Result<std::optional<InstanceLink>> {
    if (!options_.networks) return std::optional<InstanceLink>();
    if (netns.rfind(options_.netns_prefix, 0) != 0) return options_.networks->find(netns);
    if (!links) {
      auto listed = options_.networks->list(options_.netns_prefix);
      if (!listed) return listed.status();
      links = std::move(listed.value());
    }
    for (const InstanceLink& l : *links) {
      if (l.netns == netns) return std::optional<InstanceLink>(l);
    }
    return std::optional<InstanceLink>();
  };
  std::vector<TaskStatus> out;
  for (const ContainerState& c : *containers) {
    std::string id = labelOf(c, docker::kLabelInstance);
    if (id.empty() || labelOf(c, docker::kLabelOwner) != options_.owner) continue;
    if (auto known = find(id)) {
      std::lock_guard lock(mu_);
      out.push_back(known->status);
      continue;
    }
    auto inspected = engine_.request("GET", "/containers/" + c.id + "/json");
    if (!inspected || !ok2xx(*inspected)) continue;  // removed meanwhile
    auto state = docker::parseInspect(inspected->body);
    if (!state) continue;
    if (state->id.empty()) state->id = c.id;
    std::optional<InstanceLink> link;
    if (std::string netns = labelOf(*state, docker::kLabelNetns); !netns.empty()) {
      auto found = linkOf(netns);
      if (!found) return found.status();
      link = *found;
    }
    out.push_back(adopt(id, *state, link));
  }
  return out;
}

TaskStatus DockerDriver::adopt(const std::string& id, const ContainerState& state,
                               const std::optional<InstanceLink>& link) {
  auto label = [&](const char* key) { return labelOf(state, key); };
  auto task = std::make_shared<Task>();
  task->id = id;
  task->container = state.id;
  task->netns = label(docker::kLabelNetns);
  task->task_dir = options_.state_dir / id;
  task->log_dir = label(docker::kLabelLogDir);
  if (task->log_dir.empty()) task->log_dir = task->task_dir / "logs";
  try {
    task->log_max_bytes = std::stoull(label(docker::kLabelLogMaxBytes));
    task->log_max_files = std::stoi(label(docker::kLabelLogMaxFiles));
  } catch (const std::exception&) {
  }
  std::error_code ec;
  std::filesystem::create_directories(task->task_dir, ec);
  task->status.instance_id = id;
  task->status.pid = state.running ? state.pid : 0;
  task->status.started_at = state.started_at;
  bool lost_network = false;
  if (task->netns.empty()) {
    task->status.address = "127.0.0.1";
  } else {
    try {
      task->status.port = std::stoi(label(docker::kLabelPort));
    } catch (const std::exception&) {
    }
    if (link && !link->instance_ip.empty()) {
      task->status.address = link->instance_ip;
    } else if (state.running) {
      // Unreachable at any address this driver could report (its namespace was deleted, or this
      // agent no longer makes networks): replaced rather than reported somewhere it is not.
      lost_network = true;
      spdlog::error(
          "docker: container {} of instance {}: its network namespace {} is {}; "
          "killing it so that the node starts a new one",
          containerName(id), id, task->netns,
          !options_.networks ? "not managed by this agent ([node] network = \"host\")"
          : link             ? "incomplete (no address on its veth pair)"
                             : "gone");
      auto killed = engine_.request("POST", "/containers/" + state.id + "/kill?signal=SIGKILL");
      if (!killed || !(ok2xx(*killed) || killed->status == 404 || killed->status == 409)) {
        spdlog::warn("docker: killing container {}: {}", containerName(id),
                     killed ? docker::engineMessage(*killed) : killed.status().message());
      }
    }
  }
  if (lost_network) {
    ExitStatus e;
    e.exit_code = 128 + SIGKILL;
    e.signal = SIGKILL;
    e.finished_at = SystemClock::instance().now();
    task->status.pid = 0;
    task->status.exit = e;
  } else if (state.running && state.pid > 0) {
    (void)oom_.watch(id, state.pid);
  } else {
    ExitStatus e = exitOf(id, state);
    if (state.status == "created") e.exit_code = 255;  // its start failed
    task->status.exit = e;
  }
  TaskStatus status = task->status;
  {
    std::lock_guard lock(mu_);
    tasks_[id] = task;
  }
  startFollower(task);  // for an ended one: the logs written while no agent was up
  return status;
}

Result<TaskStats> DockerDriver::stats(const std::string& id) {
  auto task = find(id);
  if (!task) return Status(Code::kNotFound, "no task " + id);
  auto r = engine_.request("GET", "/containers/" + task->container + "/stats?stream=false&one-shot=true");
  if (!r) return r.status();
  if (!ok2xx(*r)) return engineFailure("stats of container " + containerName(id), *r);
  return docker::parseStats(r->body);
}

}  // namespace baton::drivers
