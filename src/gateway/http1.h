// HTTP/1.1 message framing as the gateway reads it (RFC 9110, RFC 9112): a pure, socket-free
// parser for request and response heads and a decoder for message bodies. No Asio, no I/O, no
// allocation per byte; every function is tested and fuzzed alone (http1_test.cc, http1_fuzz.cc).
//
// Strictness (docs/security.md has the threat model): one reading of every message, and anything
// two parsers could read differently is refused rather than repaired.
//  - Lines end in CRLF; a bare CR or LF, obs-fold (a line starting with SP/HTAB), whitespace
//    before a field's colon, a control character in a value, a field name that is not a token:
//    malformed (requests 400, responses 502).
//  - Requests: origin-form targets only; HTTP/1.0 or 1.1. Content-Length is 1*DIGIT (no list,
//    no duplicates); Transfer-Encoding is exactly `chunked`, once, never on HTTP/1.0 and never with
//    Content-Length; Host exactly once on HTTP/1.1 (at most once on 1.0) and valid per RFC 3986;
//    Authorization at most once; a Connection header that names a framing header or Host is
//    refused (it would make a proxy drop the framing and relay the body as a request).
//  - Responses: the same field rules; Content-Length and Transfer-Encoding together are refused;
//    a Transfer-Encoding whose last coding is not chunked means "read until close".
//  - Chunked bodies: hex sizes of at most 16 digits, extensions exactly as RFC 9112 §7.1.1's
//    grammar (tokens and quoted strings, at most 4 KiB a line), CRLF after every chunk; trailer
//    fields are validated and never forwarded.
//
// Ownership: a RequestHead / ResponseHead owns a copy of the head's bytes (`raw()`), and every
// string_view it hands out points into that copy; they stay valid until the next parse() or the
// object's end. The objects are neither copyable nor movable, so no view can outlive its bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace baton::gateway::http1 {

// Why a message was refused. The gateway maps request errors to 400/413/431 and response errors
// to 502.
enum class Error {
  kNone,
  kMalformed,       // syntax: start line, field line, bare CR/LF, bad chars
  kObsFold,         // a folded field line
  kHeadTooLarge,    // more bytes than the limit before the end of the head
  kTooManyFields,   // more field lines than the limit
  kBadVersion,      // not HTTP/1.0 or HTTP/1.1
  kBadTarget,       // not origin-form
  kBadContentLength,
  kBadTransferEncoding,
  kLengthAndChunked,  // both Content-Length and Transfer-Encoding
  kMissingHost,
  kBadHost,
  kDuplicateHost,
  kDuplicateAuthorization,
  kConnectionNamesFraming,  // Connection: content-length / transfer-encoding / host
  kBodyTooLarge,
  kBadChunk,
  kTrailerTooLarge,
  kTruncated,  // the peer closed before the message's end
};
const char* errorText(Error e);

// Finds the end of a head in `buf`: the index just past the blank line that ends it, or 0 when
// it is not there yet. `*resume` carries the scan position between calls on a growing buffer
// (start at 0), so a head that arrives byte by byte is scanned once. A bare "\n\n" also ends a
// head (the parser then refuses it), so a head with bare LFs is answered at once, not on timeout.
size_t findHeadEnd(std::string_view buf, size_t* resume);

// How a message's body is delimited.
enum class Framing { kNone, kLength, kChunked, kUntilClose };

struct Field {
  std::string_view name;   // as sent
  std::string_view value;  // leading and trailing OWS removed
  std::string_view line;   // the whole line with its CRLF (for verbatim relay)
  bool drop = false;       // hop-by-hop or filtered: not relayed (set by the parser and callers)
};

struct Limits {
  size_t max_head_bytes = 16 * 1024;
  size_t max_fields = 128;
};

class RequestHead {
 public:
  RequestHead() = default;
  RequestHead(const RequestHead&) = delete;
  RequestHead& operator=(const RequestHead&) = delete;

  // Copies `head` (the bytes findHeadEnd delimited, blank line included) and parses it. On
  // success error() is kNone. Reusable: each call forgets the previous request.
  Error parse(std::string_view head, const Limits& limits);
  Error error() const { return error_; }

  std::string_view raw() const { return raw_; }
  std::string_view method() const { return method_; }
  std::string_view target() const { return target_; }  // as sent
  int version() const { return version_; }             // 10 or 11
  std::vector<Field>& fields() { return fields_; }
  const std::vector<Field>& fields() const { return fields_; }

  Framing framing() const { return framing_; }  // kNone, kLength or kChunked
  uint64_t contentLength() const { return content_length_; }
  bool hasHost() const { return has_host_; }
  std::string_view host() const { return host_; }
  bool hasAuthorization() const { return has_authorization_; }
  std::string_view authorization() const { return authorization_; }
  bool keepAlive() const { return keep_alive_; }  // per version and Connection
  bool expectContinue() const { return expect_continue_; }
  bool websocketUpgrade() const { return websocket_; }  // Upgrade: websocket + Connection: upgrade

 private:
  std::string raw_;
  Error error_ = Error::kMalformed;
  std::string_view method_, target_, host_, authorization_;
  int version_ = 11;
  std::vector<Field> fields_;
  Framing framing_ = Framing::kNone;
  uint64_t content_length_ = 0;
  bool has_host_ = false, has_authorization_ = false, keep_alive_ = true;
  bool expect_continue_ = false, websocket_ = false;
};

class ResponseHead {
 public:
  ResponseHead() = default;
  ResponseHead(const ResponseHead&) = delete;
  ResponseHead& operator=(const ResponseHead&) = delete;

  // As RequestHead::parse. `request_method` decides HEAD's body. Marks hop-by-hop fields (Connection and what it names, Keep-Alive,
  // Proxy-Connection, TE, Trailer, Upgrade unless 101) with drop.
  Error parse(std::string_view head, std::string_view request_method, const Limits& limits);
  Error error() const { return error_; }

  std::string_view raw() const { return raw_; }
  int status() const { return status_; }
  int version() const { return version_; }
  std::vector<Field>& fields() { return fields_; }
  const std::vector<Field>& fields() const { return fields_; }
  Framing framing() const { return framing_; }
  uint64_t contentLength() const { return content_length_; }
  // The connection can carry another exchange after this one (version, Connection: close,
  // close-delimited body).
  bool keepAlive() const { return keep_alive_; }
  // Keep-Alive: timeout=N from the server, in seconds; -1 when absent.
  int keepAliveTimeout() const { return keep_alive_timeout_; }
  // The status line with its CRLF (for verbatim relay).
  std::string_view statusLine() const { return status_line_; }

 private:
  std::string raw_;
  Error error_ = Error::kMalformed;
  int status_ = 0, version_ = 11;
  std::string_view status_line_;
  std::vector<Field> fields_;
  Framing framing_ = Framing::kNone;
  uint64_t content_length_ = 0;
  bool keep_alive_ = true;
  int keep_alive_timeout_ = -1;
};

// Delimits a body in a byte stream. feed() takes what has arrived and says how many of those
// bytes belong to the body (never more) and whether they are relayed; chunk framing is relayed
// verbatim, trailer fields are consumed and not relayed (the blank line that ends them is).
class BodyDecoder {
 public:
  BodyDecoder() = default;  // no body: done() at once
  // max_body: a limit on the body's data bytes (0 = none); past it kBodyTooLarge.
  BodyDecoder(Framing framing, uint64_t content_length, uint64_t max_body = 0);

  struct Step {
    size_t n = 0;          // bytes of the input that belong to this step
    bool forward = true;   // relay them (false: trailer fields)
    Error error = Error::kNone;
  };
  // One step over the start of [p, p + n). Call again on the rest while !done() and bytes
  // remain; a step with n == 0 and no error needs more input.
  Step feed(const char* p, size_t n);
  bool done() const { return state_ == State::kDone; }
  // The stream ended: a close-delimited body is complete, anything else is kTruncated.
  Error finish();
  Framing framing() const { return framing_; }
  uint64_t dataBytes() const { return data_bytes_; }

 private:
  enum class State {
    kLength, kUntilClose,
    kSize, kSizeExt, kSizeLf, kData, kDataCr, kDataLf,
    kTrailerStart, kTrailerField, kTrailerLf, kFinalLf,
    kDone,
  };
  Framing framing_ = Framing::kNone;
  State state_ = State::kDone;
  uint64_t remaining_ = 0;    // kLength: body bytes left; kData: chunk bytes left
  uint64_t max_body_ = 0;
  uint64_t data_bytes_ = 0;
  int size_digits_ = 0;
  size_t trailer_bytes_ = 0;  // also a chunk line's extension bytes
  bool in_name_ = false;      // reading a trailer field's name
  // Where kSizeExt is in `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
  enum class Ext : unsigned char {
    kAfterSize, kBeforeName, kName, kAfterName, kBeforeValue, kToken, kQuoted, kQuotedPair,
    kAfterValue,
  };
  Ext ext_ = Ext::kAfterSize;
  // One byte of a chunk line after the size; false when the grammar refuses it.
  bool extByte(char c);
};

// Helpers shared with the gateway's header filter.
bool isTokenChar(char c);
bool isToken(std::string_view s);
// Calls f(token) for each non-empty element of a comma-separated list value (OWS trimmed).
template <class F>
void forEachListElement(std::string_view v, F&& f) {
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view e = v.substr(0, comma);
    while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
    while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
    if (!e.empty()) f(e);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
}
// RFC 3986 `host [ ":" port ]` as a Host header carries it (empty allowed).
bool validHostHeader(std::string_view v);

}  // namespace baton::gateway::http1
