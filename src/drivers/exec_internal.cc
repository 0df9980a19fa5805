#include "drivers/exec_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace baton::drivers::exec {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

template <typename T>
Result<T> parseJson(const std::string& text, T (*build)(const json&)) {
  try {
    return build(json::parse(text));
  } catch (const json::exception& e) {
    return invalidArgument(std::string("malformed task file: ") + e.what());
  }
}

// /proc/<pid>/stat fields after the command name: returns (state, starttime).
std::optional<std::pair<char, uint64_t>> readStat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 2));
  // Field 3 is state; starttime is field 22, i.e. the 20th after the command name.
  char state = 0;
  rest >> state;
  std::string skip;
  for (int i = 4; i < 22 && rest; ++i) rest >> skip;
  uint64_t start = 0;
  rest >> start;
  if (!rest) return std::nullopt;
  return std::make_pair(state, start);
}

}  // namespace

std::string encodeConfig(const SupervisorConfig& c) {
  json j = {{"instance_id", c.instance_id},
            {"argv", c.argv},
            {"env", c.env},
            {"cwd", c.cwd.string()},
            {"log_dir", c.log_dir.string()},
            {"log_max_bytes", c.log_max_bytes},
            {"log_max_files", c.log_max_files},
            {"cgroup_root", c.cgroup_root},
            {"memory_bytes", c.memory_bytes},
            {"cpu_cores", c.cpu_cores},
            {"cpu_limit_cores", c.cpu_limit_cores},
            {"pids_max", c.pids_max},
            {"uid", c.uid},
            {"gid", c.gid},
            {"groups", c.groups}};
  if (!c.adopt_pid_file.empty()) j["adopt_pid_file"] = c.adopt_pid_file;
  if (!c.netns_path.empty()) j["netns_path"] = c.netns_path;
  if (!c.address.empty()) j["address"] = c.address;
  if (!c.resolv_conf.empty()) j["resolv_conf"] = c.resolv_conf;
  return j.dump(2);
}

Result<SupervisorConfig> decodeConfig(const std::string& text) {
  return parseJson<SupervisorConfig>(text, [](const json& j) {
    SupervisorConfig c;
    c.instance_id = j.at("instance_id").get<std::string>();
    c.argv = j.at("argv").get<std::vector<std::string>>();
    c.env = j.at("env").get<std::map<std::string, std::string>>();
    c.cwd = j.at("cwd").get<std::string>();
    c.log_dir = j.at("log_dir").get<std::string>();
    c.log_max_bytes = j.at("log_max_bytes").get<uint64_t>();
    c.log_max_files = j.at("log_max_files").get<int>();
    c.cgroup_root = j.at("cgroup_root").get<std::string>();
    c.memory_bytes = j.at("memory_bytes").get<uint64_t>();
    c.cpu_cores = j.at("cpu_cores").get<double>();
    // Absent in the config.json of a task started before they existed.
    c.cpu_limit_cores = j.value("cpu_limit_cores", 0.0);
    c.pids_max = j.value("pids_max", int64_t{0});
    c.uid = j.value("uid", int64_t{-1});
    c.gid = j.value("gid", int64_t{-1});
    c.groups = j.value("groups", std::vector<uint32_t>{});
    c.adopt_pid_file = j.value("adopt_pid_file", std::string());
    c.netns_path = j.value("netns_path", std::string());
    c.address = j.value("address", std::string());
    c.resolv_conf = j.value("resolv_conf", std::string());
    return c;
  });
}

std::string encodeState(const SupervisorState& s) {
  json j = {{"supervisor_pid", s.supervisor_pid},
            {"supervisor_start", s.supervisor_start},
            {"pid", s.pid},
            {"pid_start", s.pid_start},
            {"started_at", s.started_at_ms},
            {"cgroup", {{"version", s.cgroup_version}, {"dirs", s.cgroup_dirs}}},
            {"warnings", s.warnings}};
  if (!s.error.empty()) j["error"] = s.error;
  return j.dump(2);
}

Result<SupervisorState> decodeState(const std::string& text) {
  return parseJson<SupervisorState>(text, [](const json& j) {
    SupervisorState s;
    s.supervisor_pid = j.at("supervisor_pid").get<int>();
    s.supervisor_start = j.at("supervisor_start").get<uint64_t>();
    s.pid = j.at("pid").get<int>();
    s.pid_start = j.at("pid_start").get<uint64_t>();
    s.started_at_ms = j.at("started_at").get<int64_t>();
    s.cgroup_version = j.at("cgroup").at("version").get<std::string>();
    s.cgroup_dirs = j.at("cgroup").at("dirs").get<std::vector<std::string>>();
    s.warnings = j.value("warnings", std::vector<std::string>{});
    s.error = j.value("error", std::string());
    return s;
  });
}

std::string encodeExit(const ExitStatus& e, const std::string& error) {
  json j = {{"exit_code", e.exit_code},
            {"signal", e.signal ? json(*e.signal) : json(nullptr)},
            {"oom_killed", e.oom_killed},
            {"finished_at", toUnixMillis(e.finished_at)}};
  if (!error.empty()) j["error"] = error;
  return j.dump(2);
}

Result<ExitStatus> decodeExit(const std::string& text) {
  return parseJson<ExitStatus>(text, [](const json& j) {
    ExitStatus e;
    e.exit_code = j.at("exit_code").get<int>();
    if (!j.at("signal").is_null()) e.signal = j.at("signal").get<int>();
    e.oom_killed = j.at("oom_killed").get<bool>();
    e.finished_at = fromUnixMillis(j.at("finished_at").get<int64_t>());
    return e;
  });
}

Status writeFileAtomic(const fs::path& path, const std::string& content) {
  fs::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ioError("cannot write " + tmp.string() + ": " + errnoText(errno));
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ioError("cannot write " + tmp.string() + ": " + errnoText(err));
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return ioError("cannot rename " + tmp.string() + ": " + errnoText(errno));
  }
  return Status::ok();
}

Result<std::string> readWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound("cannot read " + path.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text;
}

std::optional<uint64_t> processStartTime(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  auto stat = readStat(pid);
  if (!stat || stat->first == 'Z' || stat->first == 'X') return std::nullopt;
  return stat->second;
}

bool processAlive(pid_t pid, uint64_t start) {
  auto st = processStartTime(pid);
  return st && (start == 0 || *st == start);
}

std::vector<pid_t> childrenOf(pid_t parent) {
  std::vector<pid_t> out;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(text.substr(close + 2));
    char state;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  return out;
}

Result<std::vector<std::string>> expandArgv(const std::vector<std::string>& argv,
                                            const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  out.reserve(argv.size());
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    std::string result;
    for (size_t p = 0; p < arg.size();) {
      if (arg.compare(p, 3, "$${") == 0) {
        result += "${";
        p += 3;
      } else if (arg.compare(p, 2, "${") == 0) {
        size_t close = arg.find('}', p + 2);
        if (close == std::string::npos) {
          return invalidArgument("run[" + std::to_string(i) + "]: unterminated ${ in \"" + arg +
                                 "\"");
        }
        std::string name = arg.substr(p + 2, close - p - 2);
        auto it = env.find(name);
        if (it == env.end()) {
          return invalidArgument("run[" + std::to_string(i) + "]: unknown variable ${" + name +
                                 "} (not in the instance's env)");
        }
        result += it->second;
        p = close + 1;
      } else {
        result += arg[p++];
      }
    }
    out.push_back(std::move(result));
  }
  return out;
}

std::string errnoText(int err) {
  std::string s = std::strerror(err);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
  return s;
}

RotatingLog::RotatingLog(fs::path path, uint64_t max_bytes, int max_files)
    : path_(std::move(path)), max_bytes_(max_bytes), max_files_(max_files) {}

RotatingLog::~RotatingLog() {
  if (fd_ >= 0) ::close(fd_);
}

Status RotatingLog::open() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return ioError("cannot open " + path_.string() + ": " + errnoText(errno));
  struct stat st {};
  if (::fstat(fd_, &st) == 0) size_ = static_cast<uint64_t>(st.st_size);
  return Status::ok();
}

void RotatingLog::rotate() {
  if (fd_ >= 0) ::close(fd_);
  auto numbered = [&](int i) {
    fs::path p = path_;
    p += "." + std::to_string(i);
    return p;
  };
  if (max_files_ <= 0) {
    ::unlink(path_.c_str());
  } else {
    ::unlink(numbered(max_files_).c_str());
    for (int i = max_files_ - 1; i >= 1; --i)
      ::rename(numbered(i).c_str(), numbered(i + 1).c_str());
    ::rename(path_.c_str(), numbered(1).c_str());
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  size_ = 0;
}

void RotatingLog::write(const char* data, size_t n) {
  while (n > 0) {
    if (max_bytes_ > 0 && size_ >= max_bytes_) rotate();
    if (fd_ < 0) return;
    size_t chunk = n;
    if (max_bytes_ > 0) chunk = std::min<uint64_t>(n, max_bytes_ - size_);
    ssize_t w = ::write(fd_, data, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // disk full or the like: drop rather than block the service
    size_ += static_cast<uint64_t>(w);
    data += w;
    n -= static_cast<size_t>(w);
  }
}

bool validTaskId(const std::string& id) {
  if (id.empty() || id == "." || id == ".." || id.size() > 200) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

Result<TaskStatus> StartingIds::run(const std::string& id,
                                     const std::function<Result<TaskStatus>()>& start) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ids_.insert(id).second) {
      return Status(Code::kAlreadyExists, "task \"" + id + "\" is starting");
    }
  }
  Result<TaskStatus> result = start();
  std::lock_guard<std::mutex> lock(mu_);
  ids_.erase(id);
  return result;
}

bool StartingIds::contains(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return ids_.count(id) > 0;
}

}  // namespace baton::drivers::exec
