#include "secrets/kv.h"

#include <gtest/gtest.h>

namespace baton::secrets {
namespace {

const TimePoint t0 = fromUnixMillis(1'700'000'000'000);

Metadata written(int n, int max_versions = kDefaultMaxVersions) {
  Metadata m;
  m.max_versions = max_versions;
  for (int i = 0; i < n; ++i) m = planPut(m, std::nullopt, t0).value().next;
  return m;
}

TEST(SecretsKvTest, PathsAndKeysAreStrict) {
  EXPECT_TRUE(checkPath("shop/db").isOk());
  EXPECT_TRUE(checkPath("a.b/c-d/E_9").isOk());
  for (const char* bad : {"", "/shop", "shop/", "shop//db", "shop/../db", "./db", "shop/db x",
                          "shop/db#1", "shop\\db", "a/b/c/d/e/f/g/h/i/j/k"}) {
    EXPECT_FALSE(checkPath(bad).isOk()) << bad;
  }
  EXPECT_FALSE(checkPath(std::string(201, 'a')).isOk());
  EXPECT_TRUE(checkKey("DB_PASSWORD").isOk());
  EXPECT_TRUE(checkKey("_x1").isOk());
  for (const char* bad : {"", "1x", "a-b", "a.b", "a/b", "a b", "a=b"}) {
    EXPECT_FALSE(checkKey(bad).isOk()) << bad;
  }
}

TEST(SecretsKvTest, WritesMakeVersionsAndCasGuardsThem) {
  Metadata m;
  auto p = planPut(m, 0, t0);  // create-only on a new secret
  ASSERT_TRUE(p.isOk());
  EXPECT_EQ(p->version, 1);
  m = p->next;
  auto again = planPut(m, 0, t0);
  EXPECT_EQ(again.status().code(), Code::kConflict);
  EXPECT_NE(again.status().message().find("exists (version 1)"), std::string::npos);
  EXPECT_EQ(planPut(m, 2, t0).status().code(), Code::kConflict);
  p = planPut(m, 1, t0);
  ASSERT_TRUE(p.isOk());
  EXPECT_EQ(p->version, 2);
  EXPECT_EQ(planPut(p->next, std::nullopt, t0)->version, 3);
}

TEST(SecretsKvTest, MaxVersionsDropsTheOldest) {
  Metadata m = written(3, 3);
  auto p = planPut(m, std::nullopt, t0);
  ASSERT_TRUE(p.isOk());
  EXPECT_EQ(p->drop, (std::set<int64_t>{1}));
  EXPECT_EQ(p->next.versions.size(), 3u);
  EXPECT_EQ(p->next.versions.begin()->first, 2);
  EXPECT_EQ(readable(p->next, 1).status().code(), Code::kNotFound);
  auto lower = planMaxVersions(p->next, 1);
  ASSERT_TRUE(lower.isOk());
  EXPECT_EQ(lower->drop, (std::set<int64_t>{2, 3}));
  EXPECT_EQ(*readable(lower->next, 0), 4);
  EXPECT_FALSE(planMaxVersions(m, 0).isOk());
  EXPECT_FALSE(planMaxVersions(m, kMaxMaxVersions + 1).isOk());
}

TEST(SecretsKvTest, DeleteUndeleteDestroy) {
  Metadata m = written(2);
  EXPECT_EQ(*readable(m, 0), 2);
  auto d = planDelete(m, {}, t0);  // the current version
  ASSERT_TRUE(d.isOk());
  auto r = readable(*d, 0);
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("deleted"), std::string::npos);
  EXPECT_EQ(*readable(*d, 1), 1) << "older versions stay readable";
  auto u = planUndelete(*d, {2});
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(*readable(*u, 0), 2);
  auto x = planDestroy(*u, {1, 2});
  ASSERT_TRUE(x.isOk());
  EXPECT_NE(readable(*x, 1).status().message().find("destroyed"), std::string::npos);
  auto back = planUndelete(*x, {2});
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(readable(*back, 2).status().code(), Code::kNotFound) << "destroyed stays destroyed";
  EXPECT_EQ(planDelete(m, {7}, t0).status().code(), Code::kNotFound);
  EXPECT_EQ(planDestroy(Metadata{}, {}).status().code(), Code::kNotFound);
  EXPECT_EQ(readable(Metadata{}, 0).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace baton::secrets
