#include "drivers/docker_protocol.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>

#include "drivers/exec_internal.h"

namespace baton::drivers::docker {
namespace {

using nlohmann::json;

template <typename T>
T numberOr(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return fallback;
  return it->get<T>();
}

std::string stringOr(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

ContainerState stateFrom(const json& j) {
  ContainerState c;
  c.id = stringOr(j, "Id");
  c.name = stringOr(j, "Name");
  if (c.name.empty()) {
    auto names = j.find("Names");
    if (names != j.end() && names->is_array() && !names->empty() && (*names)[0].is_string()) {
      c.name = (*names)[0].get<std::string>();
    }
  }
  if (!c.name.empty() && c.name.front() == '/') c.name.erase(0, 1);
  if (auto st = j.find("State"); st != j.end()) {
    if (st->is_object()) {
      c.status = stringOr(*st, "Status");
      auto running = st->find("Running");
      c.running = running != st->end() && running->is_boolean() && running->get<bool>();
      c.pid = numberOr<int>(*st, "Pid", 0);
      c.exit_code = numberOr<int>(*st, "ExitCode", 0);
      auto oom = st->find("OOMKilled");
      c.oom_killed = oom != st->end() && oom->is_boolean() && oom->get<bool>();
      c.error = stringOr(*st, "Error");
      if (auto t = parseRfc3339(stringOr(*st, "StartedAt"))) c.started_at = *t;
      if (auto t = parseRfc3339(stringOr(*st, "FinishedAt"))) c.finished_at = *t;
    } else if (st->is_string()) {  // the list form: "State": "running"
      c.status = st->get<std::string>();
      c.running = c.status == "running";
    }
  }
  auto collectLabels = [&](const json& labels) {
    if (!labels.is_object()) return;
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (it.value().is_string()) c.labels[it.key()] = it.value().get<std::string>();
    }
  };
  if (auto cfg = j.find("Config"); cfg != j.end() && cfg->is_object()) {
    if (auto l = cfg->find("Labels"); l != cfg->end()) collectLabels(*l);
  }
  if (auto l = j.find("Labels"); l != j.end()) collectLabels(*l);
  return c;
}

}  // namespace

Result<std::string> createBody(const TaskConfig& config, const CreateOptions& options) {
  const model::ServiceSpec& spec = config.spec;
  json body;
  body["Image"] = spec.image;
  if (!spec.run.empty()) {
    auto argv = exec::expandArgv(spec.run, config.env);
    if (!argv) return argv.status();
    body["Cmd"] = *argv;
  }
  json env = json::array();
  for (const auto& [k, v] : config.env) env.push_back(k + "=" + v);
  body["Env"] = env;
  body["Labels"] = {{kLabelInstance, config.instance_id},
                    {kLabelOwner, options.owner},
                    {kLabelLogDir, config.log_dir.string()},
                    {kLabelLogMaxBytes, std::to_string(config.log_max_bytes)},
                    {kLabelLogMaxFiles, std::to_string(config.log_max_files)}};
  bool root = false;
  if (config.uid >= 0) {
    body["User"] = std::to_string(config.uid) + ":" + std::to_string(config.gid >= 0 ? config.gid : config.uid);
    root = config.uid == 0;
  } else if (!spec.user.empty()) {
    body["User"] = spec.user;
    root = spec.user == "root" || spec.user == "0" || spec.user.rfind("0:", 0) == 0 ||
           spec.user.rfind("root:", 0) == 0;
  } else {
    root = true;  // the image's own user, which may be root
  }
  json host;
  int cport = config.container_port > 0 ? config.container_port : config.port;
  if (!options.netns.empty()) {
    // Its own network, attached by the driver once the container runs: nothing to publish.
    host["NetworkMode"] = "none";
    body["Labels"][kLabelNetns] = options.netns;
    body["Labels"][kLabelPort] = std::to_string(cport);
  } else if (config.port > 0 && cport > 0) {
    std::string key = std::to_string(cport) + "/tcp";
    body["ExposedPorts"] = {{key, json::object()}};
    host["PortBindings"] = {
        {key, json::array({{{"HostIp", "127.0.0.1"}, {"HostPort", std::to_string(config.port)}}})}};
  }
  if (spec.memory > 0) {
    host["Memory"] = spec.memory;
    host["MemorySwap"] = spec.memory;  // no swap beyond the limit
  }
  if (spec.cpu > 0) host["CpuShares"] = std::max<int64_t>(2, static_cast<int64_t>(spec.cpu * 1024));
  if (spec.cpu_limit > 0) host["NanoCpus"] = static_cast<int64_t>(spec.cpu_limit * 1e9);
  if (config.pids_max > 0) host["PidsLimit"] = config.pids_max;
  host["ReadonlyRootfs"] = spec.read_only;
  // Mounts rather than Binds' "src:dst:ro" text, which a ':' in the path would break.
  json mounts = json::array();
  if (!options.resolv_conf_path.empty()) {
    mounts.push_back({{"Type", "bind"},
                      {"Source", options.resolv_conf_path},
                      {"Target", "/etc/resolv.conf"},
                      {"ReadOnly", true}});
  }
  if (!config.secrets_dir.empty()) {
    mounts.push_back({{"Type", "bind"},
                      {"Source", config.secrets_dir.string()},
                      {"Target", std::string(kContainerSecretsDir)},
                      {"ReadOnly", true}});
  }
  if (!mounts.empty()) host["Mounts"] = std::move(mounts);
  if (spec.read_only) host["Tmpfs"] = {{"/tmp", "rw,nosuid,nodev,size=" + options.tmpfs_size}};
  host["SecurityOpt"] = json::array({"no-new-privileges"});
  if (!root) host["CapDrop"] = json::array({"ALL"});
  host["Ulimits"] = json::array(
      {{{"Name", "nofile"}, {"Soft", options.nofile}, {"Hard", options.nofile}},
       {{"Name", "nproc"}, {"Soft", options.nproc}, {"Hard", options.nproc}}});
  host["RestartPolicy"] = {{"Name", "no"}};  // the node restarts, with its backoff
  body["HostConfig"] = host;
  return body.dump();
}

Result<ContainerState> parseInspect(std::string_view json_text) {
  try {
    json j = json::parse(json_text);
    if (!j.is_object()) return invalidArgument("container inspect: expected a JSON object");
    return stateFrom(j);
  } catch (const json::exception& e) {
    return invalidArgument(std::string("container inspect: malformed JSON: ") + e.what());
  }
}

Result<std::vector<ContainerState>> parseContainerList(std::string_view json_text) {
  try {
    json j = json::parse(json_text);
    if (!j.is_array()) return invalidArgument("container list: expected a JSON array");
    std::vector<ContainerState> out;
    for (const json& c : j) {
      if (c.is_object()) out.push_back(stateFrom(c));
    }
    return out;
  } catch (const json::exception& e) {
    return invalidArgument(std::string("container list: malformed JSON: ") + e.what());
  }
}

Result<TaskStats> parseStats(std::string_view json_text) {
  try {
    json j = json::parse(json_text);
    if (!j.is_object()) return invalidArgument("container stats: expected a JSON object");
    TaskStats s;
    if (auto m = j.find("memory_stats"); m != j.end() && m->is_object()) {
      s.memory_bytes = numberOr<uint64_t>(*m, "usage", 0);
    }
    if (auto c = j.find("cpu_stats"); c != j.end() && c->is_object()) {
      if (auto u = c->find("cpu_usage"); u != c->end() && u->is_object()) {
        s.cpu_usage_ns = numberOr<uint64_t>(*u, "total_usage", 0);
      }
      if (auto t = c->find("throttling_data"); t != c->end() && t->is_object()) {
        s.throttled_periods = numberOr<uint64_t>(*t, "throttled_periods", 0);
      }
    }
    if (auto p = j.find("pids_stats"); p != j.end() && p->is_object()) {
      s.processes = numberOr<int>(*p, "current", 0);
    }
    return s;
  } catch (const json::exception& e) {
    return invalidArgument(std::string("container stats: malformed JSON: ") + e.what());
  }
}

std::optional<int64_t> parseRfc3339Nanos(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  auto digits = [&](size_t at, size_t n) -> std::optional<int> {
    if (at + n > s.size()) return std::nullopt;
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  auto Y = digits(0, 4), M = digits(5, 2), D = digits(8, 2), h = digits(11, 2), m = digits(14, 2),
       sec = digits(17, 2);
  if (!Y || !M || !D || !h || !m || !sec || *M < 1 || *M > 12 || *D < 1 || *D > 31 || *h > 23 ||
      *m > 59 || *sec > 60) {
    return std::nullopt;
  }
  size_t i = 19;
  int64_t frac = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (n < 9) {
        frac = frac * 10 + (s[i] - '0');
        ++n;
      }
      ++i;
    }
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) frac *= 10;
  }
  int64_t offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    auto oh = digits(i + 1, 2), om = digits(i + 4, 2);
    if (!oh || !om || *oh > 23 || *om > 59) return std::nullopt;
    offset = (*oh * 3600 + *om * 60) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  // Nanoseconds since 1970 fit in 64 bits until 2262; before 1970 is the engines' "never"
  // (0001-01-01T00:00:00Z), kept as 0.
  if (*Y > 2261) return std::nullopt;
  if (*Y < 1970) return 0;
  std::tm tm{};
  tm.tm_year = *Y - 1900;
  tm.tm_mon = *M - 1;
  tm.tm_mday = *D;
  tm.tm_hour = *h;
  tm.tm_min = *m;
  tm.tm_sec = *sec;
  int64_t secs = static_cast<int64_t>(::timegm(&tm)) - offset;
  return secs * 1'000'000'000 + frac;
}

std::optional<TimePoint> parseRfc3339(std::string_view text) {
  auto ns = parseRfc3339Nanos(text);
  if (!ns || *ns <= 0) return std::nullopt;  // "0001-01-01T00:00:00Z" means "never"
  return fromUnixMillis(*ns / 1'000'000);
}

LogDemuxer::LogDemuxer(Cursor start, bool timestamps, Sink sink, size_t max_frame)
    : cursor_(start), skip_(start), timestamps_(timestamps), sink_(std::move(sink)), max_frame_(max_frame) {}

Status LogDemuxer::feed(std::string_view data) {
  pending_.append(data);
  size_t at = 0;
  while (pending_.size() - at >= 8) {
    const auto* h = reinterpret_cast<const unsigned char*>(pending_.data() + at);
    if (h[0] > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0) {
      pending_.clear();
      return invalidArgument("container logs: malformed frame header");
    }
    size_t len = (size_t{h[4]} << 24) | (size_t{h[5]} << 16) | (size_t{h[6]} << 8) | size_t{h[7]};
    if (len > max_frame_) {
      pending_.clear();
      return invalidArgument("container logs: a frame of " + std::to_string(len) +
                             " bytes is over the limit of " + std::to_string(max_frame_));
    }
    if (pending_.size() - at - 8 < len) break;
    frame(h[0] == 2 ? 2 : 1, std::string_view(pending_).substr(at + 8, len));
    at += 8 + len;
  }
  pending_.erase(0, at);
  return Status::ok();
}

void LogDemuxer::frame(int stream, std::string_view payload) {
  if (timestamps_) {
    size_t space = payload.find(' ');
    std::optional<int64_t> ns;
    if (space != std::string_view::npos) ns = parseRfc3339Nanos(payload.substr(0, space));
    if (ns) {
      payload.remove_prefix(space + 1);
      if (*ns < skip_.nanos) return;          // an earlier follower wrote it
      if (*ns == skip_.nanos && skip_.count > 0) {
        --skip_.count;
        return;
      }
      if (*ns == cursor_.nanos) {
        ++cursor_.count;
      } else {
        cursor_ = {*ns, 1};
      }
    }
  }
  sink_(stream, payload);
}

std::string encodeCursor(const LogDemuxer::Cursor& c) {
  return std::to_string(c.nanos) + " " + std::to_string(c.count) + "\n";
}

LogDemuxer::Cursor decodeCursor(std::string_view text) {
  LogDemuxer::Cursor c;
  size_t space = text.find(' ');
  if (space == std::string_view::npos) return {};
  auto a = std::from_chars(text.data(), text.data() + space, c.nanos);
  std::string_view rest = text.substr(space + 1);
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.remove_suffix(1);
  auto b = std::from_chars(rest.data(), rest.data() + rest.size(), c.count);
  if (a.ec != std::errc() || b.ec != std::errc() || b.ptr != rest.data() + rest.size() ||
      c.nanos < 0 || c.count < 0) {
    return {};
  }
  return c;
}

void PullProgress::feed(std::string_view data) {
  buffer_.append(data);
  size_t nl;
  while ((nl = buffer_.find('\n')) != std::string::npos) {
    std::string text = buffer_.substr(0, nl);
    buffer_.erase(0, nl + 1);
    line(text);
  }
  if (buffer_.size() > (1u << 20)) buffer_.clear();  // a line that never ends: ignore it
}

void PullProgress::finish() {
  if (!buffer_.empty()) line(buffer_);
  buffer_.clear();
}

void PullProgress::line(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text.empty()) return;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return;
  if (auto e = j.find("error"); e != j.end() && e->is_string() && !error_) {
    error_ = e->get<std::string>();
    return;
  }
  std::string status = stringOr(j, "status");
  if (!status.empty()) last_status_ = status.size() > 120 ? status.substr(0, 120) : status;
  std::string id = stringOr(j, "id");
  auto detail = j.find("progressDetail");
  if (!id.empty() && detail != j.end() && detail->is_object() && layers_.size() < 512) {
    uint64_t cur = numberOr<uint64_t>(*detail, "current", 0);
    uint64_t tot = numberOr<uint64_t>(*detail, "total", 0);
    auto& l = layers_[id];
    if (tot > 0) l = {cur, tot};
  }
}

std::string PullProgress::summary() const {
  uint64_t cur = 0, tot = 0;
  for (const auto& [_, l] : layers_) {
    cur += std::min(l.first, l.second);
    tot += l.second;
  }
  if (tot > 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%zu layer%s, %.1f of %.1f MB", layers_.size(),
                  layers_.size() == 1 ? "" : "s", cur / 1e6, tot / 1e6);
    return buf;
  }
  return last_status_.empty() ? "resolving" : last_status_;
}

}  // namespace baton::drivers::docker
