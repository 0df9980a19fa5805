#include "auth/jwks_source.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace baton::auth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct Url {
  std::string host;
  std::string port = "443";
  std::string target = "/";
};

Result<Url> parseHttpsUrl(const std::string& url) {
  constexpr std::string_view kScheme = "https://";
  if (url.rfind(kScheme, 0) != 0) return invalidArgument("JWKS URL must start with https://");
  std::string rest = url.substr(kScheme.size());
  Url u;
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) u.target = rest.substr(slash);
  if (authority.find('@') != std::string::npos) {
    return invalidArgument("JWKS URL must not contain credentials");
  }
  if (!authority.empty() && authority[0] == '[') {  // [v6]:port
    size_t close = authority.find(']');
    if (close == std::string::npos) return invalidArgument("JWKS URL has a bad IPv6 host");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return invalidArgument("JWKS URL has a bad port");
      u.port = authority.substr(close + 2);
    }
  } else {
    size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return invalidArgument("JWKS URL has no host");
  if (u.port.empty() || u.port.size() > 5 ||
      u.port.find_first_not_of("0123456789") != std::string::npos) {
    return invalidArgument("JWKS URL has a bad port");
  }
  if (int port = std::stoi(u.port); port < 1 || port > 65535) {
    return invalidArgument("JWKS URL has a bad port");
  }
  if (u.target.find_first_of("\r\n \t") != std::string::npos) {
    return invalidArgument("JWKS URL path has whitespace");
  }
  return u;
}

int64_t steadyNs(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock.steadyNow().time_since_epoch())
      .count();
}

int64_t nsOf(Duration d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); }

Result<std::string> readFile(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return ioError("cannot read JWKS file " + path + ": " + ec.message());
  if (size > max_bytes) return invalidArgument("JWKS file " + path + " is larger than the bound");
  std::ifstream in(path, std::ios::binary);
  if (!in) return ioError("cannot open JWKS file " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > max_bytes)
    return invalidArgument("JWKS file " + path + " is larger than the bound");
  return text;
}

int64_t mtimeNs(const std::string& path) {
  std::error_code ec;
  auto t = std::filesystem::last_write_time(path, ec);
  if (ec) return -1;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

Result<std::string> httpsGet(const std::string& url_text, const JwksSourceOptions& opts) {
  auto url = parseHttpsUrl(url_text);
  if (!url) return url.status();

  asio::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (opts.ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(opts.ca_file, ec);
  }
  if (ec) return invalidArgument("cannot load CA certificates: " + ec.message());
  ctx.set_verify_mode(ssl::verify_peer, ec);

  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  SSL* ssl_handle = stream.native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  asio::ip::make_address(url->host, ec);
  const bool is_ip = !ec;
  if (is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, url->host.c_str()) != 1) {
      return invalidArgument("cannot verify against IP " + url->host);
    }
  } else {
    if (X509_VERIFY_PARAM_set1_host(param, url->host.c_str(), 0) != 1 ||
        SSL_set_tlsext_host_name(ssl_handle, url->host.c_str()) != 1) {
      return invalidArgument("cannot set the TLS host name " + url->host);
    }
  }

  Status status = ioError("JWKS fetch did not finish");
  std::string body;
  tcp::resolver resolver(ioc);
  auto fetch = [&]() -> asio::awaitable<void> {
    auto tuple = asio::as_tuple(asio::use_awaitable);
    auto [rec, endpoints] = co_await resolver.async_resolve(url->host, url->port, tuple);
    if (rec) {
      status = unavailable("cannot resolve " + url->host + ": " + rec.message());
      co_return;
    }
    beast::get_lowest_layer(stream).expires_after(opts.fetch_timeout);
    auto [cec, ep] = co_await beast::get_lowest_layer(stream).async_connect(endpoints, tuple);
    if (cec) {
      status =
          unavailable("cannot connect to " + url->host + ":" + url->port + ": " + cec.message());
      co_return;
    }
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::client, tuple);
    if (hec) {
      status = unavailable("TLS handshake with " + url->host + " failed: " + hec.message());
      co_return;
    }
    http::request<http::empty_body> req{http::verb::get, url->target, 11};
    req.set(http::field::host, url->host);
    req.set(http::field::user_agent, "baton-jwks");
    req.set(http::field::accept, "application/json");
    req.set(http::field::connection, "close");
    auto [wec, wn] = co_await http::async_write(stream, req, tuple);
    if (wec) {
      status = unavailable("writing the JWKS request failed: " + wec.message());
      co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(opts.max_bytes);
    auto [rdec, rn] = co_await http::async_read(stream, buffer, parser, tuple);
    if (rdec) {
      status = unavailable("reading the JWKS response failed: " + rdec.message());
      co_return;
    }
    auto& res = parser.get();
    if (res.result() != http::status::ok) {
      status = unavailable("JWKS URL answered " + std::to_string(res.result_int()));
      co_return;
    }
    body = std::move(res.body());
    status = Status::ok();
    beast::get_lowest_layer(stream).socket().close(rdec);
  };
  asio::co_spawn(ioc, fetch(), asio::detached);
  ioc.run();
  if (!status.isOk()) return status;
  return body;
}

JwksSource::JwksSource(std::string location, Clock& clock, JwksSourceOptions opts, bool is_url)
    : location_(std::move(location)), clock_(clock), opts_(std::move(opts)), is_url_(is_url) {}

Result<std::unique_ptr<JwksSource>> JwksSource::open(std::string location, Clock& clock,
                                                     JwksSourceOptions opts) {
  const bool is_url = location.rfind("https://", 0) == 0;
  if (!is_url && location.find("://") != std::string::npos) {
    return invalidArgument("JWKS location must be a file path or an https:// URL: " + location);
  }
  if (is_url) {
    auto u = parseHttpsUrl(location);
    if (!u) return u.status();
  }
  std::unique_ptr<JwksSource> src(
      new JwksSource(std::move(location), clock, std::move(opts), is_url));
  Status first = src->reload();
  if (!is_url && !first.isOk()) return first;
  if (is_url && src->opts_.start_thread) {
    src->fetcher_ = std::thread([s = src.get()] { s->fetcherLoop(); });
  }
  return src;
}

JwksSource::~JwksSource() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (fetcher_.joinable()) fetcher_.join();
}

Status JwksSource::loadOnce() {
  std::lock_guard<std::mutex> load_lock(load_mu_);
  int64_t mtime = is_url_ ? -1 : mtimeNs(location_);
  Result<std::string> text =
      is_url_ ? httpsGet(location_, opts_) : readFile(location_, opts_.max_bytes);
  Status st;
  if (!text) {
    st = text.status();
  } else {
    auto set = parseJwks(*text);
    if (!set) {
      st = invalidArgument("JWKS from " + location_ + ": " + set.status().message());
    } else {
      current_.store(std::make_shared<const KeySet>(std::move(set).value()));
      if (!is_url_) file_mtime_ns_.store(mtime);
      {
        std::lock_guard<std::mutex> lk(mu_);
        generation_.fetch_add(1);
        last_error_ = Status::ok();
      }
      gen_cv_.notify_all();
      return Status::ok();
    }
  }
  if (!is_url_) file_mtime_ns_.store(mtime);  // do not retry a bad file until it changes
  // Every failure is logged with its reason (URL fetches retry every retry_interval, files
  // only when they change): tokens failing with 401 must have a cause someone can read.
  spdlog::warn("identity: JWKS {} could not be loaded: {}{}", location_, st.message(),
               current_.load() ? " (the keys loaded before stay in use)" : "");
  std::lock_guard<std::mutex> lk(mu_);
  last_error_ = st;
  return st;
}

Status JwksSource::reload() { return loadOnce(); }

void JwksSource::checkFile(bool force) {
  const int64_t now = steadyNs(clock_);
  int64_t next = next_file_check_ns_.load();
  if (!force && now < next) return;
  if (!next_file_check_ns_.compare_exchange_strong(next, now + nsOf(opts_.file_check_interval)) &&
      !force) {
    return;  // another thread is checking
  }
  if (mtimeNs(location_) != file_mtime_ns_.load()) (void)loadOnce();  // error kept in last_error_
}

std::shared_ptr<const KeySet> JwksSource::keys() {
  if (!is_url_) checkFile(false);
  return current_.load();
}

std::shared_ptr<const KeySet> JwksSource::onUnknownKid() {
  const int64_t now = steadyNs(clock_);
  int64_t last = last_refetch_ns_.load();
  if (last != INT64_MIN && now - last < nsOf(opts_.refetch_interval)) return nullptr;
  if (!last_refetch_ns_.compare_exchange_strong(last, now)) return nullptr;  // lost the race
  refetch_requests_.fetch_add(1);
  if (!is_url_) {
    auto before = current_.load();
    checkFile(true);
    auto after = current_.load();
    return after != before ? after : nullptr;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    refetch_requested_ = true;
  }
  cv_.notify_all();
  return nullptr;
}

bool JwksSource::waitForGeneration(uint64_t after, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  return gen_cv_.wait_for(lk, timeout, [&] { return generation_.load() > after; });
}

Status JwksSource::lastError() const {
  std::lock_guard<std::mutex> lk(mu_);
  return last_error_;
}

void JwksSource::fetcherLoop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stopping_) {
    const bool failed = !last_error_.isOk();
    Duration wait = failed ? opts_.retry_interval : opts_.refresh_interval;
    auto ready = [&] { return stopping_ || refetch_requested_; };
    if (wait.count() > 0) {
      cv_.wait_for(lk, wait, ready);
    } else {
      cv_.wait(lk, ready);
    }
    if (stopping_) break;
    refetch_requested_ = false;
    lk.unlock();
    (void)loadOnce();  // the error is kept in last_error_ and retried
    lk.lock();
  }
}

}  // namespace baton::auth
