#include "dns/resolver.h"

#include <cstdio>

#include "core/ipv4.h"
#include "mesh/vips.h"
#include "model/names.h"

namespace baton::dns {
namespace {

constexpr std::string_view kServiceZone = ".service.baton";
constexpr std::string_view kAddrZone = ".addr.baton";
constexpr std::string_view kReverseZone = ".in-addr.arpa";

std::string addrName(uint32_t ip) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", ip);
  return std::string(buf) + std::string(kAddrZone);
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Answer rcode(Rcode r) {
  Answer a;
  a.rcode = r;
  return a;
}

// Where `caller` (or the host) reaches `service`: (address, port) pairs.
std::vector<std::pair<uint32_t, uint16_t>> targets(const mesh::MeshView& view,
                                                   const mesh::ServiceRef& service,
                                                   const std::optional<mesh::ServiceRef>& caller) {
  std::vector<std::pair<uint32_t, uint16_t>> out;
  if (caller) {
    for (const auto& [addr, svc] : view.vips) {
      if (svc == service) {
        if (auto ip = parseIpv4(addr)) out.push_back({*ip, 80});
      }
    }
    return out;
  }
  if (const auto* eps = view.healthyOf(service)) {
    for (const auto& e : *eps) {
      if (auto ip = parseIpv4(e.address)) out.push_back({*ip, static_cast<uint16_t>(e.port)});
    }
  }
  return out;
}

// "7.64.254.169.in-addr.arpa" -> 169.254.64.7; nullopt when it is not four decimal labels.
std::optional<uint32_t> reverseAddress(std::string_view name) {
  std::string_view rest = name.substr(0, name.size() - kReverseZone.size());
  std::string dotted;
  for (int i = 0; i < 4; ++i) {
    size_t dot = rest.rfind('.');
    std::string_view label = dot == std::string_view::npos ? rest : rest.substr(dot + 1);
    if (!dotted.empty()) dotted += '.';
    dotted += label;
    if (dot == std::string_view::npos) {
      if (i != 3) return std::nullopt;
      rest = {};
    } else {
      rest = rest.substr(0, dot);
    }
  }
  if (!rest.empty()) return std::nullopt;
  return parseIpv4(dotted);
}

// PTR for the addresses connections to an instance come from ("Who is calling"): a service
// address names its service, the gateway's names the gateway. An instance learns the name of a
// service only if one of the two may call the other (or it is its own).
Answer reverse(const mesh::MeshView& view, const Query& q,
               const std::optional<mesh::ServiceRef>& caller) {
  auto ip = reverseAddress(q.name);
  if (!ip) return rcode(Rcode::kNxDomain);
  const std::string address = formatIpv4(*ip);
  if (!mesh::vipSlot(address)) return rcode(Rcode::kRefused);  // not the mesh's
  const bool wants_ptr = q.qtype == kTypePTR || q.qtype == kTypeANY;
  Answer a;
  if (address == mesh::kGatewayAddress) {
    if (wants_ptr) a.answers.push_back({q.name, kTypePTR, kTtlSeconds, 0, {}, "gateway.baton"});
    return a;
  }
  auto it = view.vips.find(address);
  if (it == view.vips.end()) return rcode(Rcode::kNxDomain);
  const mesh::ServiceRef& s = it->second;
  if (caller && !(s == *caller) && !view.decide(*caller, s).allowed &&
      !view.decide(s, *caller).allowed) {
    return rcode(Rcode::kNxDomain);
  }
  if (wants_ptr) {
    a.answers.push_back(
        {q.name, kTypePTR, kTtlSeconds, 0, {}, s.service + "." + s.app + std::string(kServiceZone)});
  }
  return a;
}

}  // namespace

Answer resolve(const mesh::MeshView& view, const Query& q,
               const std::optional<mesh::ServiceRef>& caller) {
  if (q.opcode != 0) return rcode(Rcode::kNotImp);
  if (q.qclass != kClassIN) return rcode(Rcode::kNotImp);
  const std::string_view name = q.name;
  if (endsWith(name, kReverseZone)) return reverse(view, q, caller);
  if (name != "baton" && !endsWith(name, ".baton")) return rcode(Rcode::kRefused);
  const bool wants_a = q.qtype == kTypeA || q.qtype == kTypeANY;
  const bool wants_srv = q.qtype == kTypeSRV || q.qtype == kTypeANY;

  if (endsWith(name, kAddrZone)) {
    std::string_view hex = name.substr(0, name.size() - kAddrZone.size());
    uint32_t ip = 0;
    bool ok = hex.size() == 8;
    for (char c : hex) {
      int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      ok = ok && v >= 0;
      ip = ip << 4 | static_cast<uint32_t>(v < 0 ? 0 : v);
    }
    if (!ok) return rcode(Rcode::kNxDomain);
    Answer a;
    if (wants_a) a.answers.push_back({q.name, kTypeA, kTtlSeconds, ip, {}, {}});
    return a;
  }
  if (!endsWith(name, kServiceZone)) return rcode(Rcode::kNxDomain);
  std::string_view rest = name.substr(0, name.size() - kServiceZone.size());
  mesh::ServiceRef service;
  auto dot = rest.find('.');
  if (dot == std::string_view::npos) {
    if (!caller || !model::isValidName(rest)) return rcode(Rcode::kNxDomain);
    service = {caller->app, std::string(rest)};
  } else {
    std::string_view svc = rest.substr(0, dot), app = rest.substr(dot + 1);
    if (!model::isValidName(svc) || !model::isValidName(app)) return rcode(Rcode::kNxDomain);
    service = {std::string(app), std::string(svc)};
  }
  if (!view.upstreams.count(service.str())) return rcode(Rcode::kNxDomain);  // no such service
  if (caller && !view.decide(*caller, service).allowed) return rcode(Rcode::kNxDomain);

  Answer a;
  for (const auto& [ip, port] : targets(view, service, caller)) {
    if (wants_a) a.answers.push_back({q.name, kTypeA, kTtlSeconds, ip, {}, {}});
    if (wants_srv) {
      Record srv{q.name, kTypeSRV, kTtlSeconds, 0, {1, 1, port, addrName(ip)}, {}};
      a.answers.push_back(srv);
      a.additional.push_back({addrName(ip), kTypeA, kTtlSeconds, ip, {}, {}});
    }
  }
  return a;
}

Reply reply(const mesh::MeshView& view, std::string_view msg, const std::string& from,
            size_t max_bytes) {
  Reply r;
  ParseResult p = parseQuery(msg);
  if (!p.query) {
    if (!p.header || p.header->is_response) return r;  // not a query: never answer
    r.bytes = encodeError(*p.header, p.error == ParseError::kNotOneQuestion && p.header->opcode != 0
                                         ? Rcode::kNotImp
                                         : Rcode::kFormErr);
    return r;
  }
  std::optional<mesh::ServiceRef> caller;
  if (auto it = view.callers.find(from); it != view.callers.end()) caller = it->second;
  Answer a = resolve(view, *p.query, caller);
  r.outcome = a.rcode == Rcode::kNxDomain  ? Outcome::kNxDomain
              : a.rcode == Rcode::kRefused ? Outcome::kRefused
                                           : Outcome::kAnswered;
  r.bytes = encodeResponse(*p.query, a, max_bytes);
  r.truncated = isTruncated(r.bytes);
  return r;
}

}  // namespace baton::dns
