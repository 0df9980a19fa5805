// A small synchronous HTTP/1.1 client for the CLI (and the API's tests): one connection per
// call, every connect/write/read with a deadline, and a streaming read for `logs -f` and
// `events`. Plain http:// only. Beast stays inside http_client.cc.
//
// Thread safety: an HttpClient may be used from one thread at a time; separate clients are
// independent.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace baton::cli {

struct BaseUrl {
  std::string host;
  int port = 4646;
  std::string text;  // as given, without a trailing slash: "http://127.0.0.1:4646"
};

// "http://host[:port][/]" (port default 80; "host:port" without a scheme is accepted too).
Result<BaseUrl> parseBaseUrl(std::string_view url);

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

struct HttpClientOptions {
  Duration connect_timeout = Duration(5'000);
  Duration timeout = Duration(30'000);  // per write and per read
  size_t max_body_bytes = 64u << 20;    // request(): larger responses are an error
};

class HttpClient {
 public:
  HttpClient(BaseUrl base, std::string token, HttpClientOptions options = {});

  // Sends one request and reads the whole response. A response with any status is a value;
  // errors are for transport failures: kUnavailable "cannot reach the agent at URL: connection
  // refused", kTimeout, kIo.
  Result<HttpResponse> request(std::string_view method, std::string_view target,
                               std::string_view body = {},
                               std::string_view content_type = "application/json");

  // GET `target` and hand the body to `on_data` as it arrives (chunk boundaries are arbitrary);
  // `on_data` returns false to stop early. Reads wait at most `idle_timeout` for more data
  // (0 = forever). For a 2xx response the returned body is empty (it went to on_data);
  // otherwise the error body is returned and on_data is not called.
  Result<HttpResponse> stream(std::string_view target,
                              const std::function<bool(std::string_view)>& on_data,
                              Duration idle_timeout = Duration(0));

  const BaseUrl& base() const { return base_; }

 private:
  Result<HttpResponse> exchange(std::string_view method, std::string_view target,
                                std::string_view body, std::string_view content_type,
                                const std::function<bool(std::string_view)>* on_data,
                                Duration read_timeout);

  BaseUrl base_;
  std::string token_;
  HttpClientOptions options_;
};

}  // namespace baton::cli
