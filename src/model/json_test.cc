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

}  // namespace
}  // namespace baton::model
