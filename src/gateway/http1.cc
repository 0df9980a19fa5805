#include "gateway/http1.h"

#include <cstring>

#include "core/ascii.h"

namespace baton::gateway::http1 {
namespace {

// RFC 9110 §5.6.2 tchar.
constexpr bool tcharTable(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// field-vchar / SP / HTAB (RFC 9110 §5.5): no CTLs but HTAB, no DEL.
constexpr bool valueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

bool isHex(char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}
int hexValue(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// 1*DIGIT without overflow (at most 19 digits).
bool parseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

// Reads one line ending in CRLF starting at `pos`; `*eol` is the index of its CR. Bare CR or LF
// is malformed.
Error lineEnd(std::string_view buf, size_t pos, size_t* eol) {
  for (size_t i = pos; i < buf.size(); ++i) {
    char c = buf[i];
    if (c == '\r') {
      if (i + 1 >= buf.size() || buf[i + 1] != '\n') return Error::kMalformed;
      *eol = i;
      return Error::kNone;
    }
    if (c == '\n') return Error::kMalformed;
  }
  return Error::kMalformed;
}

// Parses the field lines from `pos` to the blank line that ends the head (which must be the
// last two bytes of `buf`).
Error parseFields(std::string_view buf, size_t pos, size_t max_fields, std::vector<Field>* out) {
  out->clear();
  for (;;) {
    if (pos + 2 > buf.size()) return Error::kMalformed;
    if (buf[pos] == '\r') {
      if (buf[pos + 1] != '\n' || pos + 2 != buf.size()) return Error::kMalformed;
      return Error::kNone;
    }
    if (buf[pos] == ' ' || buf[pos] == '\t') return Error::kObsFold;
    if (out->size() >= max_fields) return Error::kTooManyFields;
    size_t i = pos;
    while (i < buf.size() && tcharTable(static_cast<unsigned char>(buf[i]))) ++i;
    if (i == pos || i >= buf.size() || buf[i] != ':') return Error::kMalformed;
    std::string_view name = buf.substr(pos, i - pos);
    size_t eol = 0;
    if (Error e = lineEnd(buf, i + 1, &eol); e != Error::kNone) return e;
    std::string_view value = buf.substr(i + 1, eol - i - 1);
    for (char c : value) {
      if (!valueChar(static_cast<unsigned char>(c))) return Error::kMalformed;
    }
    out->push_back({name, trimOws(value), buf.substr(pos, eol + 2 - pos), false});
    pos = eol + 2;
  }
}

// "HTTP/1.1" -> 11, "HTTP/1.0" -> 10; another well-formed version -> -1; garbage -> 0.
int parseVersion(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.') return 0;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return 0;
  if (v[5] == '1' && v[7] == '1') return 11;
  if (v[5] == '1' && v[7] == '0') return 10;
  return -1;
}

// Marks every field named in `names` (Connection's elements) to be dropped.
void dropNamed(std::vector<Field>& fields, std::string_view name) {
  for (Field& f : fields) {
    if (iequalsAscii(f.name, name)) f.drop = true;
  }
}

bool isFramingOrHost(std::string_view name) {
  return iequalsAscii(name, "content-length") || iequalsAscii(name, "transfer-encoding") ||
         iequalsAscii(name, "host");
}

}  // namespace

const char* errorText(Error e) {
  switch (e) {
    case Error::kNone: return "ok";
    case Error::kMalformed: return "malformed message";
    case Error::kObsFold: return "folded header line (obs-fold)";
    case Error::kHeadTooLarge: return "header too large";
    case Error::kTooManyFields: return "too many header fields";
    case Error::kBadVersion: return "unsupported HTTP version";
    case Error::kBadTarget: return "bad request target";
    case Error::kBadContentLength: return "bad Content-Length";
    case Error::kBadTransferEncoding: return "unsupported Transfer-Encoding";
    case Error::kLengthAndChunked: return "both Content-Length and Transfer-Encoding";
    case Error::kMissingHost: return "missing Host";
    case Error::kBadHost: return "bad Host";
    case Error::kDuplicateHost: return "more than one Host";
    case Error::kDuplicateAuthorization: return "more than one Authorization";
    case Error::kConnectionNamesFraming: return "Connection names a framing header or Host";
    case Error::kBodyTooLarge: return "body too large";
    case Error::kBadChunk: return "malformed chunked body";
    case Error::kTrailerTooLarge: return "trailer section too large";
    case Error::kTruncated: return "message ended early";
  }
  return "error";
}

bool isTokenChar(char c) { return tcharTable(static_cast<unsigned char>(c)); }

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!isTokenChar(c)) return false;
  }
  return true;
}

bool validHostHeader(std::string_view v) {
  std::string_view host = v, port;
  if (!v.empty() && v.front() == '[') {
    size_t close = v.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    std::string_view literal = v.substr(1, close - 1);
    if (literal[0] == 'v' || literal[0] == 'V') {
      // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
      size_t dot = literal.find('.');
      if (dot == std::string_view::npos || dot < 2 || dot + 1 >= literal.size()) return false;
      for (char c : literal.substr(1, dot - 1)) {
        if (!isHex(c)) return false;
      }
      for (char c : literal.substr(dot + 1)) {
        unsigned char u = static_cast<unsigned char>(c);
        bool ok = (u >= '0' && u <= '9') || ((u | 0x20) >= 'a' && (u | 0x20) <= 'z') ||
                  std::strchr("-._~!$&'()*+,;=:", c) != nullptr;
        if (!ok || u == 0) return false;
      }
    } else {
      for (char c : literal) {
        if (!isHex(c) && c != ':' && c != '.') return false;
      }
    }
    std::string_view rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
    host = {};
  } else if (size_t colon = v.find(':'); colon != std::string_view::npos) {
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
  }
  if (port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  for (size_t i = 0; i < host.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(host[i]);
    bool unreserved = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    bool sub_delim = std::strchr("!$&'()*+,;=", c) != nullptr && c != 0;
    if (unreserved || sub_delim) continue;
    if (c == '%' && i + 2 < host.size() && isHex(host[i + 1]) && isHex(host[i + 2])) {
      i += 2;
      continue;
    }
    return false;
  }
  return true;
}

size_t findHeadEnd(std::string_view buf, size_t* resume) {
  size_t i = *resume;
  while (i < buf.size()) {
    const void* hit = std::memchr(buf.data() + i, '\n', buf.size() - i);
    if (hit == nullptr) {
      *resume = buf.size();
      return 0;
    }
    i = static_cast<size_t>(static_cast<const char*>(hit) - buf.data());
    if (i + 1 >= buf.size()) break;  // cannot tell yet
    if (buf[i + 1] == '\n') return i + 2;
    if (buf[i + 1] == '\r') {
      if (i + 2 >= buf.size()) break;
      if (buf[i + 2] == '\n') return i + 3;
    }
    ++i;
  }
  *resume = i;
  return 0;
}

// ---------------------------------------------------------------------------------------------

Error RequestHead::parse(std::string_view head, const Limits& limits) {
  raw_.assign(head.data(), head.size());
  fields_.clear();
  method_ = target_ = host_ = authorization_ = {};
  version_ = 11;
  framing_ = Framing::kNone;
  content_length_ = 0;
  has_host_ = has_authorization_ = expect_continue_ = websocket_ = false;
  keep_alive_ = true;
  error_ = [&]() -> Error {
    const std::string_view buf = raw_;
    if (buf.size() > limits.max_head_bytes) return Error::kHeadTooLarge;
    // Request line: method SP request-target SP HTTP-version CRLF, single spaces.
    size_t eol = 0;
    if (Error e = lineEnd(buf, 0, &eol); e != Error::kNone) return e;
    std::string_view line = buf.substr(0, eol);
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return Error::kMalformed;
    size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
      return Error::kMalformed;
    }
    method_ = line.substr(0, sp1);
    target_ = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (!isToken(method_) || target_.empty()) return Error::kMalformed;
    for (char c : target_) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f) return Error::kMalformed;
    }
    int v = parseVersion(line.substr(sp2 + 1));
    if (v == 0) return Error::kMalformed;
    if (v < 0) return Error::kBadVersion;
    version_ = v;
    if (target_.front() != '/') return Error::kBadTarget;  // origin-form only

    if (Error e = parseFields(buf, eol + 2, limits.max_fields, &fields_); e != Error::kNone) {
      return e;
    }
    bool has_length = false, has_te = false, conn_close = false, conn_keep_alive = false;
    bool conn_upgrade = false, upgrade_ws = false;
    bool names_fields = false;  // Connection names other fields (hop-by-hop too)
    for (Field& f : fields_) {
      std::string_view n = f.name;
      if (iequalsAscii(n, "host")) {
        if (has_host_) return Error::kDuplicateHost;
        if (!validHostHeader(f.value)) return Error::kBadHost;
        has_host_ = true;
        host_ = f.value;
      } else if (iequalsAscii(n, "authorization")) {
        if (has_authorization_) return Error::kDuplicateAuthorization;
        has_authorization_ = true;
        authorization_ = f.value;
      } else if (iequalsAscii(n, "content-length")) {
        if (has_length || !parseDecimal(f.value, &content_length_)) {
          return Error::kBadContentLength;
        }
        has_length = true;
      } else if (iequalsAscii(n, "transfer-encoding")) {
        if (has_te || !iequalsAscii(f.value, "chunked")) return Error::kBadTransferEncoding;
        has_te = true;
      } else if (iequalsAscii(n, "connection") || iequalsAscii(n, "proxy-connection")) {
        f.drop = true;
        Error bad = Error::kNone;
        forEachListElement(f.value, [&](std::string_view tok) {
          if (!isToken(tok)) {
            bad = Error::kMalformed;
          } else if (isFramingOrHost(tok)) {
            bad = Error::kConnectionNamesFraming;
          } else if (iequalsAscii(tok, "close")) {
            conn_close = true;
          } else if (iequalsAscii(tok, "keep-alive")) {
            conn_keep_alive = true;
          } else if (iequalsAscii(tok, "upgrade")) {
            conn_upgrade = true;
          } else {
            names_fields = true;
          }
        });
        if (bad != Error::kNone) return bad;
      } else if (iequalsAscii(n, "keep-alive") || iequalsAscii(n, "te") ||
                 iequalsAscii(n, "trailer")) {
        f.drop = true;
      } else if (iequalsAscii(n, "upgrade")) {
        f.drop = true;  // the gateway re-adds it for WebSocket
        forEachListElement(f.value, [&](std::string_view tok) {
          if (iequalsAscii(tok, "websocket")) upgrade_ws = true;
        });
      } else if (iequalsAscii(n, "expect")) {
        if (iequalsAscii(f.value, "100-continue")) {
          expect_continue_ = true;
          f.drop = true;  // the gateway answers it
        }
      }
    }
    // What Connection names is hop-by-hop too (after the loop: it may come before them).
    for (size_t i = 0; names_fields && i < fields_.size(); ++i) {
      const Field& f = fields_[i];
      if (!iequalsAscii(f.name, "connection") && !iequalsAscii(f.name, "proxy-connection")) {
        continue;
      }
      forEachListElement(f.value, [&](std::string_view tok) {
        if (!iequalsAscii(tok, "close") && !iequalsAscii(tok, "keep-alive") &&
            !iequalsAscii(tok, "upgrade")) {
          dropNamed(fields_, tok);
        }
      });
    }
    if (has_te) {
      if (version_ == 10) return Error::kBadTransferEncoding;
      if (has_length) return Error::kLengthAndChunked;
      framing_ = Framing::kChunked;
    } else if (has_length && content_length_ > 0) {
      framing_ = Framing::kLength;
    }
    if (version_ == 11 && !has_host_) return Error::kMissingHost;
    keep_alive_ = version_ == 11 ? !conn_close : (conn_keep_alive && !conn_close);
    websocket_ = upgrade_ws && conn_upgrade && version_ == 11;
    return Error::kNone;
  }();
  return error_;
}

// ---------------------------------------------------------------------------------------------

Error ResponseHead::parse(std::string_view head, std::string_view request_method,
                          const Limits& limits) {
  raw_.assign(head.data(), head.size());
  fields_.clear();
  status_ = 0;
  version_ = 11;
  status_line_ = {};
  framing_ = Framing::kNone;
  content_length_ = 0;
  keep_alive_ = true;
  keep_alive_timeout_ = -1;
  error_ = [&]() -> Error {
    const std::string_view buf = raw_;
    if (buf.size() > limits.max_head_bytes) return Error::kHeadTooLarge;
    size_t eol = 0;
    if (Error e = lineEnd(buf, 0, &eol); e != Error::kNone) return e;
    std::string_view line = buf.substr(0, eol);
    status_line_ = buf.substr(0, eol + 2);
    // HTTP-version SP 3DIGIT [SP reason-phrase]
    if (line.size() < 12 || line[8] != ' ') return Error::kMalformed;
    int v = parseVersion(line.substr(0, 8));
    if (v == 0) return Error::kMalformed;
    if (v < 0) return Error::kBadVersion;
    version_ = v;
    for (size_t i = 9; i < 12; ++i) {
      if (line[i] < '0' || line[i] > '9') return Error::kMalformed;
    }
    status_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status_ < 100 || status_ > 599) return Error::kMalformed;
    if (line.size() > 12) {
      if (line[12] != ' ') return Error::kMalformed;
      for (char c : line.substr(13)) {
        if (!valueChar(static_cast<unsigned char>(c))) return Error::kMalformed;
      }
    }
    if (Error e = parseFields(buf, eol + 2, limits.max_fields, &fields_); e != Error::kNone) {
      return e;
    }
    bool has_length = false, has_te = false, chunked_last = false, conn_close = false;
    bool conn_keep_alive = false, names_fields = false;
    for (Field& f : fields_) {
      std::string_view n = f.name;
      if (iequalsAscii(n, "content-length")) {
        if (has_length || !parseDecimal(f.value, &content_length_)) {
          return Error::kBadContentLength;
        }
        has_length = true;
      } else if (iequalsAscii(n, "transfer-encoding")) {
        // Codings accumulate over lines; chunked may only be the last one.
        Error bad = Error::kNone;
        forEachListElement(f.value, [&](std::string_view coding) {
          if (chunked_last) bad = Error::kBadTransferEncoding;  // something after chunked
          chunked_last = iequalsAscii(coding, "chunked");
          if (!isToken(coding)) bad = Error::kBadTransferEncoding;
        });
        if (bad != Error::kNone) return bad;
        has_te = true;
      } else if (iequalsAscii(n, "connection") || iequalsAscii(n, "proxy-connection")) {
        f.drop = status_ != 101;
        Error bad = Error::kNone;
        forEachListElement(f.value, [&](std::string_view tok) {
          if (!isToken(tok)) {
            bad = Error::kMalformed;
          } else if (isFramingOrHost(tok)) {
            bad = Error::kConnectionNamesFraming;
          } else if (iequalsAscii(tok, "close")) {
            conn_close = true;
          } else if (iequalsAscii(tok, "keep-alive")) {
            conn_keep_alive = true;
          } else if (!iequalsAscii(tok, "upgrade")) {
            names_fields = true;
          }
        });
        if (bad != Error::kNone) return bad;
      } else if (iequalsAscii(n, "keep-alive")) {
        f.drop = true;
        forEachListElement(f.value, [&](std::string_view param) {
          if (istartsWithAscii(param, "timeout=")) {
            uint64_t t = 0;
            if (parseDecimal(param.substr(8), &t)) {
              keep_alive_timeout_ = t > 86400 ? 86400 : static_cast<int>(t);
            }
          }
        });
      } else if (iequalsAscii(n, "te") || iequalsAscii(n, "trailer")) {
        f.drop = true;
      } else if (iequalsAscii(n, "upgrade")) {
        f.drop = status_ != 101;
      }
    }
    for (size_t i = 0; names_fields && i < fields_.size(); ++i) {
      const Field& f = fields_[i];
      if (!iequalsAscii(f.name, "connection") && !iequalsAscii(f.name, "proxy-connection")) {
        continue;
      }
      forEachListElement(f.value, [&](std::string_view tok) {
        if (!iequalsAscii(tok, "close") && !iequalsAscii(tok, "keep-alive") &&
            !iequalsAscii(tok, "upgrade")) {
          dropNamed(fields_, tok);
        }
      });
    }
    if (has_te && has_length) return Error::kLengthAndChunked;
    if (has_te && version_ == 10) return Error::kBadTransferEncoding;
    keep_alive_ = version_ == 11 ? !conn_close : (conn_keep_alive && !conn_close);
    const bool no_body = request_method == "HEAD" || (status_ >= 100 && status_ < 200) ||
                         status_ == 204 || status_ == 304;
    if (no_body) {
      framing_ = Framing::kNone;
    } else if (has_te) {
      framing_ = chunked_last ? Framing::kChunked : Framing::kUntilClose;
    } else if (has_length) {
      framing_ = content_length_ > 0 ? Framing::kLength : Framing::kNone;
    } else {
      framing_ = Framing::kUntilClose;
    }
    if (framing_ == Framing::kUntilClose) keep_alive_ = false;
    return Error::kNone;
  }();
  return error_;
}

// ---------------------------------------------------------------------------------------------

BodyDecoder::BodyDecoder(Framing framing, uint64_t content_length, uint64_t max_body)
    : framing_(framing), max_body_(max_body) {
  switch (framing) {
    case Framing::kNone:
      state_ = State::kDone;
      break;
    case Framing::kLength:
      state_ = content_length == 0 ? State::kDone : State::kLength;
      remaining_ = content_length;
      break;
    case Framing::kChunked:
      state_ = State::kSize;
      break;
    case Framing::kUntilClose:
      state_ = State::kUntilClose;
      break;
  }
}

Error BodyDecoder::finish() {
  if (state_ == State::kUntilClose || state_ == State::kDone) {
    state_ = State::kDone;
    return Error::kNone;
  }
  return Error::kTruncated;
}

bool BodyDecoder::extByte(char c) {
  const bool ws = c == ' ' || c == '\t';
  const bool tchar = isTokenChar(c);
  switch (ext_) {
    case Ext::kAfterSize:  // BWS after the size: only ";" may follow
    case Ext::kAfterName:
    case Ext::kAfterValue:
      if (ws) return true;
      if (c == ';') {
        ext_ = Ext::kBeforeName;
        return true;
      }
      if (c == '=' && ext_ == Ext::kAfterName) {
        ext_ = Ext::kBeforeValue;
        return true;
      }
      return false;
    case Ext::kBeforeName:
      if (ws) return true;
      if (!tchar) return false;
      ext_ = Ext::kName;
      return true;
    case Ext::kName:
      if (tchar) return true;
      if (ws) {
        ext_ = Ext::kAfterName;
      } else if (c == '=') {
        ext_ = Ext::kBeforeValue;
      } else if (c == ';') {
        ext_ = Ext::kBeforeName;
      } else {
        return false;
      }
      return true;
    case Ext::kBeforeValue:
      if (ws) return true;
      if (c == '"') {
        ext_ = Ext::kQuoted;
      } else if (tchar) {
        ext_ = Ext::kToken;
      } else {
        return false;
      }
      return true;
    case Ext::kToken:
      if (tchar) return true;
      if (ws) {
        ext_ = Ext::kAfterValue;
      } else if (c == ';') {
        ext_ = Ext::kBeforeName;
      } else {
        return false;
      }
      return true;
    case Ext::kQuoted: {
      unsigned char u = static_cast<unsigned char>(c);
      if (c == '"') {
        ext_ = Ext::kAfterValue;
      } else if (c == '\\') {
        ext_ = Ext::kQuotedPair;
      } else if (!(ws || u == 0x21 || (u >= 0x23 && u <= 0x7e) || u >= 0x80)) {
        return false;  // qdtext only
      }
      return true;
    }
    case Ext::kQuotedPair: {
      unsigned char u = static_cast<unsigned char>(c);
      if (!(ws || (u >= 0x21 && u != 0x7f))) return false;
      ext_ = Ext::kQuoted;
      return true;
    }
  }
  return false;
}

BodyDecoder::Step BodyDecoder::feed(const char* p, size_t n) {
  Step s;
  if (n == 0 || state_ == State::kDone) return s;
  if (state_ == State::kLength) {
    if (max_body_ > 0 && data_bytes_ + remaining_ > max_body_) {
      s.error = Error::kBodyTooLarge;
      return s;
    }
    size_t take = remaining_ < n ? static_cast<size_t>(remaining_) : n;
    remaining_ -= take;
    if (remaining_ == 0) state_ = State::kDone;
    s.n = take;
    return s;
  }
  if (state_ == State::kUntilClose) {
    data_bytes_ += n;
    if (max_body_ > 0 && data_bytes_ > max_body_) {
      s.error = Error::kBodyTooLarge;
      return s;
    }
    s.n = n;
    return s;
  }
  // Chunked. A step is a run of bytes that are all relayed or all skipped (trailer fields).
  auto skipped = [&](char c) {
    return state_ == State::kTrailerField || state_ == State::kTrailerLf ||
           (state_ == State::kTrailerStart && c != '\r');
  };
  s.forward = !skipped(p[0]);
  size_t i = 0;
  auto fail = [&](Error e) {
    s.n = i;
    s.error = e;
    return s;
  };
  while (i < n && state_ != State::kDone) {
    char c = p[i];
    if (skipped(c) == s.forward) break;  // the run changes between relayed and skipped
    switch (state_) {
      case State::kSize:
        if (isHex(c)) {
          if (++size_digits_ > 16) return fail(Error::kBadChunk);
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(hexValue(c));
        } else if (size_digits_ > 0 && c == '\r') {
          state_ = State::kSizeLf;
        } else if (size_digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
          state_ = State::kSizeExt;
          ext_ = Ext::kAfterSize;
          if (!extByte(c)) return fail(Error::kBadChunk);
        } else {
          return fail(Error::kBadChunk);
        }
        break;
      case State::kSizeExt:
        if (c == '\r' && ext_ != Ext::kBeforeName && ext_ != Ext::kBeforeValue &&
            ext_ != Ext::kQuoted && ext_ != Ext::kQuotedPair) {
          state_ = State::kSizeLf;
        } else if (++trailer_bytes_ > 4096 || !extByte(c)) {
          return fail(Error::kBadChunk);
        }
        break;
      case State::kSizeLf:
        if (c != '\n') return fail(Error::kBadChunk);
        trailer_bytes_ = 0;
        if (remaining_ == 0) {
          state_ = State::kTrailerStart;
        } else {
          if (max_body_ > 0 && data_bytes_ + remaining_ > max_body_) {
            return fail(Error::kBodyTooLarge);
          }
          data_bytes_ += remaining_;
          state_ = State::kData;
        }
        break;
      case State::kData: {
        size_t take = remaining_ < n - i ? static_cast<size_t>(remaining_) : n - i;
        remaining_ -= take;
        i += take;
        if (remaining_ == 0) state_ = State::kDataCr;
        continue;
      }
      case State::kDataCr:
        if (c != '\r') return fail(Error::kBadChunk);
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail(Error::kBadChunk);
        state_ = State::kSize;
        size_digits_ = 0;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kFinalLf;
        } else if (c == ' ' || c == '\t') {
          return fail(Error::kObsFold);
        } else if (isTokenChar(c)) {
          state_ = State::kTrailerField;
          in_name_ = true;
        } else {
          return fail(Error::kBadChunk);
        }
        break;
      case State::kTrailerField:
        if (++trailer_bytes_ > 16 * 1024) return fail(Error::kTrailerTooLarge);
        if (in_name_) {
          if (c == ':') {
            in_name_ = false;
          } else if (!isTokenChar(c)) {
            return fail(Error::kBadChunk);
          }
        } else if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (!valueChar(static_cast<unsigned char>(c))) {
          return fail(Error::kBadChunk);
        }
        break;
      case State::kTrailerLf:
        if (c != '\n') return fail(Error::kBadChunk);
        state_ = State::kTrailerStart;
        break;
      case State::kFinalLf:
        if (c != '\n') return fail(Error::kBadChunk);
        state_ = State::kDone;
        break;
      default:
        break;
    }
    ++i;
  }
  s.n = i;
  return s;
}

}  // namespace baton::gateway::http1
