// Gateway's lifecycle, routing table, TLS certificates and statistics (README.md). The data
// path is in session.cc (one client connection) and listener.cc (accepting); the protocol
// decisions are in http1.h and exchange.h.
#include "gateway/gateway.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "gateway/runtime.h"

namespace baton::gateway {

void Gateway::Impl::setTable(std::shared_ptr<const RouteTable> table) {
  if (!table) table = std::make_shared<RouteTable>();
  auto c = std::make_shared<Compiled>();
  c->table = table;
  std::vector<ServiceRuntime*> with_backends;
  std::vector<ServiceRuntime*> all;
  {
    std::lock_guard lock(table_mu);
    for (const auto& e : table->entries()) {
      EntryRuntime rt;
      rt.svc = service(e.app, e.route.service);
      for (const auto& b : e.backends) {
        std::string key = b.address + ":" + std::to_string(b.port);
        auto& st = backend_registry[key];
        if (!st) {
          error_code ec;
          auto addr = asio::ip::make_address(b.address.empty() ? "127.0.0.1" : b.address, ec);
          if (ec) {
            asio::io_context tmp;
            tcp::resolver r(tmp);
            auto res = r.resolve(b.address, std::to_string(b.port), ec);
            if (ec || res.empty()) {
              spdlog::warn("gateway: cannot resolve backend {}: {}", key, ec.message());
              backend_registry.erase(key);
              continue;
            }
            addr = res.begin()->endpoint().address();
          }
          st = std::make_shared<BackendState>();
          st->id = next_backend_id++;
          st->key = key;
          st->endpoint = tcp::endpoint(addr, static_cast<unsigned short>(b.port));
        }
        rt.backends.push_back(st);
      }
      if (!rt.backends.empty()) with_backends.push_back(rt.svc);
      all.push_back(rt.svc);
      c->entries.push_back(std::move(rt));
    }
    compiled = c;
    table_version.fetch_add(1, std::memory_order_acq_rel);
    for (auto it = backend_registry.begin(); it != backend_registry.end();) {
      it = it->second.use_count() == 1 ? backend_registry.erase(it) : std::next(it);
    }
  }
  {
    std::sort(all.begin(), all.end());
    std::lock_guard lock(svc_mu);
    for (auto& [k, s] : services) s->routed.store(std::binary_search(all.begin(), all.end(), s.get()));
  }
  // Services without backends in the new table park again; those with backends release.
  std::sort(with_backends.begin(), with_backends.end());
  for (ServiceRuntime* s : all) {
    bool has = std::binary_search(with_backends.begin(), with_backends.end(), s);
    s->hold.setHasBackends(has, [s] {
      s->ready_at_ns.store(Steady::now().time_since_epoch().count());
      s->cold_pending.store(true);
      s->cold_starts.fetch_add(1);
    });
  }
}

Awaitable<void> Gateway::Impl::certLoop() {
  for (;;) {
    cert_timer->expires_after(opts.cert_check_interval);
    auto [ec] = co_await cert_timer->async_wait(kUse);
    if (ec || stopping.load()) co_return;
    checkCerts();
  }
}

Awaitable<void> Gateway::Impl::sweepLoop(Worker* wp) {
  Timer t(wp->ioc.get_executor());
  for (;;) {
    t.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await t.async_wait(kUse);
    if (ec || stopping.load()) co_return;
    wp->pool.sweep(coarseNow());
  }
}

std::map<std::string, std::filesystem::file_time_type> Gateway::Impl::certMtimes() {
  std::map<std::string, std::filesystem::file_time_type> m;
  for (const auto& c : opts.certs) {
    for (const auto& path : {c.cert, c.key}) {
      std::error_code ec;
      auto t = std::filesystem::last_write_time(path, ec);
      if (!ec) m[path] = t;
    }
  }
  return m;
}

Status Gateway::Impl::loadTls() {
  Result<std::shared_ptr<TlsContexts>> ctx = invalidArgument("no certificate");
  auto mtimes = certMtimes();
  if (opts.certs.empty()) {
    auto pem = devCertificate(opts.dev_cert_dir);
    if (!pem) return pem.status();
    ctx = TlsContexts::fromPem({*pem});
  } else {
    ctx = TlsContexts::fromFiles(opts.certs);
  }
  if (!ctx) return ctx.status();
  auto holder = std::make_shared<TlsHolder>(*ctx);
  std::lock_guard lock(tls_mu);
  tls = std::move(holder);
  cert_mtimes = std::move(mtimes);
  return Status::ok();
}

void Gateway::Impl::checkCerts() {
  if (opts.certs.empty()) return;
  auto now = certMtimes();
  bool changed;
  {
    std::lock_guard lock(tls_mu);
    changed = now != cert_mtimes;
  }
  if (!changed) return;
  Status s = loadTls();
  if (s) {
    spdlog::info("gateway: certificates reloaded");
  } else {
    spdlog::warn("gateway: certificate reload failed, keeping the old ones: {}", s.toString());
    std::lock_guard lock(tls_mu);
    cert_mtimes = std::move(now);  // do not retry until the files change again
  }
}

void Gateway::Impl::stop() {
  if (!started) return;
  started = false;
  stopping.store(true);
  for (auto& w : workers) {
    asio::post(w->ioc, [wp = w.get(), this] {
      for (auto& l : wp->listeners) l->close();
      if (cert_timer && wp->index == 0) cert_timer->cancel();
      for (Conn* c : wp->conns) {
        if (!c->busy) c->cancelAll();
      }
    });
  }
  auto deadline = Steady::now() + opts.stop_grace;
  while (live_conns.load() > 0 && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& w : workers) {
    asio::post(w->ioc, [wp = w.get()] {
      for (Conn* c : wp->conns) {
        if (c->open) c->closeAll();
      }
      wp->pool.closeAll();
    });
  }
  // Give the closes a moment to unwind the coroutines, then stop the loops.
  auto unwind = Steady::now() + std::chrono::milliseconds(500);
  while (live_conns.load() > 0 && Steady::now() < unwind) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (auto& w : workers) w->ioc.stop();
  for (auto& w : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  cert_timer.reset();
  // Release parked requests' bookkeeping.
  std::lock_guard lock(svc_mu);
  for (auto& [k, s] : services) s->hold.clear();
}

// ---------------------------------------------------------------------------------------------

Gateway::Gateway(GatewayOptions options, Clock& clock, GatewayHooks hooks)
    : impl_(std::make_unique<Impl>(std::move(options), clock, std::move(hooks))) {}

Gateway::~Gateway() { stop(); }

Status Gateway::start() {
  Impl& m = *impl_;
  if (m.started) return Status(Code::kFailedPrecondition, "gateway already started");
  int n = m.opts.threads > 0 ? m.opts.threads
                             : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  m.workers.clear();
  for (int i = 0; i < n; ++i) {
    try {
      m.workers.push_back(std::make_unique<Worker>(i, m.opts.limits.upstream_pool_size));
      m.workers.back()->reactor.setConnectSource(m.opts.upstream_source);
    } catch (const std::exception& e) {  // the reactor's epoll instance (EMFILE, ENOMEM)
      m.workers.clear();
      return ioError(std::string("gateway cannot start its I/O threads: ") + e.what());
    }
  }
  for (auto& w : m.workers) {
    w->rng ^= reinterpret_cast<uintptr_t>(w.get()) * 0x2545F4914F6CDD1Dull;
  }
  if (!m.opts.https_listen.empty()) {
    Status s = m.loadTls();
    if (!s) return s;
  }
  if (!m.opts.http_listen.empty()) {
    Status s = m.bind(m.opts.http_listen, false, &m.http_port);
    if (!s) {
      m.workers.clear();
      return s;
    }
  }
  if (!m.opts.https_listen.empty()) {
    Status s = m.bind(m.opts.https_listen, true, &m.https_port);
    if (!s) {
      m.workers.clear();
      return s;
    }
    if (!m.opts.certs.empty() && m.opts.cert_check_interval.count() > 0) {
      Worker& w0 = *m.workers[0];
      m.cert_timer = std::make_unique<Timer>(w0.ioc.get_executor());
      asio::co_spawn(w0.ioc, m.certLoop(), asio::detached);
    }
  }
  // A periodic sweep of idle pooled upstream connections on every worker.
  for (auto& w : m.workers) {
    asio::co_spawn(w->ioc, m.sweepLoop(w.get()), asio::detached);
  }
  m.stopping.store(false);
  m.started = true;
  for (auto& w : m.workers) {
    w->thread = std::thread([wp = w.get()] {
      auto guard = asio::make_work_guard(wp->ioc);
      wp->ioc.run();
    });
  }
  return Status::ok();
}

void Gateway::stop() { impl_->stop(); }

void Gateway::setTable(std::shared_ptr<const RouteTable> table) {
  impl_->setTable(std::move(table));
}

int Gateway::httpPort() const { return impl_->http_port; }
int Gateway::httpsPort() const { return impl_->https_port; }

Status Gateway::reloadCertificates() {
  if (impl_->opts.https_listen.empty()) return Status::ok();
  return impl_->loadTls();
}

std::vector<ServiceStats> Gateway::stats() const {
  std::vector<ServiceStats> out;
  std::lock_guard lock(impl_->svc_mu);
  for (const auto& [k, s] : impl_->services) {
    if (!s->routed.load() && s->in_flight.load() == 0 && s->hold.queued() == 0) continue;
    ServiceStats st;
    st.app = s->app;
    st.service = s->service;
    st.in_flight = s->in_flight.load();
    st.queued = s->hold.queued();
    st.arrivals = s->arrivals.load();
    st.responses_2xx = s->r2xx.load();
    st.responses_3xx = s->r3xx.load();
    st.responses_4xx = s->r4xx.load();
    st.responses_5xx = s->r5xx.load();
    st.latency_sum_us = s->latency_sum_us.load();
    st.completed = s->completed.load();
    st.held = s->held.load();
    st.hold_rejected = s->hold_rejected.load();
    st.cold_starts = s->cold_starts.load();
    st.cold_overhead_last_us = s->cold_last_us.load();
    st.cold_overhead_max_us = s->cold_max_us.load();
    out.push_back(std::move(st));
  }
  return out;
}

std::string Gateway::prometheus() const {
  std::string out;
  auto stats = this->stats();
  auto family = [&](const char* name, const char* type, const char* help, auto value_of) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    for (const auto& s : stats) value_of(s);
  };
  auto labels = [](const ServiceStats& s) {
    return "app=\"" + s.app + "\",service=\"" + s.service + "\"";
  };
  auto line = [&](const char* name, const std::string& l, double v) {
    out += name;
    out += '{';
    out += l;
    out += "} ";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out += buf;
    out += '\n';
  };
  family("baton_gateway_requests_in_flight", "gauge", "Requests being proxied or parked.",
         [&](const ServiceStats& s) {
           line("baton_gateway_requests_in_flight", labels(s), static_cast<double>(s.in_flight));
         });
  family("baton_gateway_hold_queue_length", "gauge",
         "Requests parked while the service is at zero.", [&](const ServiceStats& s) {
           line("baton_gateway_hold_queue_length", labels(s), static_cast<double>(s.queued));
         });
  family("baton_gateway_requests_total", "counter", "Requests routed to the service.",
         [&](const ServiceStats& s) {
           line("baton_gateway_requests_total", labels(s), static_cast<double>(s.arrivals));
         });
  family("baton_gateway_responses_total", "counter", "Responses by status class.",
         [&](const ServiceStats& s) {
           line("baton_gateway_responses_total", labels(s) + ",code=\"2xx\"",
                static_cast<double>(s.responses_2xx));
           line("baton_gateway_responses_total", labels(s) + ",code=\"3xx\"",
                static_cast<double>(s.responses_3xx));
           line("baton_gateway_responses_total", labels(s) + ",code=\"4xx\"",
                static_cast<double>(s.responses_4xx));
           line("baton_gateway_responses_total", labels(s) + ",code=\"5xx\"",
                static_cast<double>(s.responses_5xx));
         });
  family("baton_gateway_request_duration_seconds_sum", "counter",
         "Sum of request durations (arrival to last byte).", [&](const ServiceStats& s) {
           line("baton_gateway_request_duration_seconds_sum", labels(s),
                static_cast<double>(s.latency_sum_us) / 1e6);
         });
  family("baton_gateway_request_duration_seconds_count", "counter", "Completed requests.",
         [&](const ServiceStats& s) {
           line("baton_gateway_request_duration_seconds_count", labels(s),
                static_cast<double>(s.completed));
         });
  family("baton_gateway_held_total", "counter", "Requests parked at zero.",
         [&](const ServiceStats& s) {
           line("baton_gateway_held_total", labels(s), static_cast<double>(s.held));
         });
  family("baton_gateway_hold_rejected_total", "counter",
         "Parked requests answered 503 (queue full or timeout).", [&](const ServiceStats& s) {
           line("baton_gateway_hold_rejected_total", labels(s),
                static_cast<double>(s.hold_rejected));
         });
  family("baton_gateway_cold_overhead_seconds", "gauge",
         "Last cold start: backend ready to first byte upstream.", [&](const ServiceStats& s) {
           if (s.cold_overhead_last_us >= 0) {
             line("baton_gateway_cold_overhead_seconds", labels(s),
                  static_cast<double>(s.cold_overhead_last_us) / 1e6);
           }
         });
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "# TYPE baton_gateway_connections_total counter\n"
                "baton_gateway_connections_total %lld\n"
                "# TYPE baton_gateway_connections gauge\nbaton_gateway_connections %lld\n"
                "# TYPE baton_gateway_no_route_total counter\nbaton_gateway_no_route_total %lld\n"
                "# TYPE baton_gateway_bad_requests_total counter\n"
                "baton_gateway_bad_requests_total %lld\n"
                "# TYPE baton_gateway_tls_handshake_failures_total counter\n"
                "baton_gateway_tls_handshake_failures_total %lld\n"
                "# TYPE baton_gateway_connection_limit_waits_total counter\n"
                "baton_gateway_connection_limit_waits_total %lld\n",
                static_cast<long long>(impl_->conns_total.load()),
                static_cast<long long>(impl_->live_conns.load()),
                static_cast<long long>(impl_->no_route.load()),
                static_cast<long long>(impl_->bad_requests.load()),
                static_cast<long long>(impl_->tls_failures.load()),
                static_cast<long long>(impl_->conn_limit_waits.load()));
  out += buf;
  return out;
}

Result<int64_t> connectionLimit(uint64_t fd_limit, int64_t configured) {
  const uint64_t reserve = std::clamp<uint64_t>(fd_limit / 4, 64, 1024);
  if (fd_limit <= reserve + 2) {
    return invalidArgument("the file-descriptor limit (" + std::to_string(fd_limit) +
                           ") leaves no room for gateway connections; raise it (ulimit -n)");
  }
  const auto fits = static_cast<int64_t>((fd_limit - reserve) / 2);
  if (configured <= 0) return fits;
  if (configured > fits) {
    return invalidArgument("gateway.max_connections = " + std::to_string(configured) +
                           " needs about " + std::to_string(configured * 2 + reserve) +
                           " file descriptors; the limit is " + std::to_string(fd_limit) +
                           ": raise it (ulimit -n, LimitNOFILE=) or lower max_connections");
  }
  return configured;
}

}  // namespace baton::gateway
