// A synchronous client of the Docker Engine HTTP API over its unix socket (the API that
// `podman system service` serves too): one connection per call, every connect, write and read
// bounded by a deadline, and a streaming read (logs, pull progress) that another thread can
// cancel. Beast stays inside docker_engine.cc; only its HTTP parser is used (framing).
//
// Thread safety: an EngineClient may be used from several threads at once (it keeps no
// connection); a StreamHandle is shared by the streaming call and the thread that cancels it.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace baton::drivers::docker {

struct EngineOptions {
  std::filesystem::path socket = "/var/run/docker.sock";
  std::string api_version = "v1.41";    // every target is sent as /<api_version><target>
  Duration timeout = Duration(30'000);  // connect, each write and each read of request()
  size_t max_body_bytes = 16u << 20;    // request(): a larger response is an error
};

struct EngineResponse {
  int status = 0;
  std::string body;
};

// Lets another thread end a stream() in progress (the read returns as if the engine closed).
class StreamHandle {
 public:
  void cancel();
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class EngineClient;
  void attach(int fd);
  void detach();
  std::atomic<bool> cancelled_{false};
  std::atomic<int> fd_{-1};
};

class EngineClient {
 public:
  explicit EngineClient(EngineOptions options);

  // One request, the whole response. Any HTTP status is a value; errors are for transport
  // failures: kUnavailable "cannot reach the container engine at /run/x.sock: no such file or
  // directory", kTimeout, kIo.
  Result<EngineResponse> request(std::string_view method, std::string_view target,
                                 std::string_view json_body = {});

  // Like request(), but a 2xx body goes to `on_data` as it arrives (on_data returns false to
  // stop). Reads wait at most `idle_timeout` for more (0: forever, until cancelled), and for
  // the status line at most the shorter of it and the request timeout; then kTimeout.
  Result<EngineResponse> stream(std::string_view method, std::string_view target,
                                std::string_view json_body,
                                const std::function<bool(std::string_view)>& on_data,
                                Duration idle_timeout, StreamHandle* handle = nullptr);

  const EngineOptions& options() const { return options_; }

 private:
  Result<EngineResponse> exchange(std::string_view method, std::string_view target,
                                  std::string_view json_body,
                                  const std::function<bool(std::string_view)>* on_data,
                                  Duration read_timeout, StreamHandle* handle);
  EngineOptions options_;
};

// The engine's error text from an error response ({"message": "..."}), else the body itself
// (trimmed, at most 300 bytes).
std::string engineMessage(const EngineResponse& r);

}  // namespace baton::drivers::docker
