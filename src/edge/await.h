// Coroutines on edge sockets (for the data paths' .cc files and private headers; includes Asio):
// the awaitable type on an io_context's own executor, the completion token that returns errors
// as values, and a read that answers at once when a plain socket has bytes.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <tuple>
#include <type_traits>

#include "edge/edge.h"

namespace baton::edge {

template <class T>
using Awaitable = asio::awaitable<T, Exec>;
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

}  // namespace baton::edge
