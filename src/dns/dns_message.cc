#include "dns/dns_message.h"

#include <algorithm>

namespace baton::dns {
namespace {

constexpr size_t kHeader = 12;
constexpr size_t kMaxName = 253;

uint16_t be16(std::string_view m, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(m[at]) << 8) | static_cast<uint8_t>(m[at + 1]));
}

void put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
void put32(std::string& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v & 0xffff));
}

// Writes `name` as labels; when it ends with `suffix` (the question's name, at offset 12),
// the suffix becomes a compression pointer.
void putName(std::string& out, std::string_view name, std::string_view question) {
  while (!name.empty()) {
    if (name == question) {
      put16(out, 0xC000 | kHeader);
      return;
    }
    size_t dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    out.push_back(static_cast<char>(label.size()));
    out.append(label);
    name = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
  }
  out.push_back('\0');
}

void putRecord(std::string& out, const Record& r, std::string_view question) {
  putName(out, r.name, question);
  put16(out, r.type);
  put16(out, kClassIN);
  put32(out, r.ttl);
  if (r.type == kTypeSRV) {
    std::string rdata;
    put16(rdata, r.srv.priority);
    put16(rdata, r.srv.weight);
    put16(rdata, r.srv.port);
    putName(rdata, r.srv.target, "");  // no pointers into a buffer it is not part of
    put16(out, static_cast<uint16_t>(rdata.size()));
    out += rdata;
  } else if (r.type == kTypePTR) {
    std::string rdata;
    putName(rdata, r.ptr, "");
    put16(out, static_cast<uint16_t>(rdata.size()));
    out += rdata;
  } else {
    put16(out, 4);
    put32(out, r.ipv4);
  }
}

std::string header(uint16_t id, uint8_t opcode, bool aa, bool tc, bool rd, Rcode rcode, uint16_t qd,
                   uint16_t an, uint16_t ar) {
  std::string out;
  put16(out, id);
  out.push_back(static_cast<char>(0x80 | ((opcode & 0x0f) << 3) | (aa ? 0x04 : 0) |
                                  (tc ? 0x02 : 0) | (rd ? 1 : 0)));
  out.push_back(static_cast<char>(static_cast<uint8_t>(rcode) & 0x0f));
  put16(out, qd);
  put16(out, an);
  put16(out, 0);
  put16(out, ar);
  return out;
}

}  // namespace

bool isValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxName) return false;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || label.size() > 63) return false;
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

ParseResult parseQuery(std::string_view m) {
  ParseResult r;
  if (m.size() < kHeader) return r;
  Header h;
  h.id = be16(m, 0);
  const uint8_t flags = static_cast<uint8_t>(m[2]);
  h.is_response = (flags & 0x80) != 0;
  h.opcode = (flags >> 3) & 0x0f;
  h.recursion_desired = (flags & 0x01) != 0;
  r.header = h;
  if (h.is_response) {
    r.error = ParseError::kNotAQuery;
    return r;
  }
  if (be16(m, 4) != 1) {
    r.error = ParseError::kNotOneQuestion;
    return r;
  }
  r.error = ParseError::kBadQuestion;
  // The question's name: plain labels only (a pointer in a question is not something a real
  // client sends, and refusing it keeps the parser free of loops).
  size_t at = kHeader;
  std::string name;
  while (true) {
    if (at >= m.size()) return r;
    const uint8_t len = static_cast<uint8_t>(m[at++]);
    if (len == 0) break;
    if (len > 63 || at + len > m.size()) return r;
    if (!name.empty()) name.push_back('.');
    for (size_t i = 0; i < len; ++i) {
      char c = m[at + i];
      if (c == '.') return r;  // a dot inside a label would read back as two labels
      name.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    }
    if (name.size() > kMaxName) return r;
    at += len;
  }
  if (at + 4 > m.size()) return r;
  if (!name.empty() && !isValidName(name)) return r;  // what is echoed must encode the same
  Query q;
  q.id = h.id;
  q.opcode = h.opcode;
  q.recursion_desired = h.recursion_desired;
  q.name = std::move(name);
  q.qtype = be16(m, at);
  q.qclass = be16(m, at + 2);
  r.query = std::move(q);
  return r;
}

std::string encodeResponse(const Query& q, const Answer& a, size_t max_bytes) {
  max_bytes = std::min(max_bytes, kMaxTcpAnswer);
  std::string question;
  putName(question, q.name, "");
  put16(question, q.qtype);
  put16(question, q.qclass);
  std::string body;
  uint16_t an = 0, ar = 0;
  const size_t fixed = kHeader + question.size();
  for (const Record& rec : a.answers) {
    std::string one;
    putRecord(one, rec, q.name);
    if (fixed + body.size() + one.size() > max_bytes) break;
    body += one;
    ++an;
  }
  const bool truncated = an < a.answers.size();
  if (!truncated) {
    for (const Record& rec : a.additional) {
      std::string one;
      putRecord(one, rec, q.name);
      if (fixed + body.size() + one.size() > max_bytes) break;
      body += one;
      ++ar;
    }
  }
  return header(q.id, q.opcode, a.authoritative, truncated, q.recursion_desired, a.rcode, 1, an,
                ar) +
         question + body;
}

bool isTruncated(std::string_view response) {
  return response.size() >= kHeader && (static_cast<uint8_t>(response[2]) & 0x02) != 0;
}

std::string encodeError(const Header& h, Rcode rcode) {
  return header(h.id, h.opcode, false, false, h.recursion_desired, rcode, 0, 0, 0);
}

}  // namespace baton::dns
