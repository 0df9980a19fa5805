// JSON forms of the model, for the store and the API. nlohmann's ADL hooks; decoding checks
// types and throws nlohmann::json::exception on malformed input; use decode<T>() to get a
// Result instead.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/result.h"
#include "model/app.h"
#include "model/records.h"

namespace baton::model {

void to_json(nlohmann::json& j, const HealthCheck& v);
void from_json(const nlohmann::json& j, HealthCheck& v);
void to_json(nlohmann::json& j, const ScheduleEntry& v);
void from_json(const nlohmann::json& j, ScheduleEntry& v);
void to_json(nlohmann::json& j, const ScaleSpec& v);
void from_json(const nlohmann::json& j, ScaleSpec& v);
void to_json(nlohmann::json& j, const ServiceSpec& v);
void from_json(const nlohmann::json& j, ServiceSpec& v);
void to_json(nlohmann::json& j, const Route& v);
void from_json(const nlohmann::json& j, Route& v);
void to_json(nlohmann::json& j, const AppSpec& v);
void from_json(const nlohmann::json& j, AppSpec& v);
void to_json(nlohmann::json& j, const AppRecord& v);
void from_json(const nlohmann::json& j, AppRecord& v);
void to_json(nlohmann::json& j, const InstanceRecord& v);
void from_json(const nlohmann::json& j, InstanceRecord& v);
void to_json(nlohmann::json& j, const InstanceStatus& v);
void from_json(const nlohmann::json& j, InstanceStatus& v);
void to_json(nlohmann::json& j, const NodeRecord& v);
void from_json(const nlohmann::json& j, NodeRecord& v);
void to_json(nlohmann::json& j, const ScaleOverride& v);
void from_json(const nlohmann::json& j, ScaleOverride& v);
void to_json(nlohmann::json& j, const RolloutRecord& v);
void from_json(const nlohmann::json& j, RolloutRecord& v);
void to_json(nlohmann::json& j, const IntentionRecord& v);
void from_json(const nlohmann::json& j, IntentionRecord& v);

template <typename T>
std::string encode(const T& v) {
  return nlohmann::json(v).dump();
}

template <typename T>
Result<T> decode(std::string_view text) {
  try {
    return nlohmann::json::parse(text).get<T>();
  } catch (const nlohmann::json::exception& e) {
    return invalidArgument(std::string("malformed record: ") + e.what());
  }
}

// The deepest nesting of arrays and objects accepted from outside (API request bodies). nlohmann
// parses deep input without recursing, but copying, comparing, dumping and get<T>() recurse once
// per level: 100,000 nested '[' overflow the stack there. Baton's own documents nest < 10 deep.
inline constexpr int kMaxJsonDepth = 64;

// Whether the arrays and objects in `text` nest at most `max_depth` deep (strings and their
// escapes honoured). Ok, or kInvalidArgument "nesting deeper than 64 levels at line 1, column
// 65". One pass, no allocation; malformed JSON is left to the parser. Run it on untrusted text
// before anything else touches it.
Status checkJsonDepth(std::string_view text, int max_depth = kMaxJsonDepth);

// Parses untrusted JSON: checkJsonDepth first, then nlohmann. Errors are kInvalidArgument with a
// message for the client: the depth message above, or "malformed JSON: parse error at line 1,
// column 13: ...". Throws nothing but std::bad_alloc.
Result<nlohmann::json> parseJson(std::string_view text, int max_depth = kMaxJsonDepth);

// A stable hash of a service spec (hex), to tell whether instances run the current spec.
// The spec an instance of `spec` runs: a service that rolls when a secret changes names the
// version of each of its secrets (`versions` by path; 0: none readable), so that a new version
// is a new spec hash, hence a rolling update (docs/secrets.md "Delivery").
ServiceSpec pinSecretVersions(const ServiceSpec& spec, const std::map<std::string, int64_t>& versions);
std::string specHash(const ServiceSpec& spec);

}  // namespace baton::model
