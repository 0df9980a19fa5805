// http1_verdict: the gateway's verdict on raw request bytes, for differential tests against
// other HTTP/1.1 parsers (testing/h11_differential_test.py). Test-only; never installed.
//
// Input (stdin): a sequence of cases, each a 4-byte big-endian length followed by that many
// bytes, the bytes a client sent on one connection. Output (stdout): one JSON object per case,
// one per line, in input order:
//   accept      the head is complete and passed http1::RequestHead::parse and checkRequest, and
//               the body decoder found no error in the bytes that follow
//   need_data   the head has not ended yet (and is under the head limit): no verdict
//   stage       where a refusal happened: "head" (framing), "check" (method, path), "body"
//   error       errorText() / checkRequest's message; "" when none
//   method, target (as sent), normalized (plan.target), version (10 or 11), framing, length
//   complete    the body ended within the input (the BodyDecoder is done)
//   body_b64    the body's data: the bytes for Content-Length, the chunks' data for chunked
//   consumed    bytes of the input that belong to this request (leading CRLFs, head, body)
// Strings are JSON-escaped byte by byte: printable ASCII as is, anything else as \u00XX of the
// byte's value, so the reader recovers the exact bytes (latin-1).
//
// The steps are the gateway session's (gateway.cc): skip empty lines before the request line,
// http1::findHeadEnd, RequestHead::parse with default Limits (an unfinished head of at least
// max_head_bytes is refused as too large), checkRequest with a default ForwardPolicy, then a
// BodyDecoder over the rest, as decodeBody() feeds it.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "gateway/exchange.h"
#include "gateway/http1.h"

namespace {

using namespace baton::gateway;

void appendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      *out += '\\';
      *out += ch;
    } else if (c >= 0x20 && c < 0x7f) {
      *out += ch;
    } else {
      *out += "\\u00";
      *out += kHex[c >> 4];
      *out += kHex[c & 15];
    }
  }
  *out += '"';
}

std::string base64(std::string_view s) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((s.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= s.size(); i += 3) {
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(s[i])) << 16 |
                 static_cast<uint32_t>(static_cast<unsigned char>(s[i + 1])) << 8 |
                 static_cast<unsigned char>(s[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (size_t rest = s.size() - i; rest > 0) {
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(s[i])) << 16;
    if (rest == 2) v |= static_cast<uint32_t>(static_cast<unsigned char>(s[i + 1])) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

// The chunks' data in what a chunked BodyDecoder relayed (size lines, data, CRLFs; the decoder
// has validated the framing and dropped trailer fields). Stops where the relayed bytes stop.
std::string chunkData(std::string_view relayed) {
  std::string out;
  size_t i = 0;
  while (i < relayed.size()) {
    uint64_t size = 0;
    while (i < relayed.size() && hexDigit(relayed[i]) >= 0) {
      size = size * 16 + static_cast<uint64_t>(hexDigit(relayed[i]));
      ++i;
    }
    size_t eol = relayed.find("\r\n", i);
    if (eol == std::string_view::npos || size == 0) break;
    i = eol + 2;
    size_t take = size < relayed.size() - i ? static_cast<size_t>(size) : relayed.size() - i;
    out.append(relayed.substr(i, take));
    i += take + 2;  // the CRLF after the data
  }
  return out;
}

const char* framingName(http1::Framing f) {
  switch (f) {
    case http1::Framing::kNone:
      return "none";
    case http1::Framing::kLength:
      return "length";
    case http1::Framing::kChunked:
      return "chunked";
    case http1::Framing::kUntilClose:
      return "until-close";
  }
  return "?";
}

std::string verdict(std::string_view in) {
  bool accept = false, need_data = false, complete = false;
  std::string_view stage, method, target;
  std::string error, normalized, body;
  int version = 0;
  http1::Framing framing = http1::Framing::kNone;
  uint64_t length = 0;
  size_t consumed = 0;

  const size_t total = in.size();
  while (in.size() >= 2 && in[0] == '\r' && in[1] == '\n') in.remove_prefix(2);
  const http1::Limits limits;
  size_t resume = 0;
  const size_t head_len = http1::findHeadEnd(in, &resume);
  http1::RequestHead req;
  if (head_len == 0) {
    if (in.size() >= limits.max_head_bytes) {
      stage = "head";
      error = http1::errorText(http1::Error::kHeadTooLarge);
    } else {
      need_data = true;
    }
  } else {
    http1::Error perr = req.parse(in.substr(0, head_len), limits);
    method = req.method();
    target = req.target();
    version = req.version();
    framing = req.framing();
    length = req.contentLength();
    RequestPlan plan;
    if (!checkRequest(req, perr, ForwardPolicy{}, &plan)) {
      stage = perr != http1::Error::kNone ? "head" : "check";
      error = plan.message;
    } else {
      normalized = plan.target;
      http1::BodyDecoder decoder(req.framing(), req.contentLength());
      std::string_view rest = in.substr(head_len);
      std::string relayed;
      size_t used = 0;
      http1::Error berr = http1::Error::kNone;
      while (used < rest.size() && !decoder.done()) {
        http1::BodyDecoder::Step st = decoder.feed(rest.data() + used, rest.size() - used);
        if (st.forward) relayed.append(rest.substr(used, st.n));
        used += st.n;
        if (st.error != http1::Error::kNone) {
          berr = st.error;
          break;
        }
        if (st.n == 0) break;
      }
      complete = decoder.done();
      body = framing == http1::Framing::kChunked ? chunkData(relayed) : relayed;
      consumed = total - in.size() + head_len + used;
      if (berr != http1::Error::kNone) {
        stage = "body";
        error = http1::errorText(berr);
      } else {
        accept = true;
      }
    }
  }

  std::string out = "{\"accept\":";
  out += accept ? "true" : "false";
  out += ",\"need_data\":";
  out += need_data ? "true" : "false";
  out += ",\"stage\":";
  appendJsonString(&out, stage);
  out += ",\"error\":";
  appendJsonString(&out, error);
  out += ",\"method\":";
  appendJsonString(&out, method);
  out += ",\"target\":";
  appendJsonString(&out, target);
  out += ",\"normalized\":";
  appendJsonString(&out, normalized);
  out += ",\"version\":" + std::to_string(version);
  out += ",\"framing\":";
  appendJsonString(&out, framingName(framing));
  out += ",\"length\":" + std::to_string(length);
  out += ",\"complete\":";
  out += complete ? "true" : "false";
  out += ",\"body_b64\":\"" + base64(body) + "\"";
  out += ",\"consumed\":" + std::to_string(consumed);
  out += "}\n";
  return out;
}

bool readExact(std::string* buf, size_t n) {
  buf->resize(n);
  return n == 0 || std::fread(buf->data(), 1, n, stdin) == n;
}

}  // namespace

int main() {
  std::string header, data;
  while (readExact(&header, 4)) {
    size_t n = static_cast<size_t>(static_cast<unsigned char>(header[0])) << 24 |
               static_cast<size_t>(static_cast<unsigned char>(header[1])) << 16 |
               static_cast<size_t>(static_cast<unsigned char>(header[2])) << 8 |
               static_cast<size_t>(static_cast<unsigned char>(header[3]));
    if (!readExact(&data, n)) {
      std::fprintf(stderr, "http1_verdict: input ends inside a case of %zu bytes\n", n);
      return 2;
    }
    std::string line = verdict(data);
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  std::fflush(stdout);
  return std::ferror(stdout) ? 1 : 0;
}
