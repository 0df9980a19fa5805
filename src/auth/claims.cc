#include "auth/claims.h"

#include <algorithm>

#include "core/ascii.h"

namespace baton::auth {
namespace {

bool containsWord(std::string_view text, std::string_view word) {
  if (word.empty()) return false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    if (text.substr(pos, end - pos) == word) return true;
    pos = end + 1;
  }
  return false;
}

bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool safeHeaderValue(std::string_view v) {
  if (v.size() > kMaxForwardedValue) return false;
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) return false;
  }
  return true;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    out += items[i];
  }
  return out;
}

}  // namespace

bool claimSatisfied(const Claims& claims, std::string_view name, std::string_view required) {
  const ClaimValue* v = claims.find(name);
  if (!v) return false;
  switch (v->kind) {
    case ClaimValue::Kind::kString:
      return v->text == required || containsWord(v->text, required);
    case ClaimValue::Kind::kArray:
      return std::find(v->items.begin(), v->items.end(), required) != v->items.end();
    case ClaimValue::Kind::kNumber:
    case ClaimValue::Kind::kBool:
      return v->text == required;
    default:
      return false;
  }
}

std::optional<std::string> firstUnmetRule(const Claims& claims,
                                          const std::map<std::string, std::string>& rules) {
  for (const auto& [name, required] : rules) {
    if (!claimSatisfied(claims, name, required)) return name;
  }
  return std::nullopt;
}

Result<ClaimForwarder> ClaimForwarder::create(const std::map<std::string, std::string>& forward) {
  static constexpr std::string_view kReserved[] = {"host",
                                                   "authorization",
                                                   "content-length",
                                                   "transfer-encoding",
                                                   "connection",
                                                   "upgrade",
                                                   "te",
                                                   "trailer",
                                                   "keep-alive",
                                                   "proxy-authorization",
                                                   "cookie",
                                                   "x-forwarded-for",
                                                   "x-forwarded-proto",
                                                   "x-forwarded-host"};
  ClaimForwarder f;
  for (const auto& [claim, header] : forward) {
    if (claim.empty()) return invalidArgument("forward: empty claim name");
    if (header.empty() || !std::all_of(header.begin(), header.end(), isTokenChar)) {
      return invalidArgument("forward: \"" + header + "\" (for claim \"" + claim +
                             "\") is not a valid header name");
    }
    std::string lower = lowerAscii(header);
    if (std::find(std::begin(kReserved), std::end(kReserved), lower) != std::end(kReserved)) {
      return invalidArgument("forward: header \"" + header + "\" is reserved by the gateway");
    }
    if (std::find(f.strip_.begin(), f.strip_.end(), lower) != f.strip_.end()) {
      return invalidArgument("forward: header \"" + header + "\" is used for two claims");
    }
    f.map_.emplace_back(claim, header);
    f.strip_.push_back(std::move(lower));
  }
  return f;
}

HeaderList ClaimForwarder::headers(const Claims& claims) const {
  HeaderList out;
  out.reserve(map_.size());
  for (const auto& [claim, header] : map_) {
    const ClaimValue* v = claims.find(claim);
    if (!v || v->kind == ClaimValue::Kind::kNull) continue;
    std::string value = v->kind == ClaimValue::Kind::kArray ? joined(v->items) : v->text;
    if (!safeHeaderValue(value)) continue;
    out.emplace_back(header, std::move(value));
  }
  return out;
}

}  // namespace baton::auth
