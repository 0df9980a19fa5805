// DNS over TCP framing (RFC 1035 4.2.2, RFC 7766 8): every message is preceded by its length as
// two bytes, big-endian. Pure and fuzzed (dns_fuzz.cc); the TCP server (dns_server.cc) only
// reads bytes, hands them here and writes what comes back.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace baton::dns {

// A query is at most this long over either transport (the UDP server reads 512 bytes too): a
// query carries one question (at most 12 + 255 + 4 bytes) and perhaps an OPT record.
inline constexpr size_t kMaxQueryBytes = 512;

enum class FrameStatus {
  kIncomplete,  // more bytes are needed (the prefix or the message is not all there yet)
  kMessage,     // `message` is the first message; drop `consumed` bytes before the next one
  kTooLong,     // the prefix announces more than the cap: close the connection
  kEmpty,       // a zero length: no DNS message is empty; close the connection
};

struct Frame {
  FrameStatus status = FrameStatus::kIncomplete;
  // A view into the buffer given to nextFrame, valid while that buffer is unchanged.
  std::string_view message;
  size_t consumed = 0;
  size_t announced = 0;  // the length the prefix announced (once the two bytes are there)
};

// The first message framed in `buffered` (bytes read from a connection, oldest first), a
// message of at most `max_message` bytes.
Frame nextFrame(std::string_view buffered, size_t max_message = kMaxQueryBytes);

// `message` with its length prefix. Messages are at most 65535 bytes (encodeResponse's cap); a
// longer one cannot be framed and comes back empty (the caller sends nothing).
std::string frameMessage(std::string_view message);

}  // namespace baton::dns
