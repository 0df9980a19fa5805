#include "cli/cli.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "cli/http_client.h"
#include "core/testing/free_port.h"

namespace baton::cli {
namespace {

// A port on which nothing listens.
int closedPort() { return baton::testing::unusedLoopbackPort(); }

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun run(std::vector<std::string> args, std::string addr = "http://127.0.0.1:1",
           std::string stdin_text = {}) {
  args.insert(args.begin(), "baton");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  CliContext ctx{out, err};
  ctx.addr = addr;
  ctx.agent = [](const AgentFlags& f) {
    if (f.dns) return *f.dns == "127.0.0.1:8600" ? 44 : 45;
    return f.dev && f.api && *f.api == "x:1" ? 42 : 43;
  };
  ctx.sleep = [](Duration) {};  // polling commands ask again at once
  std::istringstream in(stdin_text);
  ctx.in = &in;
  int code = runCli(static_cast<int>(argv.size()), argv.data(), ctx);
  return {code, out.str(), err.str()};
}

TEST(Cli, UsageErrorsExit2) {
  EXPECT_EQ(run({}).code, kExitUsage);
  EXPECT_EQ(run({"frobnicate"}).code, kExitUsage);
  EXPECT_EQ(run({"up"}).code, kExitUsage);
  EXPECT_EQ(run({"ps", "--bogus"}).code, kExitUsage);
  EXPECT_EQ(run({"scale", "shop"}).code, kExitUsage);
  EXPECT_EQ(run({"scale", "shop/web"}).code, kExitUsage);
  EXPECT_EQ(run({"scale", "shop/web", "--min", "x"}).code, kExitUsage);
  EXPECT_EQ(run({"scale", "shop/web", "--min", "3", "--max", "2"}).code, kExitUsage);
  EXPECT_EQ(run({"scale", "shop/web", "--min", "3", "--clear"}).code, kExitUsage);
  EXPECT_EQ(run({"scale", "shop/web", "--min", "3", "--for", "later"}).code, kExitUsage);
  EXPECT_EQ(run({"logs", "shop"}).code, kExitUsage);
  EXPECT_EQ(run({"up", "x.toml", "--timeout", "soon"}).code, kExitUsage);
  EXPECT_EQ(run({"--help"}).code, kExitOk);
}

TEST(Cli, AgentGetsItsFlags) {
  EXPECT_EQ(run({"agent", "--dev", "--api", "x:1"}).code, 42);
  EXPECT_EQ(run({"agent"}).code, 43);
}

TEST(Cli, AgentTakesTheDnsFlag) {
  EXPECT_EQ(run({"agent", "--dev", "--dns", "127.0.0.1:8600"}).code, 44);
}

TEST(Cli, UnreachableAgentExits1WithAClearMessage) {
  int port = closedPort();
  std::string addr = "http://127.0.0.1:" + std::to_string(port);
  CliRun r = run({"ps"}, addr);
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.err, "cannot reach the agent at " + addr + ": connection refused\n");
  EXPECT_EQ(run({"nodes", "--json"}, addr).code, kExitFailed);
  EXPECT_EQ(run({"events"}, addr).code, kExitFailed);
}

// A one-request-per-connection HTTP server on a real socket (port 0) that answers each request
// with the next canned response and records what it received.
class FakeAgent {
 public:
  struct Reply {
    int status;
    std::string body;
  };
  explicit FakeAgent(std::vector<Reply> replies) : replies_(std::move(replies)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 8);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeAgent() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string addr() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Every request received so far, raw (request line, headers and body).
  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void serve() {
    for (const Reply& reply : replies_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string in;
      char buf[4096];
      for (;;) {
        auto end = in.find("\r\n\r\n");
        if (end != std::string::npos) {
          size_t want = 0;
          auto cl = in.find("Content-Length: ");
          if (cl == std::string::npos) cl = in.find("content-length: ");
          if (cl != std::string::npos && cl < end) want = std::stoul(in.substr(cl + 16));
          if (in.size() >= end + 4 + want) break;
        }
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard lock(mu_);
        requests_.push_back(in);
      }
      std::string out = "HTTP/1.1 " + std::to_string(reply.status) +
                        " X\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(reply.body.size()) + "\r\nConnection: close\r\n\r\n" +
                        reply.body;
      (void)!::write(c, out.data(), out.size());
      ::close(c);
    }
  }

  std::vector<Reply> replies_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

constexpr std::string_view kCreated =
    R"({"id":"0123456789abcdef","key":"bk_0123456789abcdef_SECRET","name":"ci",)"
    R"("created_at":1700000000000,"scopes":["shop:read"]})";

TEST(Cli, ApiKeyCreatePrintsTheKeyAloneOnStdout) {
  FakeAgent fake({{201, std::string(kCreated)}});
  CliRun r = run({"apikey", "create", "ci", "--scope", "shop:read"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "bk_0123456789abcdef_SECRET\n");
  EXPECT_NE(r.err.find("not shown again"), std::string::npos) << r.err;
  auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].rfind("POST /v1/apikeys HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_NE(reqs[0].find(R"({"name":"ci","scopes":["shop:read"]})"), std::string::npos) << reqs[0];
}

constexpr std::string_view kTokenCreated =
    R"({"accessor":"0123456789abcdef","token":"baton_0123456789abcdef_SECRET","owner":"alice",)"
    R"("rules":[{"kind":"secrets","pattern":"shop/*","capabilities":["read","list"]}],)"
    R"("created_at":1700000000000,"expires_at":1700086400000,"expired":false,)"
    R"("created_by":"agent-token"})";

TEST(Cli, TokenCreatePrintsTheTokenAloneOnStdout) {
  FakeAgent fake({{201, std::string(kTokenCreated)}, {201, std::string(kTokenCreated)}});
  CliRun r = run({"token", "create", "--owner", "alice", "--ttl", "24h", "--rule",
                  "secrets:shop/*:read,list", "--rule", "apps:shop:read"},
                 fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "baton_0123456789abcdef_SECRET\n");
  EXPECT_NE(r.err.find("created token 0123456789abcdef for alice"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not shown again"), std::string::npos) << r.err;
  r = run({"token", "create", "--owner", "alice", "--rule", "apps:*:list", "--json"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, std::string(kTokenCreated) + "\n");
  auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].rfind("POST /v1/tokens HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_NE(
      reqs[0].find(
          R"({"owner":"alice","rules":["secrets:shop/*:read,list","apps:shop:read"],"ttl":"24h"})"),
      std::string::npos)
      << reqs[0];
  EXPECT_NE(reqs[1].find(R"({"owner":"alice","rules":["apps:*:list"]})"), std::string::npos)
      << reqs[1];
}

TEST(Cli, TokenListRevokeAndSelf) {
  FakeAgent fake(
      {{200, R"({"tokens":[{"accessor":"0123456789abcdef","owner":"alice","rules":[)"
             R"({"kind":"secrets","pattern":"shop/*","capabilities":["read","list"]},)"
             R"({"kind":"apps","pattern":"shop","capabilities":["read"]}],"created_at":0,)"
             R"("expires_at":null,"expired":false}]})"},
       {200, R"({"accessor":"0123456789abcdef","revoked":true})"},
       {404, R"({"error":"no token has the accessor fedcba9876543210"})"},
       {403, R"({"error":"this token may not do this: it needs \"admin\" on tokens"})"}});
  CliRun r = run({"token", "ls"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(
      r.out,
      "ACCESSOR           OWNER   RULES                                     CREATED   EXPIRES\n"
      "0123456789abcdef   alice   secrets:shop/*:read,list apps:shop:read   -         -\n");
  r = run({"token", "revoke", "0123456789abcdef"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "0123456789abcdef: revoked\n");
  r = run({"token", "revoke", "fedcba9876543210"}, fake.addr());
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.err, "error: no token has the accessor fedcba9876543210\n");
  r = run({"token", "ls"}, fake.addr());
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.err, "error: this token may not do this: it needs \"admin\" on tokens\n");
  auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].rfind("GET /v1/tokens HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_EQ(reqs[1].rfind("DELETE /v1/tokens/0123456789abcdef HTTP/1.1\r\n", 0), 0u);
}

TEST(Cli, TokenUsageErrorsExit2WithAClearMessage) {
  EXPECT_EQ(run({"token"}).code, kExitUsage);
  EXPECT_EQ(run({"token", "create"}).code, kExitUsage);
  EXPECT_EQ(run({"token", "create", "--owner", "a"}).code, kExitUsage);           // no rule
  EXPECT_EQ(run({"token", "create", "--rule", "apps:*:read"}).code, kExitUsage);  // no owner
  CliRun r = run({"token", "create", "--owner", "a", "--rule", "secrets:shop/*:sudo"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("--rule: rule \"secrets:shop/*:sudo\": unknown capability \"sudo\""),
            std::string::npos)
      << r.err;
  r = run({"token", "create", "--owner", "a", "--rule", "secrets:shop"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("KIND:PATTERN:CAP"), std::string::npos) << r.err;
  r = run({"token", "create", "--owner", "a", "--rule", "apps:*:read", "--ttl", "soon"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("--ttl"), std::string::npos) << r.err;
  EXPECT_EQ(run({"token", "create", "--owner", "", "--rule", "apps:*:read"}).code, kExitUsage);
  EXPECT_EQ(run({"token", "revoke"}).code, kExitUsage);
  EXPECT_EQ(run({"token", "revoke", "../apps"}).code, kExitUsage);
  EXPECT_EQ(run({"token", "frob"}).code, kExitUsage);
}

TEST(Cli, ApiKeyListAndRemove) {
  FakeAgent fake({{200, R"({"apikeys":[{"id":"0123456789abcdef","name":"ci","created_at":0,)"
                        R"("scopes":["a","b"]},{"id":"fedcba9876543210","name":"ops",)"
                        R"("created_at":0,"scopes":[]}]})"},
                  {200, R"({"id":"0123456789abcdef","deleted":true})"},
                  {404, R"({"error":"API key \"fedcba9876543210\" does not exist"})"},
                  {401, R"({"error":"this request needs a valid token"})"}});
  CliRun r = run({"apikey", "ls"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "ID                 NAME   SCOPES   CREATED\n"
            "0123456789abcdef   ci     a,b      -\n"
            "fedcba9876543210   ops    -        -\n");
  r = run({"apikey", "rm", "0123456789abcdef"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "0123456789abcdef: revoked\n");
  r = run({"apikey", "rm", "fedcba9876543210"}, fake.addr());
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.err, "error: API key \"fedcba9876543210\" does not exist\n");
  r = run({"apikey", "ls", "--json"}, fake.addr());
  EXPECT_EQ(r.code, kExitFailed);
  auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].rfind("GET /v1/apikeys HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_EQ(reqs[1].rfind("DELETE /v1/apikeys/0123456789abcdef HTTP/1.1\r\n", 0), 0u);
}

constexpr std::string_view kShare1 =
    "bs1.3.1.9c1e07aa.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.01234567";

TEST(Cli, OperatorInitPrintsTheSharesOnStdoutAndTheWarningOnStderr) {
  FakeAgent fake({{200, R"({"shares":["bs1.a","bs1.b","bs1.c"],"threshold":2,)"
                        R"("key_id":"9c1e07aa","sealed":false})"}});
  CliRun r = run({"operator", "init", "--shares", "3", "--threshold", "2"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "bs1.a\nbs1.b\nbs1.c\n");
  EXPECT_NE(r.err.find("Keep them apart"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("any 2 of them"), std::string::npos) << r.err;
  auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].rfind("POST /v1/operator/init HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_NE(reqs[0].find(R"({"shares":3,"threshold":2})"), std::string::npos) << reqs[0];
}

TEST(Cli, OperatorUnsealReadsTheShareFromStdin) {
  const std::string sealed =
      R"({"mode":"shares","initialized":true,"sealed":true,"threshold":3,"shares":5,)"
      R"("progress":1,"key_id":"9c1e07aa","message":"the secrets are sealed: 2 more unseal )"
      R"j(shares are needed (baton operator unseal)"})j";
  FakeAgent fake({{200, sealed},
                  {400, R"({"error":"the share is mistyped: its checksum does not match"})"},
                  {200, sealed}});
  CliRun r = run({"operator", "unseal"}, fake.addr(), std::string(kShare1) + "\n");
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("Progress:  1/3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 more unseal shares are needed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(kShare1), std::string::npos) << "the share is not printed";
  r = run({"operator", "unseal"}, fake.addr(), "bs1.typo\n");
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.err, "error: the share is mistyped: its checksum does not match\n");
  r = run({"operator", "unseal", std::string(kShare1), "--json"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, sealed + "\n");
  auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].rfind("POST /v1/operator/unseal HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_NE(reqs[0].find(R"({"share":")" + std::string(kShare1) + R"("})"), std::string::npos)
      << "the line as read, without its newline: " << reqs[0];
  EXPECT_NE(reqs[2].find(std::string(kShare1)), std::string::npos);
  // Nothing on stdin: a usage error, nothing sent.
  EXPECT_EQ(run({"operator", "unseal"}, fake.addr(), "").code, kExitUsage);
  EXPECT_EQ(run({"operator", "unseal"}, fake.addr(), "\n").code, kExitUsage);
}

TEST(Cli, OperatorSealStatusAndUsage) {
  FakeAgent fake({{200, R"({"mode":"shares","initialized":true,"sealed":false,"threshold":3,)"
                        R"("shares":5,"progress":0,"key_id":"9c1e07aa","message":""})"}});
  CliRun r = run({"operator", "seal-status"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "Seal:      shares\nKey id:    9c1e07aa\nThreshold: 3 of 5\nSealed:    no\n");
  EXPECT_EQ(run({"operator"}).code, kExitUsage);
  EXPECT_EQ(run({"operator", "init", "--shares", "1"}).code, kExitUsage);
  EXPECT_EQ(run({"operator", "init", "--shares", "17"}).code, kExitUsage);
  EXPECT_EQ(run({"operator", "init", "--shares", "3", "--threshold", "4"}).code, kExitUsage);
  EXPECT_EQ(run({"operator", "init", "--threshold", "1"}).code, kExitUsage);
  EXPECT_EQ(run({"operator", "unseal", "a", "b"}).code, kExitUsage);
  int port = closedPort();
  EXPECT_EQ(run({"operator", "seal-status"}, "http://127.0.0.1:" + std::to_string(port)).code,
            kExitFailed);
}

TEST(Cli, ApiKeyUsageErrorsExit2) {
  EXPECT_EQ(run({"apikey"}).code, kExitUsage);
  EXPECT_EQ(run({"apikey", "create"}).code, kExitUsage);
  EXPECT_EQ(run({"apikey", "create", "ci", "--scope", ""}).code, kExitUsage);
  EXPECT_EQ(run({"apikey", "rm"}).code, kExitUsage);
  EXPECT_EQ(run({"apikey", "rm", "../apps"}).code, kExitUsage);
  EXPECT_EQ(run({"apikey", "rm", "0123456789ABCDEF"}).code, kExitUsage);
  EXPECT_EQ(run({"apikey", "frob"}).code, kExitUsage);
  int port = closedPort();
  EXPECT_EQ(run({"apikey", "ls"}, "http://127.0.0.1:" + std::to_string(port)).code, kExitFailed);
}

TEST(Cli, UpReportsManifestErrorsBeforeContactingTheAgent) {
  auto path = std::filesystem::temp_directory_path() /
              ("baton-cli-test-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream f(path);
    f << "app = \"shop\"\n\n[services.web]\nrun = [\"x\"]\nport = \"http\"\n";
  }
  CliRun r = run({"up", path.string()});
  std::filesystem::remove(path);
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_NE(r.err.find(path.string() + ":5:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("services.web.port"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("cannot reach"), std::string::npos) << r.err;

  r = run({"up", "/nonexistent/app.toml"});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_NE(r.err.find("cannot read /nonexistent/app.toml"), std::string::npos);
}

TEST(Cli, ParseAppService) {
  auto r = parseAppService("shop/web");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->first, "shop");
  EXPECT_EQ(r->second, "web");
  EXPECT_FALSE(parseAppService("shop").isOk());
  EXPECT_FALSE(parseAppService("/web").isOk());
  EXPECT_FALSE(parseAppService("shop/").isOk());
  EXPECT_FALSE(parseAppService("a/b/c").isOk());
}

TEST(Cli, BaseUrl) {
  auto b = parseBaseUrl("http://127.0.0.1:4646/");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->host, "127.0.0.1");
  EXPECT_EQ(b->port, 4646);
  EXPECT_EQ(b->text, "http://127.0.0.1:4646");
  b = parseBaseUrl("http://agent");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->port, 80);
  b = parseBaseUrl("localhost:9000");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->port, 9000);
  EXPECT_EQ(b->text, "http://localhost:9000");
  b = parseBaseUrl("http://[::1]:4646");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->host, "::1");
  EXPECT_FALSE(parseBaseUrl("https://x:1").isOk());
  EXPECT_FALSE(parseBaseUrl("ftp://x").isOk());
  EXPECT_FALSE(parseBaseUrl("http://x:0").isOk());
  EXPECT_FALSE(parseBaseUrl("http://x:1/path").isOk());
}

constexpr std::string_view kServices = R"({"services":[
  {"app":"shop","service":"web","desired":2,"ready":2,"current":2,"min":1,"max":5,
   "source":"override","rollout":"complete","rollout_message":"all instances run version 2",
   "until":1700000000000,"expires_at":1700003600000,"next_expected":1700000300000,
   "rhythm":"period 300 s"},
  {"app":"shop","service":"api","desired":1,"ready":0,"current":1,"min":1,"max":1,
   "source":"manifest","rollout":"in_progress","rollout_message":"","until":null,
   "expires_at":null}]})";

TEST(Cli, ServicesTable) {
  std::string t = formatServicesTable(kServices);
  EXPECT_EQ(t,
            "APP    SERVICE   READY/DESIRED   MIN   MAX   SOURCE     ROLLOUT       EXPIRES        "
            "        NEXT CALL                             MESSAGE\n"
            "shop   web       2/2             1     5     override   complete      2023-11-14 "
            "23:13:20Z   2023-11-14 22:18:20Z (period 300 s)   all instances run version 2\n"
            "shop   api       0/1             1     1     manifest   in_progress   -              "
            "        -                                     -\n");
}

TEST(Cli, ServicesTableSaysWhyARolloutFailed) {
  std::string t = formatServicesTable(
      R"j({"services":[{"app":"shop","service":"web","desired":1,"ready":1,"current":0,"min":1,
      "max":1,"source":"schedule:launch","expires_at":1700000000000,"rollout":"failed",
      "rollout_message":"instance shop-web-1 failed (exited with code 3)"}]})j");
  EXPECT_NE(t.find("schedule:launch   failed    2023-11-14 22:13:20Z   -           instance shop-web-1 failed "
                   "(exited with code 3)\n"),
            std::string::npos)
      << t;
}

constexpr std::string_view kDeleted = R"({"app":"shop","deleted":true,"revision":9})";

TEST(Cli, DownWaitsUntilTheInstancesAreGone) {
  FakeAgent fake({{200, std::string(kDeleted)},
                  {200, R"({"instances":[{"id":"shop-web-1","state":"stopping"},)"
                        R"({"id":"shop-web-2","state":"healthy"}]})"},
                  {200, R"({"instances":[{"id":"shop-web-1","state":"stopping"}]})"},
                  {200, R"({"instances":[]})"}});
  CliRun r = run({"down", "shop"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "shop: deleted\n"
            "shop: waiting for 2 instances of shop to stop (shop-web-1 stopping, shop-web-2 "
            "healthy)\n"
            "shop: stopped\n");
  auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].rfind("DELETE /v1/apps/shop HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_EQ(reqs[1].rfind("GET /v1/instances?app=shop HTTP/1.1\r\n", 0), 0u) << reqs[1];
  EXPECT_EQ(reqs[3].rfind("GET /v1/instances?app=shop HTTP/1.1\r\n", 0), 0u) << reqs[3];
}

TEST(Cli, DownWithNothingLeftToStopSaysDeleted) {
  FakeAgent fake({{200, std::string(kDeleted)}, {200, R"({"instances":[]})"}});
  CliRun r = run({"down", "shop"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "shop: deleted\n");
  EXPECT_EQ(fake.requests().size(), 2u);
}

TEST(Cli, DownDetachDoesNotWait) {
  FakeAgent fake({{200, std::string(kDeleted)}, {200, std::string(kDeleted)}});
  CliRun r = run({"down", "shop", "--detach"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "shop: deleted\n");
  r = run({"down", "shop", "--detach", "--json"}, fake.addr());
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, std::string(kDeleted) + "\n");
  EXPECT_EQ(fake.requests().size(), 2u);
}

TEST(Cli, DownTimesOutWithWhatIsLeft) {
  FakeAgent fake({{200, std::string(kDeleted)},
                  {200, R"({"instances":[{"id":"shop-web-1","state":"stopping"}]})"}});
  CliRun r = run({"down", "shop", "--timeout", "0s"}, fake.addr());
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.out, "shop: deleted\n");
  EXPECT_EQ(r.err,
            "shop: timed out after 0s waiting for 1 instance of shop to stop (shop-web-1 "
            "stopping); the app is deleted and they are still being stopped (baton ps shop -i)\n");
}

TEST(Cli, DownUsage) {
  EXPECT_EQ(run({"down"}).code, kExitUsage);
  EXPECT_EQ(run({"down", "shop", "--timeout", "soon"}).code, kExitUsage);
  EXPECT_EQ(run({"down", "shop", "--detach", "--timeout", "1m"}).code, kExitUsage);
}

TEST(Cli, InstancesAndNodesTables) {
  std::string t = formatInstancesTable(
      R"({"instances":[{"id":"i-1","app":"shop","service":"web","node":"n1","state":"healthy",
      "address":"10.0.0.1","port":31000,"pid":42,"version":3,"restarts":1,"started_at":0,
      "last_exit_code":null,"message":""}]})");
  EXPECT_NE(t.find("10.0.0.1:31000"), std::string::npos) << t;
  EXPECT_NE(t.find("healthy"), std::string::npos);
  t = formatNodesTable(
      R"({"nodes":[{"id":"n1","address":"10.0.0.1","api":"x","cpu":4,"memory":1073741824,
      "drivers":["exec","wasm"],"started_at":0}]})");
  EXPECT_NE(t.find("1GiB"), std::string::npos) << t;
  EXPECT_NE(t.find("exec,wasm"), std::string::npos) << t;
  // Garbage in: just the header.
  EXPECT_NE(t.find("host"), std::string::npos) << "no network field: host" << t;
  EXPECT_EQ(formatNodesTable("not json"),
            "ID   ADDRESS   API   NETWORK   CPU   MEMORY   DRIVERS   STARTED\n");
  EXPECT_EQ(isolationNote(R"({"nodes":[{"id":"n1","network":"isolated"}]})"), "");
  std::string note = isolationNote(
      R"({"nodes":[{"id":"n1","network":"isolated"},{"id":"n2","network":"host"}]})");
  EXPECT_NE(note.find("node n2 runs instances in the host's network"), std::string::npos) << note;
  EXPECT_EQ(note.find("n1"), std::string::npos) << note;
}

TEST(Cli, ServicesSettled) {
  std::string why;
  bool failed = false;
  EXPECT_FALSE(servicesSettled(kServices, &why, &failed));
  EXPECT_FALSE(failed);
  EXPECT_NE(why.find("shop/api"), std::string::npos);
  EXPECT_TRUE(servicesSettled(
      R"({"services":[{"app":"a","service":"s","desired":1,"ready":1,"current":1,"min":1,
      "rollout":"none"}]})",
      &why, &failed));
  // Below min: the controller has not placed anything yet.
  EXPECT_FALSE(servicesSettled(
      R"({"services":[{"app":"a","service":"s","desired":0,"ready":0,"current":0,"min":1,
      "rollout":"none"}]})",
      &why, &failed));
  EXPECT_FALSE(servicesSettled(
      R"({"services":[{"app":"a","service":"s","rollout":"failed","rollout_message":"boom"}]})",
      &why, &failed));
  EXPECT_TRUE(failed);
  EXPECT_NE(why.find("boom"), std::string::npos);
  EXPECT_FALSE(servicesSettled("garbage", &why, &failed));
}

TEST(Cli, EventLines) {
  EXPECT_EQ(formatEventLine(R"({"type":"event","kind":"scale","message":"web 1 -> 2"})"),
            "[scale] web 1 -> 2");
  EXPECT_EQ(formatEventLine(R"({"type":"put","key":"/baton/apps/shop","kind":"app","revision":7})"),
            "7 put app /baton/apps/shop");
  EXPECT_EQ(formatEventLine("junk"), "junk");
}

}  // namespace
}  // namespace baton::cli
