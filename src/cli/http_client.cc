// The only translation unit of the cli module that includes Beast/Asio (compile time).
#include "cli/http_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <limits>

namespace baton::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

std::string lowerFirst(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

// Runs the async operation started by `start` on `ioc` until it completes; the stream's
// deadline (set by the caller) bounds it.
template <typename Start>
error_code runOp(asio::io_context& ioc, Start&& start) {
  error_code result = asio::error::would_block;
  bool done = false;
  start([&](error_code ec, auto&&...) {
    result = ec;
    done = true;
  });
  ioc.restart();
  while (!done && ioc.run_one() > 0) {
  }
  return result;
}

void setDeadline(beast::tcp_stream& s, Duration d) {
  if (d.count() > 0) {
    s.expires_after(d);
  } else {
    s.expires_never();
  }
}

}  // namespace

Result<BaseUrl> parseBaseUrl(std::string_view url) {
  BaseUrl b;
  std::string_view rest = url;
  int default_port = 4646;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
    default_port = 80;
  } else if (rest.starts_with("https://")) {
    return invalidArgument("https agent addresses are not supported yet: \"" + std::string(url) +
                           "\"");
  } else if (rest.find("://") != std::string_view::npos) {
    return invalidArgument("invalid agent address \"" + std::string(url) +
                           "\": expected http://host:port");
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) {
    return invalidArgument("invalid agent address \"" + std::string(url) +
                           "\": expected http://host:port without a path");
  }
  std::string_view host = rest;
  b.port = default_port;
  size_t colon = rest.rfind(':');
  size_t bracket = rest.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    host = rest.substr(0, colon);
    std::string_view p = rest.substr(colon + 1);
    int port = -1;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || ptr != p.data() + p.size() || port <= 0 || port > 65535) {
      return invalidArgument("invalid port in agent address \"" + std::string(url) + "\"");
    }
    b.port = port;
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return invalidArgument("invalid agent address \"" + std::string(url) + "\"");
  b.host = std::string(host);
  b.text = std::string(url);
  while (!b.text.empty() && b.text.back() == '/') b.text.pop_back();
  if (b.text.find("://") == std::string::npos) b.text = "http://" + b.text;
  return b;
}

HttpClient::HttpClient(BaseUrl base, std::string token, HttpClientOptions options)
    : base_(std::move(base)), token_(std::move(token)), options_(options) {}

Result<HttpResponse> HttpClient::request(std::string_view method, std::string_view target,
                                         std::string_view body, std::string_view content_type) {
  return exchange(method, target, body, content_type, nullptr, options_.timeout);
}

Result<HttpResponse> HttpClient::stream(std::string_view target,
                                        const std::function<bool(std::string_view)>& on_data,
                                        Duration idle_timeout) {
  return exchange("GET", target, {}, {}, &on_data, idle_timeout);
}

Result<HttpResponse> HttpClient::exchange(std::string_view method, std::string_view target,
                                          std::string_view body, std::string_view content_type,
                                          const std::function<bool(std::string_view)>* on_data,
                                          Duration read_timeout) {
  auto unreachable = [&](const error_code& ec) {
    return unavailable("cannot reach the agent at " + base_.text + ": " + lowerFirst(ec.message()));
  };
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  error_code ec;
  auto endpoints = resolver.resolve(base_.host, std::to_string(base_.port), ec);
  if (ec) return unreachable(ec);

  beast::tcp_stream stream(ioc);
  setDeadline(stream, options_.connect_timeout);
  ec = runOp(ioc, [&](auto handler) { stream.async_connect(endpoints, handler); });
  if (ec == beast::error::timeout) {
    return Status(Code::kTimeout, "cannot reach the agent at " + base_.text + ": timed out");
  }
  if (ec) return unreachable(ec);

  http::request<http::string_body> req{http::string_to_verb(method), std::string(target), 11};
  if (req.method() == http::verb::unknown) req.method_string(method);
  req.set(http::field::host, base_.host + ":" + std::to_string(base_.port));
  req.set(http::field::user_agent, "baton-cli");
  req.set(http::field::connection, "close");
  if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
  if (!body.empty() || method == "PUT" || method == "POST") {
    req.set(http::field::content_type, content_type);
    req.body() = std::string(body);
  }
  req.prepare_payload();
  setDeadline(stream, options_.timeout);
  error_code write_ec = runOp(ioc, [&](auto handler) { http::async_write(stream, req, handler); });
  if (write_ec == beast::error::timeout) {
    return Status(Code::kTimeout,
                  "the agent at " + base_.text + " did not accept the request in time");
  }
  // A write error (the server refused a large body and closed) may still leave its answer to
  // read: try.

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  setDeadline(stream, options_.timeout);
  ec = runOp(ioc, [&](auto handler) { http::async_read_header(stream, buffer, parser, handler); });
  if (ec) {
    if (write_ec)
      return ioError("sending the request to " + base_.text + " failed: " + write_ec.message());
    if (ec == beast::error::timeout) {
      return Status(Code::kTimeout, "the agent at " + base_.text + " did not answer in time");
    }
    return ioError("reading the response from " + base_.text + " failed: " + ec.message());
  }
  HttpResponse resp;
  resp.status = static_cast<int>(parser.get().result_int());
  resp.content_type = std::string(parser.get()[http::field::content_type]);
  bool deliver = on_data && resp.status >= 200 && resp.status < 300;
  std::vector<char> chunk(16384);
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    setDeadline(stream, on_data ? read_timeout : options_.timeout);
    ec = runOp(ioc, [&](auto handler) { http::async_read_some(stream, buffer, parser, handler); });
    if (ec == http::error::need_buffer) ec = {};
    size_t n = chunk.size() - parser.get().body().size;
    if (n > 0) {
      std::string_view data(chunk.data(), n);
      if (deliver) {
        if (!(*on_data)(data)) break;
      } else {
        if (resp.body.size() + n > options_.max_body_bytes) {
          return ioError("the response from " + base_.text + " is larger than " +
                         std::to_string(options_.max_body_bytes) + " bytes");
        }
        resp.body.append(data);
      }
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof) break;
    if (ec == beast::error::timeout) {
      return Status(Code::kTimeout, "the agent at " + base_.text + " stopped sending");
    }
    if (ec) return ioError("reading the response from " + base_.text + " failed: " + ec.message());
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return resp;
}

}  // namespace baton::cli
