#include "node/run_as.h"

#include <gtest/gtest.h>

#include <set>

namespace baton::node {
namespace {

UserDb fakeDb(std::set<uint32_t> used = {}) {
  UserDb db;
  db.by_name = [](const std::string& name) -> std::optional<UserEntry> {
    if (name == "root") return UserEntry{"root", 0, 0, {0}};
    if (name == "www-data") return UserEntry{"www-data", 33, 33, {33, 4}};
    return std::nullopt;
  };
  db.uid_exists = [used](uint32_t uid) { return used.count(uid) > 0; };
  return db;
}

TEST(RunAs, DefaultIsADynamicUidOfTheServicesOwn) {
  RunAsRequest req{.app = "shop", .service = "web"};
  auto a = resolveRunAs(req, fakeDb());
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_GE(a->uid, kDynamicUidFirst);
  EXPECT_LT(a->uid, int64_t{kDynamicUidFirst} + kDynamicUidCount);
  EXPECT_EQ(a->gid, a->uid);
  EXPECT_TRUE(a->groups.empty());
  // Stable for the service, different for another one.
  EXPECT_EQ(resolveRunAs(req, fakeDb())->uid, a->uid);
  EXPECT_NE(resolveRunAs({.app = "shop", .service = "cart"}, fakeDb())->uid, a->uid);
  EXPECT_NE(resolveRunAs({.app = "blog", .service = "web"}, fakeDb())->uid, a->uid);
}

TEST(RunAs, DynamicUidsSkipTakenOnes) {
  const uint32_t first = dynamicUidFor("shop", "web");
  RunAsRequest req{.app = "shop", .service = "web"};
  req.taken_by_other_service = [&](uint32_t uid) { return uid == first; };
  auto a = resolveRunAs(req, fakeDb({first + 1}));
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->uid, first + 2);
}

TEST(RunAs, WrapsAroundTheRange) {
  // Every UID but the range's first is taken: the probe wraps to it.
  RunAsRequest req{.app = "shop", .service = "web"};
  req.taken_by_other_service = [](uint32_t uid) { return uid != kDynamicUidFirst; };
  auto a = resolveRunAs(req, fakeDb());
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->uid, kDynamicUidFirst);
  req.taken_by_other_service = [](uint32_t) { return true; };
  EXPECT_FALSE(resolveRunAs(req, fakeDb()).isOk());
}

TEST(RunAs, NamedUserWithItsGroups) {
  auto a = resolveRunAs({.app = "shop", .service = "web", .user = "www-data"}, fakeDb());
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->uid, 33);
  EXPECT_EQ(a->gid, 33);
  EXPECT_EQ(a->groups, (std::vector<uint32_t>{33, 4}));
  auto missing = resolveRunAs({.app = "shop", .service = "web", .user = "nosuch"}, fakeDb());
  ASSERT_FALSE(missing.isOk());
  EXPECT_NE(missing.status().message().find("\"nosuch\""), std::string::npos);
}

TEST(RunAs, RootOnlyWhenTheAgentAllowsIt) {
  auto refused = resolveRunAs({.app = "shop", .service = "web", .user = "root"}, fakeDb());
  ASSERT_FALSE(refused.isOk());
  EXPECT_NE(refused.status().message().find("allow_root"), std::string::npos);
  auto allowed =
      resolveRunAs({.app = "shop", .service = "web", .user = "root", .allow_root = true}, fakeDb());
  ASSERT_TRUE(allowed.isOk());
  EXPECT_EQ(allowed->uid, 0);
}

TEST(RunAs, AnAgentThatIsNotRootRunsEverythingAsItself) {
  auto a = resolveRunAs({.app = "shop", .service = "web", .agent_uid = 1000}, fakeDb());
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->uid, -1);
  auto other =
      resolveRunAs({.app = "shop", .service = "web", .user = "www-data", .agent_uid = 1000},
                   fakeDb());
  EXPECT_FALSE(other.isOk());
  auto self = resolveRunAs({.app = "shop", .service = "web", .user = "www-data", .agent_uid = 33},
                           fakeDb());
  ASSERT_TRUE(self.isOk());
  EXPECT_EQ(self->uid, -1);
}

}  // namespace
}  // namespace baton::node
