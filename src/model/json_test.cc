#include "model/json.h"

#include <gtest/gtest.h>

namespace baton::model {
namespace {

ServiceSpec sampleService() {
  ServiceSpec s;
  s.name = "web";
  s.run = {"python3", "-m", "http.server", "${PORT}"};
  s.port = 8000;
  s.env = {{"GREETING", "hello"}};
  s.health.kind = HealthCheck::Kind::kHttp;
  s.health.path = "/healthz";
  s.upstreams = {"cart"};
  s.cpu = 0.25;
  s.memory = 128ull << 20;
  s.scale.min = 0;
  s.scale.max = 5;
  ScheduleEntry e;
  e.name = "black-friday";
  e.start = "2026-11-27 00:00";
  e.end = "2026-11-30 23:59";
  e.timezone = "America/Detroit";
  e.min = 2;
  e.max = 100;
  s.scale.schedule.push_back(e);
  return s;
}

TEST(ModelJson, AppRecordRoundTrips) {
  AppRecord rec;
  rec.spec.name = "shop";
  rec.spec.services["web"] = sampleService();
  Route route;
  route.service = "web";
  rec.spec.routes.push_back(route);
  rec.version = 7;
  rec.updated_at = fromUnixMillis(1234);
  auto back = decode<AppRecord>(encode(rec));
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->spec, rec.spec);
  EXPECT_EQ(back->version, 7);
  EXPECT_EQ(back->updated_at, rec.updated_at);
}

TEST(ModelJson, StatusRoundTripsAndRejectsUnknownState) {
  InstanceStatus st;
  st.id = "i-1";
  st.state = InstanceState::kHealthy;
  st.last_exit_code = 137;
  auto back = decode<InstanceStatus>(encode(st));
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(back->state, InstanceState::kHealthy);
  EXPECT_EQ(back->last_exit_code, 137);
  EXPECT_FALSE(decode<InstanceStatus>(R"({"id":"x","state":"dancing"})").isOk());
  EXPECT_FALSE(decode<InstanceStatus>("{not json").isOk());
}

TEST(ModelJson, SpecHashIgnoresScaleButNotRun) {
  ServiceSpec a = sampleService();
  ServiceSpec b = a;
  b.scale.max = 50;
  EXPECT_EQ(specHash(a), specHash(b));
  b.env["GREETING"] = "hi";
  EXPECT_NE(specHash(a), specHash(b));
}

std::string repeat(std::string_view unit, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += unit;
  return out;
}

// nlohmann parses these, but copying, dumping or comparing the result overflowed the stack.
TEST(ModelJson, DeepNestingIsRefusedBeforeParsing) {
  const int n = 100'000;
  Result<nlohmann::json> objects = parseJson(
      "{\"manifest\": \"x\",\n \"a\": " + repeat("{\"a\":", n) + "1" + repeat("}", n) + "}");
  ASSERT_FALSE(objects.isOk());
  EXPECT_EQ(objects.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(objects.status().message(),
            "nesting deeper than 64 levels at line 2, column 322: expected at most 64 levels of "
            "arrays and objects");

  Result<nlohmann::json> arrays = parseJson(repeat("[", n) + repeat("]", n));
  ASSERT_FALSE(arrays.isOk());
  EXPECT_EQ(arrays.status().message().substr(0, 60),
            "nesting deeper than 64 levels at line 1, column 65: expected");
  EXPECT_FALSE(checkJsonDepth(repeat("[", n)).isOk());  // unterminated: still refused
}

TEST(ModelJson, DepthIsCountedOutsideStringsOnly) {
  EXPECT_TRUE(checkJsonDepth(repeat("[", 64) + repeat("]", 64)).isOk());
  EXPECT_FALSE(checkJsonDepth(repeat("[", 65) + repeat("]", 65)).isOk());
  EXPECT_TRUE(checkJsonDepth("[[1]]", 2).isOk());
  EXPECT_FALSE(checkJsonDepth("[[1]]", 1).isOk());
  // Siblings do not add up; brackets in strings (escaped quotes included) are text.
  EXPECT_TRUE(checkJsonDepth(repeat("[1],", 1000), 1).isOk());
  std::string text = "{\"a\": \"" + repeat("[{", 100) + "\\\"" + repeat("[{", 100) + "\"}";
  EXPECT_TRUE(checkJsonDepth(text, 1).isOk());
  Result<nlohmann::json> j = parseJson(text);
  ASSERT_TRUE(j.isOk()) << j.status().message();
  EXPECT_EQ((*j)["a"].get<std::string>().size(), 401u);
  // An escaped backslash does not escape the closing quote.
  EXPECT_TRUE(checkJsonDepth(R"({"a\\": [[1]]})", 3).isOk());
  EXPECT_FALSE(checkJsonDepth(R"({"a\\": [[1]]})", 2).isOk());
}

TEST(ModelJson, ParseJsonReportsMalformedText) {
  Result<nlohmann::json> ok = parseJson(R"({"manifest": "app = \"shop\"", "n": [1, 2]})");
  ASSERT_TRUE(ok.isOk()) << ok.status().message();
  EXPECT_EQ((*ok)["n"][1], 2);
  Result<nlohmann::json> bad = parseJson("{\"manifest\": ");
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(bad.status().message().starts_with("malformed JSON: parse error at line 1, column"))
      << bad.status().message();
  EXPECT_FALSE(parseJson("").isOk());
  EXPECT_FALSE(parseJson("[1]]").isOk());
}

}  // namespace
}  // namespace baton::model
