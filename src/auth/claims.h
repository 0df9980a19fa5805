// Per-route claim rules and the claim -> header forward mapping.
//
// Rules (model::Route::claims, claim -> required value): a rule holds when the claim
//  - is a string equal to the value, or containing it as a space-separated word (OAuth
//    `scope` = "a b c"), or
//  - is an array with an element equal to the value, or
//  - is a number or boolean whose JSON text equals the value ("42", "true").
// Forwarding: strings as is, numbers and booleans as JSON text, arrays joined by ",", objects
// as compact JSON; null or absent claims produce no header. A value with a control character
// (CR, LF, NUL, ...) or longer than kMaxForwardedValue is not forwarded (no header injection).
//
// Thread safety: ClaimForwarder is immutable after create(); the functions are pure.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/jose.h"
#include "core/result.h"

namespace baton::auth {

inline constexpr size_t kMaxForwardedValue = 4096;

using HeaderList = std::vector<std::pair<std::string, std::string>>;

bool claimSatisfied(const Claims& claims, std::string_view name, std::string_view required);
// The first rule (by claim name) that does not hold, or nullopt when all hold.
std::optional<std::string> firstUnmetRule(const Claims& claims,
                                          const std::map<std::string, std::string>& rules);

class ClaimForwarder {
 public:
  ClaimForwarder() = default;
  // `forward`: claim -> header name. Header names must be RFC 9110 tokens; names that the
  // gateway owns (Host, Authorization, Content-Length, ...) are refused.
  static Result<ClaimForwarder> create(const std::map<std::string, std::string>& forward);

  // Header (name as configured, value) pairs for the verified claims.
  HeaderList headers(const Claims& claims) const;
  // The configured header names, lowercased: strip these from every incoming request so a
  // client can never supply them itself.
  const std::vector<std::string>& stripHeaders() const { return strip_; }

 private:
  std::vector<std::pair<std::string, std::string>> map_;  // claim, header
  std::vector<std::string> strip_;
};


}  // namespace baton::auth
