// Coroutines on edge sockets (for the data paths' .cc files and private headers; includes Asio):
// the awaitable and timer types on an io_context's own executor, the completion token that
// returns errors as values, and a read and a write that go at once when a plain socket is ready.
#pragma once

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <span>
#include <tuple>
#include <type_traits>

#include "edge/edge.h"

namespace baton::edge {

template <class T>
using Awaitable = asio::awaitable<T, Exec>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Exec>;
inline constexpr auto kUse = asio::as_tuple(asio::use_awaitable_t<Exec>{});

// Reads what `s` (a Socket, or a stream over one such as ssl::stream<Socket>) has. A plain socket
// that has bytes answers without suspending (see edge.h); otherwise the coroutine waits for them.
template <class Stream>
Awaitable<std::tuple<error_code, size_t>> readSome(Stream& s, asio::mutable_buffer b) {
  if constexpr (std::is_same_v<Stream, Socket>) {
    error_code ec;
    size_t n = s.readSome(b, ec);
    if (ec != asio::error::would_block) co_return std::tuple(ec, n);
  }
  co_return co_await s.async_read_some(b, kUse);
}

// Writes all of `bufs`: on a plain socket synchronously while it has room (one gather write,
// usually all of it), else suspended until the reactor sends it (see edge.h).
template <class Stream>
Awaitable<error_code> sendAll(Stream& s, std::span<const asio::const_buffer> bufs) {
  if constexpr (std::is_same_v<Stream, Socket>) {
    std::array<asio::const_buffer, 16> left;  // what is still to send (at most 16 pieces a call)
    size_t i = 0;   // next piece of bufs
    size_t off = 0;  // bytes of bufs[i] already sent
    while (i < bufs.size()) {
      size_t k = 0;
      for (size_t j = i; j < bufs.size() && k < left.size(); ++j) {
        left[k++] = j == i ? bufs[j] + off : bufs[j];
      }
      std::span<const asio::const_buffer> now(left.data(), k);
      error_code ec;
      size_t n = s.writeSome(now, ec);
      if (ec == asio::error::would_block) std::tie(ec, n) = co_await s.async_write_some(now, kUse);
      if (ec) co_return ec;
      n += off;
      while (i < bufs.size() && n >= bufs[i].size()) n -= bufs[i++].size();
      off = n;
    }
    co_return error_code{};
  } else {
    auto [wec, wn] = co_await asio::async_write(s, bufs, kUse);
    co_return wec;
  }
}

}  // namespace baton::edge
