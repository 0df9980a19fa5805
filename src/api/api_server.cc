// The only translation unit of the api module that includes Beast/Asio (compile time).
#include "api/api_server.h"

#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace baton::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kStreamTick = std::chrono::milliseconds(250);
constexpr size_t kLingerBytes = 8u << 20;
constexpr auto kLingerTime = std::chrono::seconds(2);

// What stop() may touch of a session; only on the session's strand.
struct SessionState {
  asio::any_io_executor exec;
  beast::tcp_stream* stream = nullptr;
  asio::steady_timer* timer = nullptr;
  bool busy = false;
};

bool isParseError(const boost::system::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

// True when the peer has closed its side (a read would return EOF); non-blocking.
bool peerClosed(tcp::socket& socket) {
  char c;
  ssize_t n = ::recv(socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0;
}

}  // namespace

struct ApiServer::Impl {
  ApiOptions options;
  Handlers handlers;
  std::atomic<bool> stopping{false};
  std::atomic<int> port{0};
  bool started = false;
  bool stopped = false;

  std::mutex mu;
  std::condition_variable cv;
  uint64_t next_session = 0;
  std::map<uint64_t, std::shared_ptr<SessionState>> sessions;

  // Declared last: destroyed first, while the members above still exist for the coroutine
  // frames it destroys.
  asio::io_context ioc;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;

  Impl(ApiDeps deps, ApiOptions opts) : options(opts), handlers(std::move(deps), std::move(opts)) {}

  void unregister(uint64_t id) {
    std::lock_guard lock(mu);
    sessions.erase(id);
    cv.notify_all();
  }

  template <typename Body>
  void setCommon(http::response<Body>& res, const std::string& content_type) {
    res.set(http::field::server, "baton");
    res.set(http::field::content_type, content_type);
  }

  // Writes a small response made by the server itself (400, 413, ...); closes afterwards.
  asio::awaitable<void> writeError(beast::tcp_stream& stream, int status, std::string_view msg) {
    handlers.countResponse(status);
    ApiResponse r = errorResponse(status, msg);
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    setCommon(res, r.content_type);
    res.keep_alive(false);
    res.body() = std::move(r.body);
    res.prepare_payload();
    stream.expires_after(options.write_timeout);
    co_await http::async_write(stream, res, kTuple);
  }

  // After refusing a request whose body we did not read: stop sending, and read (and drop)
  // what the client is still sending for a while so that it gets to read our answer rather than
  // a reset.
  asio::awaitable<void> lingeringClose(beast::tcp_stream& stream) {
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::vector<char> buf(16384);
    size_t total = 0;
    stream.expires_after(kLingerTime);
    while (total < kLingerBytes) {
      auto [rec, n] = co_await stream.async_read_some(asio::buffer(buf), kTuple);
      if (rec) break;
      total += n;
    }
    stream.socket().close(ec);
  }

  asio::awaitable<void> writeStream(beast::tcp_stream& stream, SessionState& st,
                                    std::shared_ptr<SessionState> st_ptr, ApiResponse& resp,
                                    unsigned version) {
    http::response<http::empty_body> res{static_cast<http::status>(resp.status), version};
    setCommon(res, resp.content_type);
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(false);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    stream.expires_after(options.write_timeout);
    auto [hec, hn] = co_await http::async_write_header(stream, sr, kTuple);
    if (hec) co_return;

    asio::steady_timer timer(st.exec);
    st.timer = &timer;
    std::weak_ptr<SessionState> weak = st_ptr;
    auto exec = st.exec;
    ChunkSource& src = *resp.stream;
    src.setWakeup([exec, weak] {
      asio::post(exec, [weak] {
        if (auto s = weak.lock(); s && s->timer) s->timer->cancel();
      });
    });
    bool clean_end = false;
    for (;;) {
      std::optional<std::string> chunk = src.poll();
      if (!chunk) {
        clean_end = true;
        break;
      }
      if (!chunk->empty()) {
        stream.expires_after(options.write_timeout);
        auto [wec, wn] =
            co_await asio::async_write(stream, http::make_chunk(asio::buffer(*chunk)), kTuple);
        if (wec) break;
        continue;
      }
      if (stopping || peerClosed(stream.socket())) {
        clean_end = !stopping ? false : true;
        break;
      }
      timer.expires_after(kStreamTick);
      co_await timer.async_wait(kTuple);
    }
    src.setWakeup({});
    st.timer = nullptr;
    if (clean_end) {
      stream.expires_after(options.write_timeout);
      co_await asio::async_write(stream, http::make_chunk_last(), kTuple);
    }
  }

  asio::awaitable<void> session(beast::tcp_stream stream, uint64_t id,
                                std::shared_ptr<SessionState> st) {
    struct Guard {
      Impl* self;
      uint64_t id;
      SessionState* st;
      ~Guard() {
        st->stream = nullptr;
        st->timer = nullptr;
        self->unregister(id);
      }
    } guard{this, id, st.get()};
    st->stream = &stream;
    boost::system::error_code peer_ec;
    const asio::ip::address peer = stream.socket().remote_endpoint(peer_ec).address();
    const bool peer_loopback =
        !peer_ec && (peer.is_loopback() ||
                     (peer.is_v6() && peer.to_v6().is_v4_mapped() &&
                      asio::ip::make_address_v4(asio::ip::v4_mapped, peer.to_v6()).is_loopback()));
    beast::flat_buffer buffer;
    for (;;) {
      st->busy = false;
      if (stopping) break;
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      stream.expires_after(options.read_timeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
      st->busy = true;
      if (ec == http::error::body_limit) {
        co_await writeError(
            stream, 413,
            "request body too large: at most " + std::to_string(options.max_body_bytes) + " bytes");
        co_await lingeringClose(stream);
        break;
      }
      if (ec == http::error::header_limit) {
        co_await writeError(stream, 431, "request header too large");
        co_await lingeringClose(stream);
        break;
      }
      if (ec && isParseError(ec) && ec != http::error::end_of_stream &&
          ec != http::error::partial_message) {
        co_await writeError(stream, 400, "malformed HTTP request: " + ec.message());
        co_await lingeringClose(stream);
        break;
      }
      if (ec) break;  // closed, timed out, cancelled by stop()

      auto& req = parser.get();
      bool head = req.method() == http::verb::head;
      ApiRequest ar =
          ApiRequest::make(std::string(req.method_string()),
                           std::string_view(req.target().data(), req.target().size()),
                           std::move(req.body()), std::string(req[http::field::authorization]));
      ar.peer_loopback = peer_loopback;
      ar.host = std::string(req[http::field::host]);
      ar.origin = std::string(req[http::field::origin]);
      ApiResponse resp = handlers.handle(ar);
      if (resp.stream && !head) {
        co_await writeStream(stream, *st, st, resp, req.version());
        break;
      }
      http::response<http::string_body> res{static_cast<http::status>(resp.status), req.version()};
      setCommon(res, resp.content_type);
      res.keep_alive(req.keep_alive() && !stopping);
      res.body() = std::move(resp.body);
      res.prepare_payload();
      if (head) res.body().clear();
      stream.expires_after(options.write_timeout);
      auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
      if (wec || !res.keep_alive()) break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
  }

  asio::awaitable<void> acceptLoop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(asio::make_strand(ioc), kTuple);
      if (stopping || ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (ec) {
        // EMFILE and friends: back off a little instead of spinning.
        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
        co_await t.async_wait(kTuple);
        continue;
      }
      auto st = std::make_shared<SessionState>();
      st->exec = socket.get_executor();
      uint64_t id;
      {
        std::lock_guard lock(mu);
        id = ++next_session;
        sessions.emplace(id, st);
      }
      auto exec = st->exec;
      asio::co_spawn(exec, session(beast::tcp_stream(std::move(socket)), id, std::move(st)),
                     asio::detached);
    }
  }
};

ApiServer::ApiServer(ApiDeps deps, ApiOptions options)
    : impl_(std::make_unique<Impl>(std::move(deps), std::move(options))) {}

ApiServer::~ApiServer() { stop(); }

Status ApiServer::start() {
  Impl& s = *impl_;
  if (s.started) return Status(Code::kFailedPrecondition, "the API server was already started");
  auto addr = parseListenAddress(s.options.listen);
  if (!addr) return addr.status();
  boost::system::error_code ec;
  tcp::resolver resolver(s.ioc);
  auto results = resolver.resolve(addr->first, std::to_string(addr->second),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return invalidArgument("cannot resolve \"" + addr->first + "\": " + ec.message());
  }
  tcp::endpoint ep = results.begin()->endpoint();
  s.acceptor.emplace(asio::make_strand(s.ioc));
  s.acceptor->open(ep.protocol(), ec);
  if (!ec) s.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(ep, ec);
  if (!ec) s.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    s.acceptor.reset();
    return unavailable("cannot listen on " + s.options.listen + ": " + ec.message());
  }
  s.port = s.acceptor->local_endpoint().port();
  s.started = true;
  s.work.emplace(s.ioc.get_executor());
  asio::co_spawn(s.acceptor->get_executor(), s.acceptLoop(), asio::detached);
  int n = std::max(1, s.options.threads);
  for (int i = 0; i < n; ++i) s.threads.emplace_back([&s] { s.ioc.run(); });
  return Status::ok();
}

void ApiServer::stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  asio::post(s.acceptor->get_executor(), [&s] {
    boost::system::error_code ec;
    s.acceptor->close(ec);
  });
  {
    std::unique_lock lock(s.mu);
    for (auto& [id, st] : s.sessions) {
      asio::post(st->exec, [st = st] {
        if (st->stream && !st->busy) st->stream->cancel();
        if (st->timer) st->timer->cancel();
      });
    }
    s.cv.wait_for(lock, s.options.shutdown_grace, [&s] { return s.sessions.empty(); });
  }
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
}

int ApiServer::port() const { return impl_->port.load(); }

}  // namespace baton::api
