#include <gtest/gtest.h>

#include "dns/dns_message.h"
#include "dns/resolver.h"

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

}  // namespace
}  // namespace baton::dns
