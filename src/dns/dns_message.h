// A small DNS codec (RFC 1035, 2782): what the agent's DNS server needs and nothing more. Pure,
// bounded and fuzzed (dns_fuzz.cc): it reads one question from a query and writes answers of
// type A and SRV with name compression. Anything it does not understand is an error value, never
// a crash: the server answers FORMERR or NOTIMP, or drops what is not a query at all.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace baton::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypePTR = 12;
inline constexpr uint16_t kTypeAAAA = 28;
inline constexpr uint16_t kTypeSRV = 33;
inline constexpr uint16_t kTypeANY = 255;
inline constexpr uint16_t kClassIN = 1;
inline constexpr size_t kMaxUdpAnswer = 512;  // without EDNS (RFC 1035 4.2.1)
inline constexpr size_t kMaxTcpAnswer = 65535;  // the 2-byte length prefix's limit (RFC 1035 4.2.2)

enum class Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5
};

struct Query {
  uint16_t id = 0;
  uint8_t opcode = 0;
  bool recursion_desired = false;
  std::string name;  // lower case, no trailing dot: "web.shop.service.baton"
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

// The header, for an error answer to a message whose question could not be read.
struct Header {
  uint16_t id = 0;
  bool is_response = false;
  uint8_t opcode = 0;
  bool recursion_desired = false;
};

enum class ParseError { kTooShort, kNotAQuery, kBadQuestion, kNotOneQuestion };

// Reads the header and the one question of `msg`. Additional records (EDNS OPT) are ignored.
struct ParseResult {
  std::optional<Query> query;
  std::optional<Header> header;  // whenever the 12-byte header was there
  ParseError error = ParseError::kTooShort;
};
ParseResult parseQuery(std::string_view msg);

struct SrvData {
  uint16_t priority = 1;
  uint16_t weight = 1;
  uint16_t port = 0;
  std::string target;  // a name, no trailing dot
};

struct Record {
  std::string name;  // no trailing dot
  uint16_t type = kTypeA;
  uint32_t ttl = 0;
  uint32_t ipv4 = 0;  // type A, host byte order
  SrvData srv;        // type SRV
  std::string ptr;    // type PTR: a name, no trailing dot
};

struct Answer {
  Rcode rcode = Rcode::kNoError;
  bool authoritative = true;
  std::vector<Record> answers;
  std::vector<Record> additional;
};

// The response to `q`: the question echoed, then as many answers (and then additional records)
// as fit in `max_bytes` (at most kMaxTcpAnswer). When not every answer fits, TC is set and the
// answers that fit are sent whole, with no additional records: a client that can, asks again
// over TCP (RFC 2181 9, RFC 7766 5); one that cannot still has a usable subset. Additional
// records that do not fit after a complete answer section are left out without TC (RFC 2181 9:
// TC is not set for extra information).
std::string encodeResponse(const Query& q, const Answer& a, size_t max_bytes = kMaxUdpAnswer);
// Whether a response has TC set (false for anything shorter than a header).
bool isTruncated(std::string_view response);
// An answer with just a header and `rcode` (for queries whose question could not be read).
std::string encodeError(const Header& h, Rcode rcode);

// "a.b" -> true when every label is 1-63 bytes of [a-z0-9-] and the whole is at most 253.
bool isValidName(std::string_view name);

}  // namespace baton::dns
