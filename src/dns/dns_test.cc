#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/unique_fd.h"
#include "dns/dns_message.h"
#include "dns/dns_server.h"
#include "dns/resolver.h"
#include "dns/tcp_framing.h"

namespace baton::dns {
namespace {

// A query as dig sends it: id, RD, one question, and an EDNS OPT record.
std::string query(const std::string& name, uint16_t type, uint16_t id = 0x1234) {
  std::string m = {static_cast<char>(id >> 8), static_cast<char>(id & 0xff), 0x01, 0x00,
                   0, 1, 0, 0, 0, 0, 0, 1};
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    m.push_back(static_cast<char>(dot - start));
    m += name.substr(start, dot - start);
    start = dot + 1;
  }
  m.push_back(0);
  m += {static_cast<char>(type >> 8), static_cast<char>(type & 0xff), 0, 1};
  m += std::string("\0\0\x29\x10\0\0\0\0\0\0\0", 11);  // OPT
  return m;
}

mesh::MeshView view() {
  mesh::MeshView v;
  v.upstreams["shop/web"] = {"cart"};
  v.upstreams["shop/cart"] = {};
  v.upstreams["shop/admin"] = {};
  v.vips["169.254.70.1"] = {"shop", "cart"};
  v.vips["169.254.70.2"] = {"shop", "web"};
  v.callers["169.254.128.1"] = {"shop", "web"};
  v.healthy["shop/cart"] = {{"i1", "n1", "169.254.128.3", 8080}, {"i2", "n1", "169.254.128.5", 8081}};
  return v;
}

Answer ask(const std::string& name, uint16_t type, std::optional<mesh::ServiceRef> caller = {}) {
  auto p = parseQuery(query(name, type));
  EXPECT_TRUE(p.query.has_value()) << name;
  return resolve(view(), *p.query, caller);
}

TEST(DnsMessageTest, ParsesTheQuestionCaseInsensitively) {
  auto p = parseQuery(query("Cart.Shop.Service.Baton", kTypeSRV, 0xbeef));
  ASSERT_TRUE(p.query.has_value());
  EXPECT_EQ(p.query->id, 0xbeef);
  EXPECT_EQ(p.query->name, "cart.shop.service.baton");
  EXPECT_EQ(p.query->qtype, kTypeSRV);
  EXPECT_EQ(p.query->qclass, kClassIN);
  EXPECT_TRUE(p.query->recursion_desired);
}

TEST(DnsMessageTest, MalformedInputIsAnErrorValue) {
  EXPECT_FALSE(parseQuery("").header.has_value());
  EXPECT_FALSE(parseQuery(std::string(11, '\0')).header.has_value());
  std::string q = query("a.baton", kTypeA);
  for (size_t n = 12; n < q.size() - 11; ++n) {
    EXPECT_FALSE(parseQuery(q.substr(0, n)).query.has_value()) << n;
  }
  std::string resp = q;
  resp[2] = static_cast<char>(0x81);
  EXPECT_EQ(parseQuery(resp).error, ParseError::kNotAQuery);
  std::string two = q;
  two[5] = 2;
  EXPECT_EQ(parseQuery(two).error, ParseError::kNotOneQuestion);
  std::string ptr = q.substr(0, 12) + std::string("\xC0\x0C\0\x01\0\x01", 6);
  EXPECT_EQ(parseQuery(ptr).error, ParseError::kBadQuestion) << "no pointers in a question";
  std::string dotted = q.substr(0, 12) + std::string("\x03" "a.b\0\0\x01\0\x01", 9);
  EXPECT_FALSE(parseQuery(dotted).query.has_value()) << "a '.' inside a label";
}

TEST(DnsMessageTest, ResponsesCompressAndFitInAUdpAnswer) {
  Query q = *parseQuery(query("cart.shop.service.baton", kTypeA)).query;
  Answer a;
  for (uint32_t i = 0; i < 100; ++i) a.answers.push_back({q.name, kTypeA, 2, 0xA9FE8000 + i, {}, {}});
  std::string out = encodeResponse(q, a);
  EXPECT_LE(out.size(), kMaxUdpAnswer);
  const int an = (static_cast<uint8_t>(out[6]) << 8) | static_cast<uint8_t>(out[7]);
  EXPECT_GT(an, 20);  // compressed: 16 bytes a record
  EXPECT_LT(an, 100);
  EXPECT_EQ(out.size(), 12 + (q.name.size() + 2 + 4) + an * 16u);
  EXPECT_EQ(static_cast<uint8_t>(out[2]) & 0x84, 0x84) << "QR and AA";
}

uint16_t count(std::string_view msg, size_t at) {  // ANCOUNT at 6, ARCOUNT at 10
  return static_cast<uint16_t>((static_cast<uint8_t>(msg[at]) << 8) |
                               static_cast<uint8_t>(msg[at + 1]));
}

TEST(DnsMessageTest, AnAnswerThatDoesNotFitIsTruncatedWithTcAndWholeRecords) {
  Query q = *parseQuery(query("cart.shop.service.baton", kTypeSRV)).query;
  Answer a;
  for (uint32_t i = 0; i < 100; ++i) {
    a.answers.push_back({q.name, kTypeSRV, 2, 0, {1, 1, 8000, "a9fe8000.addr.baton"}, {}});
    a.additional.push_back({"a9fe8000.addr.baton", kTypeA, 2, 0xA9FE8000, {}, {}});
  }
  std::string udp = encodeResponse(q, a);
  EXPECT_TRUE(isTruncated(udp));
  EXPECT_LE(udp.size(), kMaxUdpAnswer);
  const size_t fixed = 12 + q.name.size() + 2 + 4, srv = 2 + 10 + 6 + 21;
  EXPECT_EQ(count(udp, 6), (kMaxUdpAnswer - fixed) / srv) << "as many whole answers as fit";
  EXPECT_EQ(count(udp, 10), 0) << "no additional records in a truncated answer";
  EXPECT_EQ(udp.size(), fixed + count(udp, 6) * srv);

  std::string full = encodeResponse(q, a, kMaxTcpAnswer);
  EXPECT_FALSE(isTruncated(full));
  EXPECT_EQ(count(full, 6), 100);
  EXPECT_EQ(count(full, 10), 100);

  // Every answer fits, not every additional record: no TC (RFC 2181 9), the extras that fit.
  a.answers.resize(10);
  std::string most = encodeResponse(q, a);
  EXPECT_FALSE(isTruncated(most));
  EXPECT_EQ(count(most, 6), 10);
  EXPECT_GT(count(most, 10), 0);
  EXPECT_LT(count(most, 10), 100);
  EXPECT_FALSE(
      isTruncated(encodeError(*parseQuery(query("a.baton", kTypeA)).header, Rcode::kFormErr)));
}

TEST(DnsTcpFramingTest, FramesArriveInPiecesAndBackToBack) {
  const std::string one = query("cart.shop.service.baton", kTypeA, 1);
  const std::string two = query("web.shop.service.baton", kTypeSRV, 2);
  const std::string stream = frameMessage(one) + frameMessage(two);
  EXPECT_EQ(stream.size(), 4 + one.size() + two.size());
  // Cut anywhere inside the first frame (also between the prefix's two bytes): more is needed.
  for (size_t n = 0; n < 2 + one.size(); ++n) {
    Frame f = nextFrame(std::string_view(stream).substr(0, n));
    EXPECT_EQ(f.status, FrameStatus::kIncomplete) << n;
  }
  Frame f = nextFrame(stream);
  ASSERT_EQ(f.status, FrameStatus::kMessage);
  EXPECT_EQ(f.message, one);
  EXPECT_EQ(f.consumed, 2 + one.size());
  f = nextFrame(std::string_view(stream).substr(f.consumed));
  ASSERT_EQ(f.status, FrameStatus::kMessage);
  EXPECT_EQ(f.message, two);
}

TEST(DnsTcpFramingTest, ZeroAndOversizedLengthsAreRefused) {
  EXPECT_EQ(nextFrame(std::string("\0\0", 2)).status, FrameStatus::kEmpty);
  Frame f = nextFrame(std::string("\x02\x01", 2));  // 513
  EXPECT_EQ(f.status, FrameStatus::kTooLong);
  EXPECT_EQ(f.announced, 513u);
  EXPECT_EQ(nextFrame(std::string("\xff\xff", 2)).status, FrameStatus::kTooLong);
  EXPECT_EQ(nextFrame(std::string("\x02\x00", 2)).status, FrameStatus::kIncomplete)
      << "512 is allowed";
  EXPECT_EQ(frameMessage(std::string(65536, 'x')), "");
  EXPECT_EQ(frameMessage(std::string(65535, 'x')).size(), 65537u);
}

TEST(DnsResolverTest, TheHostGetsHealthyInstancesAndSrvPorts) {
  Answer a = ask("cart.shop.service.baton", kTypeA);
  EXPECT_EQ(a.rcode, Rcode::kNoError);
  ASSERT_EQ(a.answers.size(), 2u);
  EXPECT_EQ(a.answers[0].ipv4, 0xA9FE8003u);
  EXPECT_EQ(a.answers[0].ttl, kTtlSeconds);
  a = ask("cart.shop.service.baton", kTypeSRV);
  ASSERT_EQ(a.answers.size(), 2u);
  EXPECT_EQ(a.answers[1].srv.port, 8081);
  EXPECT_EQ(a.answers[1].srv.target, "a9fe8005.addr.baton");
  ASSERT_EQ(a.additional.size(), 2u);
  EXPECT_EQ(a.additional[1].ipv4, 0xA9FE8005u);
  a = ask("a9fe8005.addr.baton", kTypeA);
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(a.answers[0].ipv4, 0xA9FE8005u);
  // A service at zero exists: no records, no error.
  a = ask("admin.shop.service.baton", kTypeA);
  EXPECT_EQ(a.rcode, Rcode::kNoError);
  EXPECT_TRUE(a.answers.empty());
  EXPECT_TRUE(ask("cart.shop.service.baton", kTypeAAAA).answers.empty());
}

TEST(DnsResolverTest, UnknownNamesAreNxdomainAndOthersRefused) {
  EXPECT_EQ(ask("nope.shop.service.baton", kTypeA).rcode, Rcode::kNxDomain);
  EXPECT_EQ(ask("cart.service.baton", kTypeA).rcode, Rcode::kNxDomain) << "host: no app";
  EXPECT_EQ(ask("x.baton", kTypeA).rcode, Rcode::kNxDomain);
  EXPECT_EQ(ask("zz.addr.baton", kTypeA).rcode, Rcode::kNxDomain);
  EXPECT_EQ(ask("example.com", kTypeA).rcode, Rcode::kRefused);
}

TEST(DnsResolverTest, AnInstanceGetsMeshAddressesOfWhatItMayCallOnly) {
  const mesh::ServiceRef web{"shop", "web"}, admin{"shop", "admin"};
  Answer a = ask("cart.service.baton", kTypeA, web);
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(a.answers[0].ipv4, 0xA9FE4601u);  // 169.254.70.1
  a = ask("cart.shop.service.baton", kTypeSRV, web);
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(a.answers[0].srv.port, 80);
  EXPECT_EQ(ask("cart.service.baton", kTypeA, admin).rcode, Rcode::kNxDomain);
}

TEST(DnsResolverTest, PtrNamesTheCallersOfAnInstance) {
  const mesh::ServiceRef web{"shop", "web"}, cart{"shop", "cart"}, admin{"shop", "admin"};
  Answer a = ask("1.70.254.169.in-addr.arpa", kTypePTR);
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(a.answers[0].ptr, "cart.shop.service.baton");
  a = ask("253.127.254.169.in-addr.arpa", kTypePTR, cart);
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(a.answers[0].ptr, "gateway.baton");
  // cart learns who web is (web may call it); admin, which neither calls nor is called, does not.
  a = ask("2.70.254.169.in-addr.arpa", kTypePTR, cart);
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(a.answers[0].ptr, "web.shop.service.baton");
  EXPECT_EQ(ask("2.70.254.169.in-addr.arpa", kTypePTR, admin).rcode, Rcode::kNxDomain);
  EXPECT_EQ(ask("9.70.254.169.in-addr.arpa", kTypePTR).rcode, Rcode::kNxDomain) << "unused";
  EXPECT_EQ(ask("1.0.0.127.in-addr.arpa", kTypePTR).rcode, Rcode::kRefused) << "not the mesh's";
  EXPECT_EQ(ask("70.254.169.in-addr.arpa", kTypePTR).rcode, Rcode::kNxDomain);
  EXPECT_EQ(ask("1.1.70.254.169.in-addr.arpa", kTypePTR).rcode, Rcode::kNxDomain);
  EXPECT_EQ(ask("01.70.254.169.in-addr.arpa", kTypePTR).rcode, Rcode::kNxDomain);
  EXPECT_TRUE(ask("1.70.254.169.in-addr.arpa", kTypeA).answers.empty());

  // On the wire: RDLENGTH then the name as labels.
  Query q = *parseQuery(query("1.70.254.169.in-addr.arpa", kTypePTR)).query;
  std::string out = encodeResponse(q, resolve(view(), q, std::nullopt));
  const std::string rdata = std::string("\x00\x19\x04" "cart" "\x04" "shop" "\x07" "service" "\x05" "baton", 26) + '\0';
  EXPECT_EQ(out.substr(out.size() - rdata.size()), rdata);
}

// ---- the server, over real sockets on loopback ----

constexpr int kClientTimeoutSeconds = 10;  // a client read that waits longer fails the test

UniqueFd clientSocket(int type, int port) {
  UniqueFd fd(::socket(AF_INET, type, 0));
  timeval tv{kClientTimeoutSeconds, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  return fd;
}

void sendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    ASSERT_GT(n, 0);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads exactly n bytes; fewer when the peer closes first (or after the client's timeout).
std::string readSome(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// One framed answer; "" when the server closed the connection instead.
std::string readAnswer(int fd) {
  std::string prefix = readSome(fd, 2);
  if (prefix.size() < 2) return "";
  return readSome(fd, (static_cast<uint8_t>(prefix[0]) << 8) | static_cast<uint8_t>(prefix[1]));
}

// Whether the server closed the connection (EOF, or a reset when it left bytes unread; not the
// client's timeout).
bool closedByServer(int fd) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

std::string askUdp(int port, const std::string& q) {
  UniqueFd fd = clientSocket(SOCK_DGRAM, port);
  sendAll(fd.get(), q);
  std::string out(65536, '\0');
  ssize_t n = ::recv(fd.get(), out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

uint16_t id(std::string_view msg) { return msg.size() < 2 ? 0 : count(msg, 0); }

struct Server {
  DnsServer server;
  explicit Server(DnsServerOptions o = {}, mesh::MeshView v = view())
      : server([&o] {
          o.listen = {"127.0.0.1:0"};
          return o;
        }()) {
    server.setView(std::make_shared<const mesh::MeshView>(std::move(v)));
    EXPECT_TRUE(server.start().isOk());
  }
  int port() const { return server.port(); }
};

mesh::MeshView bigView(int instances) {
  mesh::MeshView v = view();
  auto& eps = v.healthy["shop/cart"];
  eps.clear();
  for (int i = 0; i < instances; ++i) {
    eps.push_back(
        {"i" + std::to_string(i), "n1", "169.254.128." + std::to_string(i + 1), 8000 + i});
  }
  return v;
}

TEST(DnsServerTest, UdpTruncatesWithTcAndTcpAnswersInFull) {
  Server s({}, bigView(100));
  const std::string q = query("cart.shop.service.baton", kTypeSRV, 7);
  std::string udp = askUdp(s.port(), q);
  ASSERT_GE(udp.size(), 12u);
  EXPECT_EQ(id(udp), 7);
  EXPECT_TRUE(isTruncated(udp));
  EXPECT_LE(udp.size(), kMaxUdpAnswer);
  EXPECT_LT(count(udp, 6), 100);
  EXPECT_EQ(s.server.stats().truncated, 1);

  UniqueFd tcp = clientSocket(SOCK_STREAM, s.port());
  sendAll(tcp.get(), frameMessage(q));
  std::string full = readAnswer(tcp.get());
  ASSERT_GT(full.size(), kMaxUdpAnswer);
  EXPECT_FALSE(isTruncated(full));
  EXPECT_EQ(id(full), 7);
  EXPECT_EQ(count(full, 6), 100);
  EXPECT_EQ(count(full, 10), 100);
  EXPECT_EQ(s.server.stats().queries, 2);
  EXPECT_EQ(s.server.stats().truncated, 1);
}

TEST(DnsServerTest, TcpAnswersPipelinedQueriesInOrderWhateverTheSegments) {
  Server s;
  UniqueFd fd = clientSocket(SOCK_STREAM, s.port());
  const std::string stream = frameMessage(query("cart.shop.service.baton", kTypeA, 1)) +
                             frameMessage(query("nope.shop.service.baton", kTypeA, 2)) +
                             frameMessage(query("cart.shop.service.baton", kTypeSRV, 3));
  // The first length prefix split between two segments, the rest in one.
  sendAll(fd.get(), stream.substr(0, 1));
  sendAll(fd.get(), stream.substr(1));
  std::string a = readAnswer(fd.get()), b = readAnswer(fd.get()), c = readAnswer(fd.get());
  ASSERT_GE(a.size(), 12u);
  ASSERT_GE(b.size(), 12u);
  ASSERT_GE(c.size(), 12u);
  EXPECT_EQ(id(a), 1);
  EXPECT_EQ(count(a, 6), 2);
  EXPECT_EQ(id(b), 2);
  EXPECT_EQ(static_cast<uint8_t>(b[3]) & 0x0f, static_cast<int>(Rcode::kNxDomain));
  EXPECT_EQ(id(c), 3);
  EXPECT_EQ(count(c, 6), 2);
  // Bytes that are no DNS message get no answer; the connection goes on.
  sendAll(fd.get(),
          frameMessage("junk") + frameMessage(query("cart.shop.service.baton", kTypeA, 4)));
  std::string d = readAnswer(fd.get());
  ASSERT_GE(d.size(), 12u);
  EXPECT_EQ(id(d), 4);
  DnsStats st = s.server.stats();
  EXPECT_EQ(st.queries, 4);
  EXPECT_EQ(st.nxdomain, 1);
  EXPECT_EQ(st.malformed, 1);
  EXPECT_EQ(st.tcp_accepted, 1);
}

TEST(DnsServerTest, AnInstanceAskingOverTcpGetsTheSameViewAsOverUdp) {
  mesh::MeshView v = view();
  v.callers["127.0.0.1"] = {"shop", "web"};  // the test's client is that instance
  Server s({}, v);
  const std::string q = query("cart.service.baton", kTypeA, 9);
  std::string udp = askUdp(s.port(), q);
  UniqueFd fd = clientSocket(SOCK_STREAM, s.port());
  sendAll(fd.get(), frameMessage(q));
  std::string tcp = readAnswer(fd.get());
  ASSERT_EQ(count(udp, 6), 1);
  EXPECT_EQ(udp, tcp);
  EXPECT_EQ(tcp.substr(tcp.size() - 4), std::string("\xA9\xFE\x46\x01", 4)) << "169.254.70.1";
}

TEST(DnsServerTest, TcpClosesOnAZeroOrOversizedLength) {
  Server s;
  for (std::string prefix :
       {std::string("\x02\x01", 2), std::string("\xff\xff", 2), std::string("\0\0", 2)}) {
    UniqueFd fd = clientSocket(SOCK_STREAM, s.port());
    sendAll(fd.get(), prefix + std::string(600, 'x'));
    EXPECT_TRUE(closedByServer(fd.get()));
  }
  EXPECT_EQ(s.server.stats().malformed, 3);
  EXPECT_EQ(s.server.stats().queries, 0);
}

TEST(DnsServerTest, TcpClosesAnIdleConnection) {
  DnsServerOptions o;
  o.tcp_idle_timeout = std::chrono::milliseconds(100);
  Server s(o);
  UniqueFd fd = clientSocket(SOCK_STREAM, s.port());
  sendAll(fd.get(), frameMessage(query("cart.shop.service.baton", kTypeA, 1)));
  EXPECT_EQ(id(readAnswer(fd.get())), 1);
  sendAll(fd.get(), std::string("\0", 1));  // half a length prefix, then nothing
  EXPECT_TRUE(closedByServer(fd.get()));
  EXPECT_EQ(s.server.stats().tcp_idle_closed, 1);
}

TEST(DnsServerTest, TcpConnectionsOverTheLimitAreClosedAtOnceAndCounted) {
  DnsServerOptions o;
  o.tcp_max_connections = 1;
  Server s(o);
  UniqueFd first = clientSocket(SOCK_STREAM, s.port());
  sendAll(first.get(), frameMessage(query("cart.shop.service.baton", kTypeA, 1)));
  EXPECT_EQ(id(readAnswer(first.get())), 1);  // accepted and open
  UniqueFd second = clientSocket(SOCK_STREAM, s.port());
  EXPECT_TRUE(closedByServer(second.get()));
  EXPECT_EQ(s.server.stats().tcp_rejected, 1);
  EXPECT_NE(s.server.prometheus().find("baton_dns_tcp_connections_total{outcome=\"rejected\"} 1\n"),
            std::string::npos);
  sendAll(first.get(), frameMessage(query("cart.shop.service.baton", kTypeA, 2)));
  EXPECT_EQ(id(readAnswer(first.get())), 2);
  // Once the first is gone (the server notices on its own time), a new connection is served.
  first = UniqueFd();
  for (int i = 0; i < 10'000 && s.server.stats().tcp_open > 0; ++i) ::usleep(1000);
  ASSERT_EQ(s.server.stats().tcp_open, 0);
  UniqueFd next = clientSocket(SOCK_STREAM, s.port());
  sendAll(next.get(), frameMessage(query("cart.shop.service.baton", kTypeA, 3)));
  EXPECT_EQ(id(readAnswer(next.get())), 3);
}

TEST(DnsServerTest, ABestEffortAddressWhoseTcpPortIsTakenStillAnswersUdp) {
  // A TCP listener on a port of 127.0.0.2, then that address and port best effort: the UDP
  // socket answers, TCP is a warning (a second agent's mesh DNS address, say).
  UniqueFd tcp(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(0x7f000002);  // 127.0.0.2
  ASSERT_EQ(::bind(tcp.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(tcp.get(), 1), 0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::getsockname(tcp.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
  const int port = ntohs(sa.sin_port);
  DnsServerOptions o;
  o.listen = {};
  o.best_effort = {"127.0.0.2:" + std::to_string(port)};
  DnsServer s(o);
  ASSERT_TRUE(s.start().isOk());
  ASSERT_EQ(s.warnings().size(), 1u);
  EXPECT_NE(s.warnings()[0].find("(TCP)"), std::string::npos) << s.warnings()[0];
  UniqueFd udp(::socket(AF_INET, SOCK_DGRAM, 0));
  timeval tv{kClientTimeoutSeconds, 0};
  ::setsockopt(udp.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ASSERT_EQ(::connect(udp.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  sendAll(udp.get(), query("cart.shop.service.baton", kTypeA, 5));
  char buf[512];
  ASSERT_GE(::recv(udp.get(), buf, sizeof buf, 0), 12);
  EXPECT_EQ(id(std::string_view(buf, 2)), 5);
}

TEST(DnsServerTest, StopClosesOpenTcpConnections) {
  auto s = std::make_unique<Server>();
  UniqueFd fd = clientSocket(SOCK_STREAM, s->port());
  sendAll(fd.get(), frameMessage(query("cart.shop.service.baton", kTypeA, 1)));
  EXPECT_EQ(id(readAnswer(fd.get())), 1);
  s->server.stop();  // returns although the client keeps its connection open
  EXPECT_TRUE(closedByServer(fd.get()));
}

}  // namespace
}  // namespace baton::dns
