// instance_net: the pure part (names, slots, parsing) and the command sequence with a fake
// runner; with root and iproute2, one real namespace is made and removed.
#include "drivers/instance_net.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace baton::drivers {
namespace {

TEST(InstanceNetTest, FormatsAndParsesAddresses) {
  EXPECT_EQ(formatIpv4(kInstanceNetBase), "169.254.128.0");
  EXPECT_EQ(parseIpv4("169.254.128.7"), kInstanceNetBase + 7);
  EXPECT_EQ(parseIpv4("255.255.255.255"), 0xffffffffu);
  EXPECT_FALSE(parseIpv4("169.254.128").has_value());
  EXPECT_FALSE(parseIpv4("169.254.128.256").has_value());
  EXPECT_FALSE(parseIpv4("169.254.128.1/31").has_value());
  EXPECT_FALSE(parseIpv4("").has_value());
  EXPECT_FALSE(parseIpv4("1..2.3").has_value());
}

TEST(InstanceNetTest, InterfaceNamesFitIfnamsizAndDifferPerNamespace) {
  std::string a = hostInterfaceName("baton-web-1");
  std::string b = hostInterfaceName("baton-web-2");
  EXPECT_EQ(a.size(), 12u);
  EXPECT_LE(a.size(), 15u);
  EXPECT_EQ(a.rfind("bt", 0), 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, hostInterfaceName("baton-web-1"));  // stable across restarts
  for (char c : a.substr(2)) EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(c))) << a;
}

TEST(InstanceNetTest, SlotsArePointToPointPairsInThePool) {
  EXPECT_EQ(formatIpv4(hostAddress(0)), "169.254.128.0");
  EXPECT_EQ(formatIpv4(instanceAddress(0)), "169.254.128.1");
  EXPECT_EQ(formatIpv4(hostAddress(3)), "169.254.128.6");
  EXPECT_EQ(formatIpv4(instanceAddress(3)), "169.254.128.7");
  EXPECT_EQ(formatIpv4(instanceAddress(kInstanceNetSlots - 1)), "169.254.255.255");
  EXPECT_EQ(hostAddress(5) % 2, 0u);
  EXPECT_EQ(instanceAddress(5) % 2, 1u);
  EXPECT_EQ(slotOf(*parseIpv4("169.254.128.7")), 3u);
  EXPECT_EQ(slotOf(*parseIpv4("169.254.128.6")), 3u);
  EXPECT_FALSE(slotOf(*parseIpv4("169.254.127.255")).has_value());
  EXPECT_FALSE(slotOf(*parseIpv4("10.0.0.1")).has_value());

  InstanceLink link = linkFor("baton-x", 3);
  EXPECT_EQ(link.host_ip, "169.254.128.6");
  EXPECT_EQ(link.instance_ip, "169.254.128.7");
  EXPECT_EQ(link.host_ifname, hostInterfaceName("baton-x"));
  EXPECT_EQ(link.netnsPath(), "/var/run/netns/baton-x");
}

TEST(InstanceNetTest, AllocationKeepsANamesSlotAndSkipsUsedOnes) {
  auto first = allocateSlot("baton-a", {});
  ASSERT_TRUE(first.isOk());
  EXPECT_EQ(*allocateSlot("baton-a", {}), *first);  // deterministic
  auto second = allocateSlot("baton-a", {*first});
  ASSERT_TRUE(second.isOk());
  EXPECT_EQ(*second, (*first + 1) % kInstanceNetSlots);

  std::set<uint32_t> all_but_one;
  for (uint32_t i = 0; i < kInstanceNetSlots; ++i) {
    if (i != 17) all_but_one.insert(i);
  }
  EXPECT_EQ(*allocateSlot("baton-a", all_but_one), 17u);  // wraps around
  all_but_one.insert(17);
  auto full = allocateSlot("baton-a", all_but_one);
  ASSERT_FALSE(full.isOk());
  EXPECT_EQ(full.status().code(), Code::kUnavailable);
}

TEST(InstanceNetTest, ParsesIpOutput) {
  const char* addrs =
      "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
      "2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever\n"
      "7: bt0123456789    inet 169.254.128.6/31 scope global bt0123456789\\       valid_lft\n"
      "8: btffffffffff    inet 169.254.128.9/31 scope global btffffffffff\\       valid_lft\n"
      "9: bt2222222222    inet 10.1.1.2/31 scope global bt2222222222\n";
  auto pool = parsePoolAddresses(addrs);
  ASSERT_EQ(pool.size(), 1u);  // the odd address is not a host end; 10.x is not the pool
  EXPECT_EQ(pool[0].first, "bt0123456789");
  EXPECT_EQ(pool[0].second, 3u);

  auto names = parseNetnsList("baton-b (id: 3)\nbaton-a\nother\n");
  EXPECT_EQ(names, (std::vector<std::string>{"baton-b", "baton-a", "other"}));
}

// Records commands; answers `ip netns list`, `ip -o -4 addr show` and `ip netns identify PID`
// from its own state. A batch (`ip [-n NS] -batch FILE`) is recorded as the commands in FILE,
// each with the prefix.
class FakeIp {
 public:
  Result<std::string> operator()(const std::vector<std::string>& argv) {
    if (argv.size() >= 3 && argv[argv.size() - 2] == "-batch") {
      std::vector<std::string> prefix(argv.begin(), argv.end() - 2);
      std::ifstream in(argv.back());
      for (std::string line; std::getline(in, line);) {
        std::vector<std::string> one = prefix;
        std::istringstream words(line);
        for (std::string w; words >> w;) one.push_back(w);
        auto r = (*this)(one);
        if (!r) return r;
      }
      return std::string();
    }
    calls.push_back(argv);
    if (argv == std::vector<std::string>{"ip", "netns", "list"}) return netns;
    if (argv == std::vector<std::string>{"ip", "-o", "-4", "addr", "show"}) return addrs;
    if (argv.size() >= 3 && argv[1] == "netns" && argv[2] == "add") netns += argv[3] + "\n";
    if (argv.size() >= 5 && argv[1] == "netns" && argv[2] == "attach") {
      netns += argv[3] + "\n";
      of_pid[argv[4]] = argv[3];
    }
    if (argv.size() >= 4 && argv[1] == "netns" && argv[2] == "identify") {
      auto it = of_pid.find(argv[3]);
      return it == of_pid.end() ? std::string("\n") : it->second + "\n";
    }
    if (argv.size() >= 4 && argv[1] == "addr" && argv[2] == "add") {
      addrs += "9: " + argv[5] + "    inet " + argv[3] + " scope global\n";
    }
    if (fail_on && argv == *fail_on) return Status(Code::kFailedPrecondition, "boom");
    return std::string();
  }
  std::string netns;
  std::string addrs;
  std::map<std::string, std::string> of_pid;  // pid -> the name attached to its namespace
  std::vector<std::vector<std::string>> calls;
  std::optional<std::vector<std::string>> fail_on;
};

TEST(InstanceNetTest, CreateRunsTheStepsAndIsIdempotent) {
  auto fake = std::make_shared<FakeIp>();
  InstanceNetworks nets([fake](const std::vector<std::string>& argv) { return (*fake)(argv); });
  auto link = nets.create("baton-web-1");
  ASSERT_TRUE(link.isOk()) << link.status().toString();
  const std::string ifname = hostInterfaceName("baton-web-1");
  auto has = [&](const std::vector<std::string>& argv) {
    return std::find(fake->calls.begin(), fake->calls.end(), argv) != fake->calls.end();
  };
  EXPECT_TRUE(has({"ip", "netns", "add", "baton-web-1"}));
  EXPECT_TRUE(has({"ip", "link", "add", ifname, "type", "veth", "peer", "name", "eth0", "netns",
                   "baton-web-1"}));
  EXPECT_TRUE(
      has({"ip", "-n", "baton-web-1", "addr", "add", link->instance_ip + "/31", "dev", "eth0"}));
  EXPECT_TRUE(has({"ip", "-n", "baton-web-1", "link", "set", "lo", "up"}));
  EXPECT_TRUE(has({"ip", "-n", "baton-web-1", "route", "add", "169.254.64.0/18", "via",
                   link->host_ip, "dev", "eth0"}));
  EXPECT_EQ(fake->calls.back(),
            (std::vector<std::string>{"ip", "addr", "add", link->host_ip + "/31", "dev", ifname}));

  size_t before = fake->calls.size();
  auto again = nets.create("baton-web-1");
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->instance_ip, link->instance_ip);
  for (size_t i = before; i < fake->calls.size(); ++i) {
    EXPECT_NE(fake->calls[i][1], "link") << "no new link for an existing namespace";
  }

  auto other = nets.create("baton-web-2");
  ASSERT_TRUE(other.isOk());
  EXPECT_NE(other->slot, link->slot);
}

// A namespace someone else made (a container's, with no network) gets the same link as
// create() makes, after `ip netns attach` instead of `ip netns add`.
TEST(InstanceNetTest, AttachNamesTheProcesssNamespaceAndBuildsTheSameLink) {
  auto fake = std::make_shared<FakeIp>();
  InstanceNetworks nets([fake](const std::vector<std::string>& argv) { return (*fake)(argv); });
  auto link = nets.attach("baton-box-1", 4242);
  ASSERT_TRUE(link.isOk()) << link.status().toString();
  EXPECT_EQ(link->netns, "baton-box-1");
  const std::string ifname = hostInterfaceName("baton-box-1");
  const std::vector<std::vector<std::string>> expected = {
      {"ip", "netns", "list"},
      {"ip", "-o", "-4", "addr", "show"},
      {"ip", "netns", "attach", "baton-box-1", "4242"},
      {"ip", "link", "add", ifname, "type", "veth", "peer", "name", "eth0", "netns", "baton-box-1"},
      {"ip", "-n", "baton-box-1", "addr", "add", link->instance_ip + "/31", "dev", "eth0"},
      {"ip", "-n", "baton-box-1", "link", "set", "lo", "up"},
      {"ip", "-n", "baton-box-1", "link", "set", "eth0", "up"},
      {"ip", "-n", "baton-box-1", "route", "add", "169.254.64.0/18", "via", link->host_ip, "dev",
       "eth0"},
      {"ip", "link", "set", ifname, "up"},
      {"ip", "addr", "add", link->host_ip + "/31", "dev", ifname},
  };
  EXPECT_EQ(fake->calls, expected);
  // The same address create() would have given that name.
  EXPECT_EQ(link->slot, *allocateSlot("baton-box-1", {}));

  // Attached again for the same process (a retry): the link as it is.
  fake->calls.clear();
  auto again = nets.attach("baton-box-1", 4242);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->instance_ip, link->instance_ip);
  for (const auto& call : fake->calls) EXPECT_NE(call[1], "link") << "no new link";

  // The name left by a container that ended, attached for its successor: made again.
  fake->calls.clear();
  auto next = nets.attach("baton-box-1", 5151);
  ASSERT_TRUE(next.isOk()) << next.status().toString();
  auto at = [&](const std::vector<std::string>& argv) {
    return std::find(fake->calls.begin(), fake->calls.end(), argv) - fake->calls.begin();
  };
  const auto n = static_cast<long>(fake->calls.size());
  ASSERT_LT(at({"ip", "netns", "del", "baton-box-1"}), n);
  ASSERT_LT(at({"ip", "netns", "attach", "baton-box-1", "5151"}), n);
  EXPECT_LT(at({"ip", "link", "del", ifname}), at({"ip", "netns", "del", "baton-box-1"}));
  EXPECT_LT(at({"ip", "netns", "del", "baton-box-1"}),
            at({"ip", "netns", "attach", "baton-box-1", "5151"}));

  EXPECT_FALSE(nets.attach("baton-box-2", 0).isOk());
}

TEST(InstanceNetTest, AFailedAttachUndoesTheName) {
  auto fake = std::make_shared<FakeIp>();
  fake->fail_on = std::vector<std::string>{"ip", "-n", "baton-box-1", "link", "set", "eth0", "up"};
  InstanceNetworks nets([fake](const std::vector<std::string>& argv) { return (*fake)(argv); });
  auto link = nets.attach("baton-box-1", 4242);
  ASSERT_FALSE(link.isOk());
  EXPECT_NE(link.status().message().find("baton-box-1"), std::string::npos);
  EXPECT_EQ(fake->calls.back(), (std::vector<std::string>{"ip", "netns", "del", "baton-box-1"}));
}

TEST(InstanceNetTest, FindTellsMissingIncompleteAndComplete) {
  auto fake = std::make_shared<FakeIp>();
  InstanceNetworks nets([fake](const std::vector<std::string>& argv) { return (*fake)(argv); });
  auto none = nets.find("baton-a");
  ASSERT_TRUE(none.isOk());
  EXPECT_FALSE(none->has_value());
  fake->netns = "baton-a\n";
  auto partial = nets.find("baton-a");
  ASSERT_TRUE(partial.isOk() && partial->has_value());
  EXPECT_TRUE((*partial)->instance_ip.empty());
  auto made = nets.create("baton-a");
  ASSERT_TRUE(made.isOk());
  auto found = nets.find("baton-a");
  ASSERT_TRUE(found.isOk() && found->has_value());
  EXPECT_EQ((*found)->instance_ip, made->instance_ip);
}

TEST(InstanceNetTest, TheMetadataAddressIsNeverHandedOut) {
  const uint32_t meta = *slotOf(kMetadataAddress);
  EXPECT_EQ(formatIpv4(kMetadataAddress), "169.254.169.254");
  std::set<uint32_t> used;
  for (uint32_t s = 0; s < kInstanceNetSlots; ++s) {
    if (s != meta) used.insert(s);
  }
  EXPECT_FALSE(allocateSlot("x", used).isOk()) << "the only free slot is the metadata one";
  used.erase(meta - 1);
  EXPECT_EQ(allocateSlot("x", used).value(), meta - 1);
}

TEST(InstanceNetTest, AFailedStepUndoesTheNamespace) {
  auto fake = std::make_shared<FakeIp>();
  fake->fail_on = std::vector<std::string>{"ip", "-n", "baton-x", "link", "set", "lo", "up"};
  InstanceNetworks nets([fake](const std::vector<std::string>& argv) { return (*fake)(argv); });
  auto link = nets.create("baton-x");
  ASSERT_FALSE(link.isOk());
  EXPECT_NE(link.status().message().find("boom"), std::string::npos);
  EXPECT_EQ(fake->calls.back(), (std::vector<std::string>{"ip", "netns", "del", "baton-x"}));
}

bool canMakeNamespaces() { return ::geteuid() == 0 && runCommand({"ip", "netns", "list"}).isOk(); }

TEST(InstanceNetTest, RealNamespaceIsMadeReachableAndRemoved) {
  if (!canMakeNamespaces()) GTEST_SKIP() << "needs root and iproute2";
  InstanceNetworks nets;
  std::string name = "baton-nettest-" + std::to_string(::getpid());
  auto link = nets.create(name);
  ASSERT_TRUE(link.isOk()) << link.status().toString();
  EXPECT_TRUE(std::filesystem::exists(link->netnsPath()));
  auto inside = runCommand({"ip", "-n", name, "-o", "-4", "addr", "show", "dev", "eth0"});
  ASSERT_TRUE(inside.isOk()) << inside.status().toString();
  EXPECT_NE(inside->find(link->instance_ip + "/31"), std::string::npos) << *inside;
  // No default route: only the host end (on-link) and the mesh's addresses via it.
  auto route = runCommand({"ip", "-n", name, "route", "show"});
  ASSERT_TRUE(route.isOk());
  EXPECT_NE(route->find("169.254.64.0/18 via " + link->host_ip), std::string::npos) << *route;
  EXPECT_EQ(route->find("default"), std::string::npos) << *route;
  // A host address that is not the pair's host end is unreachable from inside.
  auto other = runCommand({"ip", "netns", "exec", name, "ip", "route", "get", "169.254.128.1"});
  EXPECT_FALSE(other.isOk() && link->host_ip != "169.254.128.0")
      << "another instance's address must have no route: " << (other ? *other : "");

  auto listed = nets.list("baton-nettest-");
  ASSERT_TRUE(listed.isOk());
  bool found = false;
  for (const auto& l : *listed) found = found || (l.netns == name && l.slot == link->slot);
  EXPECT_TRUE(found);

  auto again = nets.create(name);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->instance_ip, link->instance_ip);

  ASSERT_TRUE(nets.remove(name).isOk());
  EXPECT_FALSE(std::filesystem::exists(link->netnsPath()));
  EXPECT_FALSE(runCommand({"ip", "link", "show", "dev", link->host_ifname}).isOk());
  EXPECT_TRUE(nets.remove(name).isOk());  // idempotent
}

// A process that made a network namespace of its own (as a container with no network has):
// attached, it is reachable at its address; removed, the name and the host end are gone.
TEST(InstanceNetTest, RealProcessNamespaceIsAttachedAndRemoved) {
  if (!canMakeNamespaces()) GTEST_SKIP() << "needs root and iproute2";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // only async-signal-safe calls here
    char ok = ::unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{child};
  ASSERT_EQ(ok, 'y');

  InstanceNetworks nets;
  std::string name = "baton-nettest-attach-" + std::to_string(::getpid());
  auto link = nets.attach(name, child);
  ASSERT_TRUE(link.isOk()) << link.status().toString();
  auto identify = runCommand({"ip", "netns", "identify", std::to_string(child)});
  ASSERT_TRUE(identify.isOk());
  EXPECT_NE(identify->find(name), std::string::npos) << *identify;
  auto inside = runCommand({"ip", "-n", name, "-o", "-4", "addr", "show", "dev", "eth0"});
  ASSERT_TRUE(inside.isOk()) << inside.status().toString();
  EXPECT_NE(inside->find(link->instance_ip + "/31"), std::string::npos) << *inside;
  auto ping = runCommand({"ip", "route", "get", link->instance_ip});
  ASSERT_TRUE(ping.isOk());
  EXPECT_NE(ping->find("dev " + link->host_ifname), std::string::npos) << *ping;

  auto again = nets.attach(name, child);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->instance_ip, link->instance_ip);

  ASSERT_TRUE(nets.remove(name).isOk());
  EXPECT_FALSE(std::filesystem::exists(link->netnsPath()));
  EXPECT_FALSE(runCommand({"ip", "link", "show", "dev", link->host_ifname}).isOk());
}

TEST(InstanceNetTest, RunCommandReportsStderrAndExitStatus) {
  auto ok = runCommand({"sh", "-c", "echo out; echo err >&2"});
  ASSERT_TRUE(ok.isOk());
  EXPECT_EQ(*ok, "out\n");
  auto bad = runCommand({"sh", "-c", "echo nope >&2; exit 3"});
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("exit status 3"), std::string::npos);
  EXPECT_NE(bad.status().message().find("nope"), std::string::npos);
  auto missing = runCommand({"/nonexistent/program"});
  EXPECT_FALSE(missing.isOk());
  auto slow = runCommand({"sleep", "5"}, Duration(100));
  ASSERT_FALSE(slow.isOk());
  EXPECT_EQ(slow.status().code(), Code::kTimeout);
}

}  // namespace
}  // namespace baton::drivers
