#include "dns/tcp_framing.h"

#include <cstdint>

namespace baton::dns {

Frame nextFrame(std::string_view buffered, size_t max_message) {
  Frame f;
  if (buffered.size() < 2) return f;
  f.announced = (static_cast<size_t>(static_cast<uint8_t>(buffered[0])) << 8) |
                static_cast<uint8_t>(buffered[1]);
  if (f.announced == 0) {
    f.status = FrameStatus::kEmpty;
    return f;
  }
  if (f.announced > max_message) {
    f.status = FrameStatus::kTooLong;
    return f;
  }
  if (buffered.size() - 2 < f.announced) return f;
  f.status = FrameStatus::kMessage;
  f.message = buffered.substr(2, f.announced);
  f.consumed = 2 + f.announced;
  return f;
}

std::string frameMessage(std::string_view message) {
  if (message.size() > 65535) return {};
  std::string out;
  out.reserve(2 + message.size());
  out.push_back(static_cast<char>(message.size() >> 8));
  out.push_back(static_cast<char>(message.size() & 0xff));
  out.append(message);
  return out;
}

}  // namespace baton::dns
