// The docker driver: its pure parts (image references, the create request, inspect answers,
// the log stream, pull progress) and the conformance suite against a real engine (Podman's
// Docker API, started by testing/podman_service.h; skipped with the reason when podman is
// missing), on the engine's network and, with root and iproute2, in networks of their own.
#include "drivers/docker_driver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "drivers/docker_protocol.h"
#include "drivers/exec_internal.h"
#include "drivers/instance_net.h"
#include "drivers/testing/driver_conformance.h"
#include "drivers/testing/podman_service.h"

namespace baton::drivers {
namespace {

using docker::LogDemuxer;
using nlohmann::json;

// --- image references ---------------------------------------------------------------------

TEST(ImageRefTest, AcceptsWhatDockerAccepts) {
  struct Case {
    const char* text;
    const char* name;
    const char* tag;
    const char* digest;
  } cases[] = {
      {"nginx", "nginx", "latest", ""},
      {"nginx:1.25", "nginx", "1.25", ""},
      {"docker.io/library/nginx:1.25-alpine", "docker.io/library/nginx", "1.25-alpine", ""},
      {"localhost:5000/team/app_x:v2", "localhost:5000/team/app_x", "v2", ""},
      {"localhost/baton/busybox:test", "localhost/baton/busybox", "test", ""},
      {"ghcr.io/a-b/c__d.e", "ghcr.io/a-b/c__d.e", "latest", ""},
      {"alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
       "alpine", "", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
  };
  for (const auto& c : cases) {
    auto ref = docker::parseImageRef(c.text);
    ASSERT_TRUE(ref.isOk()) << c.text << ": " << ref.status().toString();
    EXPECT_EQ(ref->name, c.name) << c.text;
    EXPECT_EQ(ref->tag, c.tag) << c.text;
    EXPECT_EQ(ref->digest, c.digest) << c.text;
  }
  EXPECT_EQ(docker::parseImageRef("nginx")->text(), "nginx:latest");
}

TEST(ImageRefTest, RefusesWithAReason) {
  struct Case {
    const char* text;
    const char* why;
  } cases[] = {
      {"", "empty reference"},
      {"Nginx", "must be lower case"},
      {"nginx:", "a tag is"},
      {"nginx:-x", "a tag is"},
      {"ngi nx", "space"},
      {"a//b", "invalid repository name component"},
      {"-a/b", "invalid repository name component"},
      {"a@sha256:12", "at least 32"},
      {"a@:0123456789abcdef0123456789abcdef", "algorithm:hex"},
      {"exa_mple.com/a", "invalid registry host"},
      {":tag", "missing the repository name"},
  };
  for (const auto& c : cases) {
    auto ref = docker::parseImageRef(c.text);
    ASSERT_FALSE(ref.isOk()) << c.text;
    EXPECT_NE(ref.status().message().find(c.why), std::string::npos)
        << c.text << ": " << ref.status().message();
  }
}

// --- the create request --------------------------------------------------------------------

TaskConfig sampleTask() {
  TaskConfig t;
  t.instance_id = "shop-web-1";
  t.spec.image = "localhost/baton/busybox:test";
  t.spec.run = {"httpd", "-f", "-p", "${PORT}"};
  t.spec.memory = 64ull << 20;
  t.spec.cpu = 0.5;
  t.spec.cpu_limit = 1.5;
  t.env = {{"PORT", "8080"}, {"GREETING", "hi"}};
  t.port = 31000;
  t.container_port = 8080;
  t.uid = 1879048200;
  t.gid = 1879048200;
  t.pids_max = 256;
  t.log_dir = "/var/lib/baton/logs/shop/web/shop-web-1";
  return t;
}

TEST(CreateBodyTest, CarriesTheManifestAndLeastPrivilege) {
  docker::CreateOptions o;
  o.owner = "node-a";
  o.nofile = 4096;
  o.nproc = 256;
  auto body = docker::createBody(sampleTask(), o);
  ASSERT_TRUE(body.isOk()) << body.status().toString();
  json j = json::parse(*body);
  EXPECT_EQ(j["Image"], "localhost/baton/busybox:test");
  EXPECT_EQ(j["Cmd"], json({"httpd", "-f", "-p", "8080"}));
  EXPECT_NE(std::find(j["Env"].begin(), j["Env"].end(), "GREETING=hi"), j["Env"].end());
  EXPECT_EQ(j["User"], "1879048200:1879048200");
  EXPECT_EQ(j["Labels"][docker::kLabelInstance], "shop-web-1");
  EXPECT_EQ(j["Labels"][docker::kLabelOwner], "node-a");
  json h = j["HostConfig"];
  EXPECT_EQ(h["PortBindings"]["8080/tcp"][0]["HostIp"], "127.0.0.1");
  EXPECT_EQ(h["PortBindings"]["8080/tcp"][0]["HostPort"], "31000");
  EXPECT_EQ(h["Memory"], 64ll << 20);
  EXPECT_EQ(h["MemorySwap"], 64ll << 20);
  EXPECT_EQ(h["CpuShares"], 512);
  EXPECT_EQ(h["NanoCpus"], 1'500'000'000);
  EXPECT_EQ(h["PidsLimit"], 256);
  EXPECT_EQ(h["ReadonlyRootfs"], true);
  EXPECT_TRUE(h["Tmpfs"].contains("/tmp"));
  EXPECT_EQ(h["SecurityOpt"], json({"no-new-privileges"}));
  EXPECT_EQ(h["CapDrop"], json({"ALL"}));
  EXPECT_EQ(h["Ulimits"][0]["Name"], "nofile");
  EXPECT_EQ(h["Ulimits"][0]["Hard"], 4096);
  EXPECT_EQ(h["RestartPolicy"]["Name"], "no");
}

// In a network of its own: no network from the engine (only `lo`), nothing published, the
// namespace's name and the port in labels (for recover()), the mesh's resolv.conf mounted.
TEST(CreateBodyTest, IsolatedHasNoNetworkAndPublishesNothing) {
  docker::CreateOptions o;
  o.netns = "baton-shop-web-1";
  o.resolv_conf_path = "/var/lib/baton/docker/shop-web-1/resolv.conf";
  json j = json::parse(*docker::createBody(sampleTask(), o));
  json h = j["HostConfig"];
  EXPECT_EQ(h["NetworkMode"], "none");
  EXPECT_FALSE(h.contains("PortBindings")) << h.dump();
  EXPECT_FALSE(j.contains("ExposedPorts")) << j.dump();
  EXPECT_EQ(j["Labels"][docker::kLabelNetns], "baton-shop-web-1");
  EXPECT_EQ(j["Labels"][docker::kLabelPort], "8080");  // the container port, not the node's
  ASSERT_EQ(h["Mounts"].size(), 1u);
  EXPECT_EQ(h["Mounts"][0]["Type"], "bind");
  EXPECT_EQ(h["Mounts"][0]["Source"], "/var/lib/baton/docker/shop-web-1/resolv.conf");
  EXPECT_EQ(h["Mounts"][0]["Target"], "/etc/resolv.conf");
  EXPECT_EQ(h["Mounts"][0]["ReadOnly"], true);

  // Without a container port the service listens on the node's port number.
  TaskConfig t = sampleTask();
  t.container_port = 0;
  EXPECT_EQ(json::parse(*docker::createBody(t, o))["Labels"][docker::kLabelPort], "31000");
  // Without a netns: the engine's network, as before, and no mounts.
  json plain = json::parse(*docker::createBody(sampleTask(), {}));
  EXPECT_FALSE(plain["HostConfig"].contains("NetworkMode"));
  EXPECT_FALSE(plain["HostConfig"].contains("Mounts"));
  EXPECT_FALSE(plain["Labels"].contains(docker::kLabelNetns));
}

TEST(CreateBodyTest, WritableRootImageUserAndUnknownVariable) {
  TaskConfig t = sampleTask();
  t.uid = t.gid = -1;
  t.spec.user = "root";
  t.spec.read_only = false;
  t.spec.run.clear();
  json j = json::parse(*docker::createBody(t, {}));
  EXPECT_EQ(j["User"], "root");
  EXPECT_FALSE(j.contains("Cmd"));  // the image's own command
  EXPECT_EQ(j["HostConfig"]["ReadonlyRootfs"], false);
  EXPECT_FALSE(j["HostConfig"].contains("Tmpfs"));
  EXPECT_FALSE(j["HostConfig"].contains("CapDrop"));  // root keeps the engine's default set

  t.spec.run = {"sh", "-c", "echo ${NOPE}"};
  auto bad = docker::createBody(t, {});
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("${NOPE}"), std::string::npos);
}

// --- engine answers -----------------------------------------------------------------------

TEST(InspectTest, ReadsStateLabelsAndTimes) {
  auto c = docker::parseInspect(R"({"Id":"abc","Name":"/baton-x","State":{"Status":"exited",
      "Running":false,"Pid":0,"ExitCode":137,"OOMKilled":true,"Error":"",
      "StartedAt":"2026-12-04T19:08:11.231325529Z","FinishedAt":"2026-12-04T19:08:12Z"},
      "Config":{"Labels":{"io.baton.instance":"x"}}})");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->id, "abc");
  EXPECT_EQ(c->name, "baton-x");
  EXPECT_FALSE(c->running);
  EXPECT_EQ(c->exit_code, 137);
  EXPECT_TRUE(c->oom_killed);
  EXPECT_EQ(toUnixMillis(c->started_at), 1796411291231);
  EXPECT_EQ(c->labels["io.baton.instance"], "x");
  // "Never" is the zero time, not a date in year 1.
  auto never = docker::parseInspect(R"({"State":{"StartedAt":"0001-01-01T00:00:00Z"}})");
  EXPECT_EQ(never->started_at.time_since_epoch().count(), 0);
  EXPECT_FALSE(docker::parseInspect("[1]").isOk());
  EXPECT_FALSE(docker::parseInspect("{").isOk());
}

TEST(InspectTest, Rfc3339) {
  EXPECT_EQ(*docker::parseRfc3339Nanos("1970-01-01T00:00:01Z"), 1'000'000'000);
  EXPECT_EQ(*docker::parseRfc3339Nanos("1970-01-01T01:00:01.5+01:00"), 1'500'000'000);
  EXPECT_EQ(*docker::parseRfc3339Nanos("1970-01-01T00:00:00.000000001Z"), 1);
  EXPECT_EQ(*docker::parseRfc3339Nanos("0001-01-01T00:00:00Z"), 0);  // "never"
  // Past what 64-bit nanoseconds hold (the fuzzer's find: 4052 overflowed).
  EXPECT_FALSE(docker::parseRfc3339Nanos("4052-12-04T19:08:11.2Z").has_value());
  for (const char* bad : {"", "1970-01-01", "1970-01-01T00:00:00", "1970-13-01T00:00:00Z",
                          "1970-01-01T00:00:00.Z", "1970-01-01T00:00:00Zjunk"}) {
    EXPECT_FALSE(docker::parseRfc3339Nanos(bad).has_value()) << bad;
  }
}

TEST(StatsTest, ReadsMemoryCpuPids) {
  auto s = docker::parseStats(R"({"memory_stats":{"usage":1234},"pids_stats":{"current":3},
      "cpu_stats":{"cpu_usage":{"total_usage":99},"throttling_data":{"throttled_periods":4}}})");
  ASSERT_TRUE(s.isOk());
  EXPECT_EQ(s->memory_bytes, 1234u);
  EXPECT_EQ(s->processes, 3);
  EXPECT_EQ(s->cpu_usage_ns, 99u);
  EXPECT_EQ(s->throttled_periods, 4u);
}

// --- the log stream -----------------------------------------------------------------------

std::string frame(int stream, std::string_view payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  uint32_t n = static_cast<uint32_t>(payload.size());
  f[4] = static_cast<char>(n >> 24);
  f[5] = static_cast<char>(n >> 16);
  f[6] = static_cast<char>(n >> 8);
  f[7] = static_cast<char>(n);
  return f + std::string(payload);
}

TEST(LogDemuxerTest, SplitsStreamsAcrossArbitraryChunks) {
  std::string out, err;
  LogDemuxer d({}, false, [&](int s, std::string_view p) { (s == 2 ? err : out).append(p); });
  std::string data = frame(1, "a\n") + frame(2, "b\n") + frame(1, "c\n");
  for (char c : data) ASSERT_TRUE(d.feed(std::string_view(&c, 1)).isOk());
  EXPECT_EQ(out, "a\nc\n");
  EXPECT_EQ(err, "b\n");
}

TEST(LogDemuxerTest, ResumesAfterTheCursorWithoutDuplicates) {
  std::string ts1 = "2026-12-04T19:08:11Z ", ts2 = "2026-12-04T19:08:12Z ";
  std::string stream = frame(1, ts1 + "one\n") + frame(1, ts2 + "two\n") +
                       frame(2, ts2 + "three\n") + frame(1, ts2 + "four\n");
  std::string first;
  LogDemuxer a({}, true, [&](int, std::string_view p) { first.append(p); });
  // The first follower saw the stream up to "three" and stopped.
  std::string part = frame(1, ts1 + "one\n") + frame(1, ts2 + "two\n") + frame(2, ts2 + "three\n");
  ASSERT_TRUE(a.feed(part).isOk());
  EXPECT_EQ(first, "one\ntwo\nthree\n");
  EXPECT_EQ(a.cursor().count, 2);
  // Its successor asks for logs since that second: it gets "two" and "three" again, skips them.
  std::string second;
  LogDemuxer b(docker::decodeCursor(docker::encodeCursor(a.cursor())), true,
               [&](int, std::string_view p) { second.append(p); });
  ASSERT_TRUE(b.feed(frame(1, ts2 + "two\n") + frame(2, ts2 + "three\n") + frame(1, ts2 + "four\n")).isOk());
  EXPECT_EQ(second, "four\n");
  EXPECT_EQ(b.cursor().count, 3);
}

TEST(LogDemuxerTest, RefusesMalformedAndHugeFrames) {
  LogDemuxer d({}, false, [](int, std::string_view) {}, 1024);
  EXPECT_FALSE(d.feed(std::string("\x05\0\0\0\0\0\0\x01x", 9)).isOk());
  LogDemuxer e({}, false, [](int, std::string_view) {}, 1024);
  EXPECT_FALSE(e.feed(std::string("\x01\0\0\0\0\0\x10\x00", 8)).isOk());
  EXPECT_EQ(docker::decodeCursor("junk"), LogDemuxer::Cursor{});
  EXPECT_EQ(docker::decodeCursor("-1 2"), LogDemuxer::Cursor{});
}

TEST(PullProgressTest, SumsLayersAndKeepsTheFirstError) {
  docker::PullProgress p;
  EXPECT_EQ(p.summary(), "resolving");
  p.feed("{\"status\":\"Pulling fs layer\",\"id\":\"a\"}\n{\"status\":\"Downloading\",\"id\":\"a\","
         "\"progressDetail\":{\"current\":1000000,\"total\":4000000}}\n{\"status\":\"Downl");
  p.feed("oading\",\"id\":\"b\",\"progressDetail\":{\"current\":0,\"total\":2000000}}\n");
  EXPECT_EQ(p.summary(), "2 layers, 1.0 of 6.0 MB");
  EXPECT_FALSE(p.error().has_value());
  p.feed("not json\n{\"error\":\"manifest unknown\"}\n{\"error\":\"later\"}");
  p.finish();
  ASSERT_TRUE(p.error().has_value());
  EXPECT_EQ(*p.error(), "manifest unknown");
}

// --- the engine client against an engine that stays silent -------------------------------

// Accepts one connection on a unix socket, reads the request, sends `prelude` and then nothing
// until the test is over (or `give_up` has passed, when it closes the connection).
class SilentEngine {
 public:
  SilentEngine(std::string prelude, std::chrono::seconds give_up) {
    char tmpl[] = "/tmp/baton-silent-engine-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/engine.sock";
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    ok_ = ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
          ::listen(listener_, 4) == 0;
    thread_ = std::thread([this, prelude = std::move(prelude), give_up] {
      int c = ::accept(listener_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      (void)::recv(c, buf, sizeof buf, 0);
      (void)::send(c, prelude.data(), prelude.size(), MSG_NOSIGNAL);
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, give_up, [&] { return done_; });
      ::close(c);
    });
  }
  ~SilentEngine() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
    std::filesystem::remove_all(dir_);
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
  int listener_ = -1;
  bool ok_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Podman, now and then, holds the log stream of a silent container that has already exited open
// without even a status line. The stream must end at its idle timeout (so that the follower asks
// whether the container still runs), not wait for the request timeout or the engine.
TEST(EngineClientTest, AStreamWithNoStatusLineEndsAtItsIdleTimeout) {
  for (std::string prelude : {std::string(), std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                                                          "chunked\r\n\r\n")}) {
    SilentEngine engine(prelude, std::chrono::seconds(20));
    ASSERT_TRUE(engine.ok());
    docker::EngineClient client({.socket = engine.path(), .timeout = Duration(60'000)});
    std::string seen;
    auto r = client.stream(
        "GET", "/containers/x/logs?follow=1", {},
        [&](std::string_view data) {
          seen.append(data);
          return true;
        },
        Duration(200));
    // Before the fix the call waited for the request timeout, and the engine's close after
    // 20 s made it an I/O error ("closed the connection early").
    ASSERT_FALSE(r.isOk()) << "prelude: " << prelude.size() << " bytes";
    EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status().toString();
    EXPECT_EQ(seen, "");
  }
}

// --- conformance against a real engine ------------------------------------------------------

bool canMakeNamespaces() { return ::geteuid() == 0 && runCommand({"ip", "netns", "list"}).isOk(); }

constexpr const char* kResolvConf = "nameserver 169.254.127.254\nsearch service.baton\n";

// Isolated: every driver it makes shares one InstanceNetworks (as the agent's drivers do), with
// a namespace prefix of this test process's own.
class DockerHarness : public testing::DriverHarness {
 public:
  explicit DockerHarness(bool isolated = false) : isolated_(isolated) {
    engine_ = testing::engineForTests(&why_);
    if (isolated_ && canMakeNamespaces()) networks_ = std::make_unique<InstanceNetworks>();
  }
  std::string name() const override { return isolated_ ? "DockerIsolated" : "Docker"; }
  std::unique_ptr<Driver> makeDriver() override { return makeDriverWith(networks_.get()); }
  std::unique_ptr<Driver> makeDriverWith(InstanceNetworks* networks) {
    if (!engine_) return nullptr;
    DockerDriverOptions o;
    o.engine.socket = engine_->socket;
    o.state_dir = dir() / "state";
    o.owner = "test-" + std::to_string(::getpid());
    o.networks = networks;
    o.netns_prefix = netnsPrefix();
    if (networks) o.resolv_conf = kResolvConf;
    return std::make_unique<DockerDriver>(o);
  }
  std::string netnsPrefix() const { return "baton-dt" + std::to_string(::getpid()) + "-"; }
  TaskConfig shellTask(const std::string& id, const std::string& script,
                       const std::map<std::string, std::string>& env, int port) override {
    TaskConfig t = base(id);
    t.spec.run = {"sh", "-c", script};
    for (const auto& [k, v] : env) t.env[k] = v;
    t.env["PORT"] = std::to_string(port);
    return t;
  }
  TaskConfig missingProgramTask(const std::string& id) override {
    TaskConfig t = base(id);
    t.spec.run = {"nosuch-program-docker"};
    return t;
  }
  std::optional<TaskConfig> listenerTask(const std::string& id, int port) override {
    TaskConfig t = base(id);
    t.spec.run = {"httpd", "-f", "-p", "${PORT}", "-h", "/www"};
    t.env["PORT"] = std::to_string(port);
    t.port = port;
    return t;
  }
  // The suite passes host pids (the driver's) and pids a service printed with $$ (its own pid
  // namespace's): a process of a container is alive when either matches.
  bool serviceProcessAlive(int pid) override {
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      std::string n = entry.path().filename();
      if (n.empty() || !std::isdigit(static_cast<unsigned char>(n[0]))) continue;
      std::ifstream status(entry.path() / "status");
      std::string line, state, nspid;
      while (std::getline(status, line)) {
        if (line.rfind("State:", 0) == 0) state = line;
        if (line.rfind("NSpid:", 0) == 0) nspid = line.substr(6);
      }
      std::istringstream ids(nspid);
      std::vector<int> all;
      for (int v; ids >> v;) all.push_back(v);
      if (all.size() < 2) continue;  // not in a container's pid namespace
      if (state.find('Z') != std::string::npos || state.find('X') != std::string::npos) continue;
      if (all.front() == pid || all.back() == pid) return true;
    }
    return false;
  }
  void tearDown() override {
    if (auto d = makeDriver()) {
      if (auto tasks = d->recover()) {
        for (const auto& t : *tasks) (void)d->destroy(t.instance_id);
      }
    }
    if (networks_) {
      if (auto left = networks_->list(netnsPrefix())) {
        for (const auto& l : *left) (void)networks_->remove(l.netns);
      }
    }
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
  std::string unavailable() const override {
    if (!engine_) return why_;
    if (isolated_ && !networks_) return "networks of their own need root and iproute2 (ip netns)";
    return "";
  }
  InstanceNetworks* networks() { return networks_.get(); }
  std::filesystem::path stateDir() { return dir() / "state"; }

 private:
  TaskConfig base(const std::string& id) {
    TaskConfig t;
    t.instance_id = id;
    t.spec.driver = "docker";
    t.spec.image = engine_ ? engine_->image : "";
    t.spec.memory = 64ull << 20;
    t.env = {{"PATH", "/bin"}};
    t.log_dir = dir() / "logs" / id;
    t.uid = t.gid = 65534;  // unprivileged, as the node runs them
    t.pids_max = 128;
    return t;
  }
  bool isolated_;
  // Made on first use: the suite also makes harnesses only to name its tests.
  const std::filesystem::path& dir() {
    if (dir_.empty()) {
      char tmpl[] = "/tmp/baton-docker-test-XXXXXX";
      dir_ = ::mkdtemp(tmpl);
      std::filesystem::permissions(dir_, std::filesystem::perms::all);  // the service's logs
    }
    return dir_;
  }
  std::filesystem::path dir_;
  std::optional<testing::EngineForTests> engine_;
  std::string why_;
  std::unique_ptr<InstanceNetworks> networks_;
};

// Records the `ip` commands the driver has InstanceNetworks run (a batch as its lines, each
// with the batch's prefix) and answers `ip netns list` and `ip -o -4 addr show` from what was
// made, so that the driver's use of its networks is seen without root.
struct IpRecorder {
  Result<std::string> operator()(const std::vector<std::string>& argv) {
    std::lock_guard lock(mu);
    if (argv.size() >= 3 && argv[argv.size() - 2] == "-batch") {
      std::ifstream in(argv.back());
      for (std::string line; std::getline(in, line);) {
        std::vector<std::string> one(argv.begin(), argv.end() - 2);
        std::istringstream words(line);
        for (std::string w; words >> w;) one.push_back(w);
        record(one);
      }
      return std::string();
    }
    return record(argv);
  }
  std::string record(const std::vector<std::string>& argv) {
    calls.push_back(argv);
    if (argv == std::vector<std::string>{"ip", "netns", "list"}) return netns;
    if (argv == std::vector<std::string>{"ip", "-o", "-4", "addr", "show"}) return addrs;
    if (argv.size() >= 5 && argv[1] == "netns" && argv[2] == "attach") netns += argv[3] + "\n";
    if (argv.size() >= 6 && argv[1] == "addr" && argv[2] == "add" && argv[5].rfind("bt", 0) == 0) {
      addrs += "9: " + argv[5] + "    inet " + argv[3] + " scope global\n";
    }
    return {};
  }
  bool called(const std::vector<std::string>& argv) {
    std::lock_guard lock(mu);
    return std::find(calls.begin(), calls.end(), argv) != calls.end();
  }
  std::mutex mu;
  std::string netns, addrs;
  std::vector<std::vector<std::string>> calls;
};

// An HTTP GET of / at address:port, the status line and body; "" when nothing answers.
std::string httpGet(const std::string& address, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
        out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

using testing::DriverConformanceTest;
using testing::DriverHarnessFactory;

// An agent that could not reach its engine at start (recover() failed) starts an instance whose
// container still runs: the start is kAlreadyExists and the container is adopted, as the node
// expects (it inspects the id next).
TEST(DockerDriverTest, StartOfAContainerThatStillRunsAdoptsIt) {
  DockerHarness harness;
  if (!harness.unavailable().empty()) GTEST_SKIP() << harness.unavailable();
  TaskConfig task = harness.shellTask("adopt-me", "echo ready; exec sleep 1000", {}, 0);
  auto first = harness.makeDriver();
  auto started = first->start(task);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  first.reset();  // the agent goes away; the container stays

  auto second = harness.makeDriver();  // and comes back without recover()
  auto again = second->start(task);
  ASSERT_FALSE(again.isOk());
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  auto inspected = second->inspect("adopt-me");
  ASSERT_TRUE(inspected.isOk()) << inspected.status().toString();
  EXPECT_EQ(inspected->pid, started->pid);
  EXPECT_FALSE(inspected->exit.has_value());
  EXPECT_TRUE(second->stop("adopt-me", Duration(0)).isOk());
  EXPECT_TRUE(second->wait("adopt-me", Duration(5000)).isOk());
  second.reset();
  harness.tearDown();
}

// With networks (a fake runner: the commands, not their effect), a container is made with no
// network; once it runs its own namespace is attached by its main process's pid, and its
// address is that link's; recover() finds the link again, and destroy() removes it.
TEST(DockerDriverTest, IsolatedStartAttachesTheContainersNamespace) {
  DockerHarness harness;
  if (!harness.unavailable().empty()) GTEST_SKIP() << harness.unavailable();
  auto ip = std::make_shared<IpRecorder>();
  InstanceNetworks nets([ip](const std::vector<std::string>& argv) { return (*ip)(argv); });
  auto driver = harness.makeDriverWith(&nets);
  TaskConfig task = harness.shellTask("fake-net", "exec sleep 1000", {}, 8080);
  task.port = 31000;  // the node's side: unused in a network of its own
  task.container_port = 8080;
  auto started = driver->start(task);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  const std::string netns = harness.netnsPrefix() + "fake-net";
  EXPECT_TRUE(ip->called({"ip", "netns", "attach", netns, std::to_string(started->pid)}))
      << "pid " << started->pid;
  const InstanceLink link = linkFor(netns, *allocateSlot(netns, {}));
  EXPECT_EQ(started->address, link.instance_ip);
  EXPECT_EQ(started->port, 8080);
  // The mesh's resolv.conf, for the container's user alone.
  auto resolv = harness.stateDir() / "fake-net" / "resolv.conf";
  EXPECT_EQ(exec::readWholeFile(resolv).valueOr(""), kResolvConf);
  struct stat st {};
  ASSERT_EQ(::stat(resolv.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0400u);
  EXPECT_EQ(st.st_uid, 65534u);

  driver.reset();  // an agent restart
  auto second = harness.makeDriverWith(&nets);
  auto tasks = second->recover();
  ASSERT_TRUE(tasks.isOk()) << tasks.status().toString();
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].address, link.instance_ip);
  EXPECT_EQ((*tasks)[0].port, 8080);
  EXPECT_FALSE((*tasks)[0].exit.has_value());

  ASSERT_TRUE(second->destroy("fake-net").isOk());
  EXPECT_TRUE(ip->called({"ip", "link", "del", link.host_ifname}));
  EXPECT_TRUE(ip->called({"ip", "netns", "del", netns}));
  second.reset();
  harness.tearDown();
}

// With root: the real thing. The container is reached at its own address (not published on
// the host), resolves with the mesh's DNS and has no default route; an agent restart finds the
// same address; destroy() removes the namespace; a container whose namespace was lost meanwhile
// is not reported at an address that leads nowhere: it is killed and reported ended.
TEST(DockerDriverTest, IsolatedContainerIsReachedAtItsOwnAddressAndRecovered) {
  DockerHarness harness(true);
  if (!harness.unavailable().empty()) GTEST_SKIP() << harness.unavailable();
  auto driver = harness.makeDriver();
  TaskConfig task = *harness.listenerTask("iso-web", 8080);
  task.container_port = 8080;
  task.port = 31002;
  auto started = driver->start(task);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  auto ip = parseIpv4(started->address);
  ASSERT_TRUE(ip && slotOf(*ip)) << started->address;
  EXPECT_EQ(started->port, 8080);
  std::string answer;
  for (int i = 0; i < 200 && answer.find("hello from a container") == std::string::npos; ++i) {
    answer = httpGet(started->address, 8080);  // httpd may still be starting
    if (answer.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(answer.find("hello from a container"), std::string::npos) << answer;
  EXPECT_EQ(httpGet("127.0.0.1", 31002), "") << "nothing is published on the host";
  auto resolv =
      exec::readWholeFile("/proc/" + std::to_string(started->pid) + "/root/etc/resolv.conf");
  EXPECT_EQ(resolv.valueOr(""), kResolvConf);
  const std::string netns = harness.netnsPrefix() + "iso-web";
  auto routes = runCommand({"ip", "-n", netns, "route", "show"});
  ASSERT_TRUE(routes.isOk()) << routes.status().toString();
  EXPECT_NE(routes->find("169.254.64.0/18 via"), std::string::npos) << *routes;
  EXPECT_EQ(routes->find("default"), std::string::npos) << *routes;

  driver.reset();
  auto second = harness.makeDriver();
  auto tasks = second->recover();
  ASSERT_TRUE(tasks.isOk()) << tasks.status().toString();
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].address, started->address);
  EXPECT_EQ((*tasks)[0].port, 8080);
  EXPECT_FALSE((*tasks)[0].exit.has_value());
  EXPECT_NE(httpGet(started->address, 8080).find("hello from a container"), std::string::npos);
  ASSERT_TRUE(second->destroy("iso-web").isOk());
  auto listed = harness.networks()->find(netns);
  ASSERT_TRUE(listed.isOk());
  EXPECT_FALSE(listed->has_value()) << "the namespace outlived its container";

  TaskConfig lost = harness.shellTask("iso-lost", "exec sleep 1000", {}, 8080);
  auto lost_started = second->start(lost);
  ASSERT_TRUE(lost_started.isOk()) << lost_started.status().toString();
  ASSERT_TRUE(runCommand({"ip", "netns", "del", harness.netnsPrefix() + "iso-lost"}).isOk());
  second.reset();
  auto third = harness.makeDriver();
  auto after = third->recover();
  ASSERT_TRUE(after.isOk()) << after.status().toString();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_TRUE((*after)[0].exit.has_value()) << "reported at " << (*after)[0].address;
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = !harness.serviceProcessAlive(lost_started->pid);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(gone) << "the container of a lost network still runs";
  EXPECT_TRUE(third->destroy("iso-lost").isOk());
  third.reset();
  harness.tearDown();
}

INSTANTIATE_TEST_SUITE_P(
    Docker, DriverConformanceTest,
    ::testing::Values(DriverHarnessFactory([] { return std::make_unique<DockerHarness>(); }),
                      DriverHarnessFactory([] { return std::make_unique<DockerHarness>(true); })),
    testing::driverHarnessName);

}  // namespace baton::drivers
