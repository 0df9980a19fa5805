// JSON forms of the model, for the store and the API. nlohmann's ADL hooks; decoding checks
// types and throws nlohmann::json::exception on malformed input; use decode<T>() to get a
// Result instead.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

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

// A stable hash of a service spec (hex), to tell whether instances run the current spec.
std::string specHash(const ServiceSpec& spec);

}  // namespace baton::model
