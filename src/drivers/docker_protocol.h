// The docker driver's pure parts (no sockets): image references, the container-create request
// built from a TaskConfig, container state from an inspect answer, the multiplexed log stream,
// and pull progress. Everything here reads bytes from the engine or a manifest, so every
// parser is fuzzed (docker_fuzz.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"
#include "drivers/driver.h"
#include "model/image_ref.h"

namespace baton::drivers::docker {

using model::ImageRef;
using model::parseImageRef;

// Labels that tie a container to its instance (and to the agent that runs it).
inline constexpr const char* kLabelInstance = "io.baton.instance";
inline constexpr const char* kLabelOwner = "io.baton.owner";
inline constexpr const char* kLabelLogDir = "io.baton.log-dir";
inline constexpr const char* kLabelLogMaxBytes = "io.baton.log-max-bytes";
inline constexpr const char* kLabelLogMaxFiles = "io.baton.log-max-files";
// Isolated containers only: the name of the network namespace the driver attaches, and the port
// the service listens on in it (what inspect reports after an agent restart).
inline constexpr const char* kLabelNetns = "io.baton.netns";
inline constexpr const char* kLabelPort = "io.baton.port";

struct CreateOptions {
  std::string owner;          // the agent's id (label), so agents sharing an engine keep apart
  uint64_t nofile = 1024;     // RLIMIT_NOFILE soft = hard (the engine's default may exceed the host's)
  uint64_t nproc = 4096;      // RLIMIT_NPROC soft = hard
  std::string tmpfs_size = "64m";  // the size of the /tmp tmpfs of a read-only container
  // A network of its own (instance_net.h): the container gets NetworkMode "none" (only `lo`;
  // the driver attaches the namespace under this name once it runs) and publishes no port.
  // Empty: the engine's default network, the port published on 127.0.0.1.
  std::string netns;
  // A file bind-mounted read-only on /etc/resolv.conf (the mesh's DNS); empty: the engine's.
  std::string resolv_conf_path;
};

// The JSON body of POST /containers/create. The command is spec.run (replacing the image's
// CMD, ${VAR} expanded from config.env) when set; the user is config.uid:gid when >= 0, else
// spec.user (a user inside the image). Without options.netns the port config.container_port
// (else config.port) is published on 127.0.0.1:config.port; with it the container has no
// network but `lo` (NetworkMode "none") and labels name the namespace and that port. Read-only
// root with a /tmp tmpfs unless spec.read_only is false; no new privileges; no capabilities
// unless the user is root.
Result<std::string> createBody(const TaskConfig& config, const CreateOptions& options);

// What an inspect (GET /containers/{id}/json) says.
struct ContainerState {
  std::string id;
  std::string name;
  std::string status;  // created | running | paused | restarting | exited | dead ...
  bool running = false;
  int pid = 0;
  int exit_code = 0;
  bool oom_killed = false;
  std::string error;  // the engine's State.Error
  TimePoint started_at{};
  TimePoint finished_at{};
  std::map<std::string, std::string> labels;
};
Result<ContainerState> parseInspect(std::string_view json_text);
// GET /containers/json: the containers' ids and labels.
Result<std::vector<ContainerState>> parseContainerList(std::string_view json_text);
// GET /containers/{id}/stats?stream=false.
Result<TaskStats> parseStats(std::string_view json_text);

// RFC 3339 ("2026-12-04T19:08:11.231325529Z", "...+01:00"); nullopt when malformed.
std::optional<TimePoint> parseRfc3339(std::string_view text);
// Nanoseconds since the epoch, for log cursors (second precision is all some engines give).
std::optional<int64_t> parseRfc3339Nanos(std::string_view text);

// Splits the engine's multiplexed log stream (8-byte frame headers: stream, 0, 0, 0, big-endian
// length; stream 1 = stdout, 2 = stderr) into payloads. With timestamps=1 each frame starts
// with "<RFC 3339> "; the demuxer strips it and skips what an earlier follower already wrote:
// frames older than the cursor, and the first `count` frames of the cursor's own timestamp.
// A frame longer than `max_frame` is an error (a hostile or broken engine cannot make the agent
// buffer without bound).
class LogDemuxer {
 public:
  struct Cursor {
    int64_t nanos = 0;  // the last frame's timestamp
    int64_t count = 0;  // frames written with exactly that timestamp
    bool operator==(const Cursor&) const = default;
  };
  using Sink = std::function<void(int stream, std::string_view payload)>;

  LogDemuxer(Cursor start, bool timestamps, Sink sink, size_t max_frame = 1u << 20);
  Status feed(std::string_view data);
  const Cursor& cursor() const { return cursor_; }

 private:
  void frame(int stream, std::string_view payload);
  Cursor cursor_;
  Cursor skip_;  // what was written before this follower began
  bool timestamps_;
  Sink sink_;
  size_t max_frame_;
  std::string pending_;
};
std::string encodeCursor(const LogDemuxer::Cursor& c);
LogDemuxer::Cursor decodeCursor(std::string_view text);  // zero cursor when malformed

// Reads POST /images/create's stream (one JSON object per line) and keeps the overall progress
// and the first error.
class PullProgress {
 public:
  void feed(std::string_view data);
  void finish();  // the stream ended: a last line without '\n' counts
  std::string summary() const;  // "3 layers, 12.0 of 40.1 MB" / "resolving" / last status
  const std::optional<std::string>& error() const { return error_; }

 private:
  void line(std::string_view text);
  std::string buffer_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> layers_;  // id -> current, total
  std::string last_status_;
  std::optional<std::string> error_;
};

}  // namespace baton::drivers::docker
