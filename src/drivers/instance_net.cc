#include "drivers/instance_net.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

#include "core/hash.h"

extern char** environ;

namespace baton::drivers {

// ---- pure ----------------------------------------------------------------------------------

std::string hostInterfaceName(std::string_view netns) {
  static const char* kHex = "0123456789abcdef";
  uint64_t h = fnv1a64(netns);
  std::string out = "bt";
  for (int i = 0; i < 10; ++i) out += kHex[(h >> (60 - 4 * i)) & 0xf];
  return out;
}

uint32_t hostAddress(uint32_t slot) { return kInstanceNetBase + 2 * slot; }
uint32_t instanceAddress(uint32_t slot) { return kInstanceNetBase + 2 * slot + 1; }

std::optional<uint32_t> slotOf(uint32_t ip) {
  if (ip < kInstanceNetBase || ip >= kInstanceNetBase + 2 * kInstanceNetSlots) return std::nullopt;
  return (ip - kInstanceNetBase) / 2;
}

Result<uint32_t> allocateSlot(std::string_view netns, const std::set<uint32_t>& used) {
  const uint32_t start = static_cast<uint32_t>(fnv1a64(netns) % kInstanceNetSlots);
  for (uint32_t i = 0; i < kInstanceNetSlots; ++i) {
    uint32_t slot = (start + i) % kInstanceNetSlots;
    if (!used.count(slot) && slot != *slotOf(kMetadataAddress)) return slot;
  }
  return unavailable("no free /31 left in 169.254.128.0/17 for network namespace \"" +
                     std::string(netns) + "\"");
}

InstanceLink linkFor(std::string netns, uint32_t slot) {
  InstanceLink link;
  link.host_ifname = hostInterfaceName(netns);
  link.netns = std::move(netns);
  link.slot = slot;
  link.host_ip = formatIpv4(hostAddress(slot));
  link.instance_ip = formatIpv4(instanceAddress(slot));
  return link;
}

std::vector<std::pair<std::string, uint32_t>> parsePoolAddresses(std::string_view ip_output) {
  std::vector<std::pair<std::string, uint32_t>> out;
  std::istringstream lines{std::string(ip_output)};
  std::string line;
  while (std::getline(lines, line)) {
    // "5: bt0123456789    inet 169.254.128.6/31 scope global bt0123456789\ valid_lft ..."
    std::istringstream words(line);
    std::string index, name, family, cidr;
    if (!(words >> index >> name >> family >> cidr) || family != "inet") continue;
    if (size_t at = name.find('@'); at != std::string::npos) name.resize(at);
    if (!name.empty() && name.back() == ':') name.pop_back();
    if (name.rfind("bt", 0) != 0) continue;
    auto ip = parseIpv4(cidr.substr(0, cidr.find('/')));
    if (!ip) continue;
    auto slot = slotOf(*ip);
    if (slot && hostAddress(*slot) == *ip) out.emplace_back(name, *slot);
  }
  return out;
}

std::vector<std::string> parseNetnsList(std::string_view ip_output) {
  std::vector<std::string> out;
  std::istringstream lines{std::string(ip_output)};
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string name;
    if (words >> name) out.push_back(name);
  }
  return out;
}

// ---- I/O -----------------------------------------------------------------------------------

Result<std::string> runCommand(const std::vector<std::string>& argv, Duration timeout) {
  if (argv.empty()) return invalidArgument("runCommand: empty argv");
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ioError("pipe: " + std::string(std::strerror(errno)));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(out[0]);
    ::close(out[1]);
    return ioError("pipe: " + std::string(std::strerror(e)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> cargs;
  std::vector<std::string> copy = argv;
  for (auto& a : copy) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargs[0], &actions, &attr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    return ioError("cannot run " + argv[0] + ": " + std::strerror(rc));
  }

  std::string stdout_text, stderr_text;
  int fds[2] = {out[0], err[0]};
  std::string* sinks[2] = {&stdout_text, &stderr_text};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  while (fds[0] >= 0 || fds[1] >= 0) {
    auto left = std::chrono::duration_cast<Duration>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    int n = ::poll(p, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || !p[i].revents) continue;
      char buf[4096];
      ssize_t got = ::read(fds[i], buf, sizeof buf);
      if (got > 0) {
        if (sinks[i]->size() < (1u << 20)) sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i]);
        fds[i] = -1;
      }
    }
  }
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string what = argv[0];
  for (size_t i = 1; i < argv.size() && i < 4; ++i) what += " " + argv[i];
  if (argv.size() > 4) what += " ...";
  if (timed_out) {
    return Status(Code::kTimeout, "\"" + what + "\" did not finish within " +
                                      std::to_string(timeout.count()) + "ms");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!stderr_text.empty() && (stderr_text.back() == '\n' || stderr_text.back() == ' ')) {
      stderr_text.pop_back();
    }
    std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : "signal " + std::to_string(WTERMSIG(status));
    return Status(Code::kFailedPrecondition, "\"" + what + "\" failed (" + how + ")" +
                                                 (stderr_text.empty() ? "" : ": " + stderr_text));
  }
  return stdout_text;
}

InstanceNetworks::InstanceNetworks(CommandRunner run) : run_(std::move(run)) {}

Result<std::set<uint32_t>> InstanceNetworks::usedSlots() {
  auto out = run_({"ip", "-o", "-4", "addr", "show"});
  if (!out) return out.status();
  std::set<uint32_t> used;
  for (const auto& [name, slot] : parsePoolAddresses(*out)) used.insert(slot);
  return used;
}

Result<std::optional<InstanceLink>> InstanceNetworks::find(const std::string& netns) {
  std::lock_guard<std::mutex> lock(mu_);
  return findLocked(netns);
}

Result<std::optional<InstanceLink>> InstanceNetworks::findLocked(const std::string& netns) {
  auto names = run_({"ip", "netns", "list"});
  if (!names) return names.status();
  auto all = parseNetnsList(*names);
  if (std::find(all.begin(), all.end(), netns) == all.end()) return std::optional<InstanceLink>();
  // The host end's address is set last by create(): when it is there, the link is complete.
  std::string ifname = hostInterfaceName(netns);
  auto addrs = run_({"ip", "-o", "-4", "addr", "show"});
  if (!addrs) return addrs.status();
  for (const auto& [name, slot] : parsePoolAddresses(*addrs)) {
    if (name == ifname) return std::optional<InstanceLink>(linkFor(netns, slot));
  }
  InstanceLink partial;
  partial.netns = netns;
  partial.host_ifname = ifname;
  return std::optional<InstanceLink>(partial);
}

Result<InstanceLink> InstanceNetworks::create(const std::string& netns) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = findLocked(netns);
  if (!found) return found.status();
  if (found->has_value()) {
    if (!(*found)->host_ip.empty()) return **found;
    if (Status s = removeLocked(netns); !s) return s;  // half-made by a crash: start over
  }
  return buildLocked(netns, "netns add " + netns);
}

Result<InstanceLink> InstanceNetworks::attach(const std::string& netns, int pid) {
  if (pid <= 0) return invalidArgument("network for \"" + netns + "\": no process to attach");
  std::lock_guard<std::mutex> lock(mu_);
  auto found = findLocked(netns);
  if (!found) return found.status();
  if (found->has_value()) {
    // Ours already (an attach retried) or left by an earlier process of the same name.
    if (!(*found)->host_ip.empty()) {
      auto names = run_({"ip", "netns", "identify", std::to_string(pid)});
      if (!names) return names.status();
      auto of_pid = parseNetnsList(*names);
      if (std::find(of_pid.begin(), of_pid.end(), netns) != of_pid.end()) return **found;
    }
    if (Status s = removeLocked(netns); !s) return s;
  }
  return buildLocked(netns, "netns attach " + netns + " " + std::to_string(pid));
}

Result<InstanceLink> InstanceNetworks::buildLocked(const std::string& netns,
                                                   const std::string& first_step) {
  auto used = usedSlots();
  if (!used) return used.status();
  auto slot = allocateSlot(netns, *used);
  if (!slot) return slot.status();
  InstanceLink link = linkFor(netns, *slot);
  const std::string& ifname = link.host_ifname;
  // Three `ip -batch` runs instead of a process per step (each `ip` costs a fork and exec:
  // 3-10 ms on a small machine, on every cold start): the host's side, the instance's side
  // (`ip -n NETNS`), then the host end's address, last, because its presence is what marks the
  // link as complete (see findLocked()).
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> batches = {
      {{"ip"}, {first_step, "link add " + ifname + " type veth peer name eth0 netns " + netns}},
      {{"ip", "-n", netns},
       {"addr add " + link.instance_ip + "/31 dev eth0", "link set lo up", "link set eth0 up",
        "route add " + formatIpv4(kMeshVipBase) + "/" + std::to_string(kMeshVipPrefix) + " via " +
            link.host_ip + " dev eth0"}},
      {{"ip"}, {"link set " + ifname + " up", "addr add " + link.host_ip + "/31 dev " + ifname}},
  };
  for (const auto& [prefix, lines] : batches) {
    auto out = runBatch(prefix, lines);
    if (!out) {
      Status undo = removeLocked(netns);
      (void)undo;
      return Status(out.status().code(),
                    "network for \"" + netns + "\": " + out.status().message());
    }
  }
  // Strict reverse-path filtering on the host end: a packet that comes in on it must come from
  // the instance's own address, so an instance with raw sockets cannot pass as another caller.
  if (Status s = strictReversePath(ifname); !s) {
    Status undo = removeLocked(netns);
    (void)undo;
    return Status(s.code(), "network for \"" + netns + "\": " + s.message());
  }
  return link;
}

Status strictReversePath(const std::string& ifname) {
  const std::string path = "/proc/sys/net/ipv4/conf/" + ifname + "/rp_filter";
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  // No such interface: the `ip` runner is a test's fake, which made none.
  if (fd < 0 && errno == ENOENT) return Status::ok();
  if (fd < 0) return ioError("cannot open " + path + ": " + std::strerror(errno));
  const bool ok = ::write(fd, "1", 1) == 1;
  ::close(fd);
  if (!ok) return ioError("cannot write " + path);
  return Status::ok();
}

Result<std::string> InstanceNetworks::runBatch(const std::vector<std::string>& prefix,
                                               const std::vector<std::string>& lines) {
  char path[] = "/tmp/baton-ip-batch-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) return ioError(std::string("mkstemp: ") + std::strerror(errno));
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written) {
    ::unlink(path);
    return ioError(std::string("writing ") + path);
  }
  std::vector<std::string> argv = prefix;
  argv.push_back("-batch");
  argv.push_back(path);
  auto out = run_(argv);
  ::unlink(path);
  return out;
}

Status InstanceNetworks::remove(const std::string& netns) {
  std::lock_guard<std::mutex> lock(mu_);
  return removeLocked(netns);
}

Status InstanceNetworks::removeLocked(const std::string& netns) {
  // Deleting the host end deletes its peer; deleting the namespace would too, but the host end
  // would then linger until the kernel gets to it.
  auto names = run_({"ip", "netns", "list"});
  if (!names) return names.status();
  auto all = parseNetnsList(*names);
  (void)run_({"ip", "link", "del", hostInterfaceName(netns)});  // missing: fine
  if (std::find(all.begin(), all.end(), netns) == all.end()) return Status::ok();
  auto del = run_({"ip", "netns", "del", netns});
  if (!del)
    return Status(del.status().code(),
                  "cannot delete network namespace \"" + netns + "\": " + del.status().message());
  return Status::ok();
}

Result<std::vector<InstanceLink>> InstanceNetworks::list(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  auto names = run_({"ip", "netns", "list"});
  if (!names) return names.status();
  auto addrs = run_({"ip", "-o", "-4", "addr", "show"});
  if (!addrs) return addrs.status();
  auto pool = parsePoolAddresses(*addrs);
  std::vector<InstanceLink> out;
  for (const std::string& netns : parseNetnsList(*names)) {
    if (netns.rfind(prefix, 0) != 0) continue;
    InstanceLink link;
    link.netns = netns;
    link.host_ifname = hostInterfaceName(netns);
    for (const auto& [name, slot] : pool) {
      if (name == link.host_ifname) link = linkFor(netns, slot);
    }
    out.push_back(std::move(link));
  }
  std::sort(out.begin(), out.end(),
            [](const InstanceLink& a, const InstanceLink& b) { return a.netns < b.netns; });
  return out;
}

}  // namespace baton::drivers
