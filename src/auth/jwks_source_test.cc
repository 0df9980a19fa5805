#include "auth/jwks_source.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "auth/testing/test_keys.h"
#include "core/testing/fake_clock.h"
#include "core/testing/temp_dir.h"

namespace baton::auth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using testing::TestKey;

struct CertPem {
  std::string cert;
  std::string key;
};

// A self-signed certificate for 127.0.0.1 and localhost, made with OpenSSL at test time.
CertPem makeSelfSigned() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(x, key, EVP_sha256());
  auto pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
  };
  CertPem out{pem([&](BIO* b) { PEM_write_bio_X509(b, x); }), pem([&](BIO* b) {
                PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
              })};
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

// A local https server answering every GET with the current body.
class TlsJwksServer {
 public:
  explicit TlsJwksServer(const CertPem& cert)
      : ctx_(ssl::context::tls_server), acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
    ctx_.use_certificate_chain(asio::buffer(cert.cert));
    ctx_.use_private_key(asio::buffer(cert.key), ssl::context::pem);
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, acceptLoop(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~TlsJwksServer() {
    ioc_.stop();
    thread_.join();
  }
  void setBody(std::string body, int status = 200) {
    std::lock_guard<std::mutex> lk(mu_);
    body_ = std::move(body);
    status_ = status;
  }
  int requests() const { return requests_.load(); }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/jwks.json"; }

 private:
  asio::awaitable<void> acceptLoop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(ioc_, serve(std::move(sock)), asio::detached);
    }
  }
  asio::awaitable<void> serve(tcp::socket sock) {
    auto tuple = asio::as_tuple(asio::use_awaitable);
    beast::ssl_stream<beast::tcp_stream> stream(std::move(sock), ctx_);
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, tuple);
    if (hec) co_return;
    beast::flat_buffer buf;
    http::request<http::empty_body> req;
    auto [rec, rn] = co_await http::async_read(stream, buf, req, tuple);
    if (rec) co_return;
    ++requests_;
    http::response<http::string_body> res;
    {
      std::lock_guard<std::mutex> lk(mu_);
      res.result(status_);
      res.body() = body_;
    }
    res.version(11);
    res.prepare_payload();
    co_await http::async_write(stream, res, tuple);
    co_await stream.async_shutdown(tuple);
  }

  asio::io_context ioc_;
  ssl::context ctx_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::string body_;
  int status_ = 200;
  std::atomic<int> requests_{0};
};

class JwksSourceTest : public ::testing::Test {
 protected:
  // GoogleTest runs these once per suite, and HttpsJwksTest derives from this one: the keys
  // are made and freed per suite (LeakSanitizer found the second suite's set-up orphaning the
  // first one's keys).
  static void SetUpTestSuite() {
    k1_ = new TestKey(testing::makeEcKey("k1"));
    k2_ = new TestKey(testing::makeEd25519Key("k2"));
  }
  static void TearDownTestSuite() {
    delete k1_;
    delete k2_;
    k1_ = k2_ = nullptr;
  }
  void write(const std::filesystem::path& p, const std::string& text) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  }
  void bumpMtime(const std::filesystem::path& p) {
    std::filesystem::last_write_time(p,
                                     std::filesystem::last_write_time(p) + std::chrono::seconds(5));
  }
  static TestKey* k1_;
  static TestKey* k2_;
  baton::testing::TempDir dir_;
  baton::testing::FakeClock clock_;
};
TestKey* JwksSourceTest::k1_;
TestKey* JwksSourceTest::k2_;

TEST_F(JwksSourceTest, FileReloadsWhenMtimeChanges) {
  auto path = dir_.path() / "jwks.json";
  write(path, testing::jwksOf({k1_}));
  auto src = JwksSource::open(path.string(), clock_);
  ASSERT_TRUE(src) << src.status().toString();
  auto& s = **src;
  ASSERT_EQ(s.keys()->keys.size(), 1u);
  EXPECT_EQ(s.generation(), 1u);

  write(path, testing::jwksOf({k1_, k2_}));
  bumpMtime(path);
  EXPECT_EQ(s.keys()->keys.size(), 1u);  // checked at most once per file_check_interval
  clock_.advance(Duration(1500));
  EXPECT_EQ(s.keys()->keys.size(), 2u);
  EXPECT_EQ(s.generation(), 2u);

  // A broken file keeps the last good keys and reports why.
  write(path, "{not json");
  bumpMtime(path);
  clock_.advance(Duration(1500));
  EXPECT_EQ(s.keys()->keys.size(), 2u);
  EXPECT_FALSE(s.lastError().isOk());
}

TEST_F(JwksSourceTest, FileUnknownKidRefetchIsRateLimited) {
  auto path = dir_.path() / "jwks.json";
  write(path, testing::jwksOf({k1_}));
  auto src = JwksSource::open(path.string(), clock_);
  ASSERT_TRUE(src);
  auto& s = **src;
  write(path, testing::jwksOf({k1_, k2_}));
  bumpMtime(path);
  auto fresh = s.onUnknownKid();  // immediate, without waiting for the periodic check
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->keys.size(), 2u);

  write(path, testing::jwksOf({k2_}));
  bumpMtime(path);
  clock_.advance(Duration(10'000));
  EXPECT_EQ(s.onUnknownKid(), nullptr);  // within 30 s of the last refetch
  EXPECT_EQ(s.refetchRequests(), 1u);
  clock_.advance(Duration(21'000));
  fresh = s.onUnknownKid();
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->keys.size(), 1u);
  EXPECT_EQ(s.refetchRequests(), 2u);
}

TEST_F(JwksSourceTest, FileErrors) {
  EXPECT_FALSE(JwksSource::open((dir_.path() / "missing.json").string(), clock_));
  auto path = dir_.path() / "bad.json";
  write(path, R"({"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]})");
  auto r = JwksSource::open(path.string(), clock_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("32 bytes"), std::string::npos) << r.status().toString();
  EXPECT_FALSE(JwksSource::open("http://id.example.com/jwks.json", clock_));
  EXPECT_FALSE(JwksSource::open("https://user@id.example.com/jwks.json", clock_));
  EXPECT_FALSE(JwksSource::open("https://id.example.com:99999/jwks.json", clock_));
}

class HttpsJwksTest : public JwksSourceTest {
 protected:
  void SetUp() override {
    cert_ = makeSelfSigned();
    ca_ = dir_.path() / "ca.pem";
    write(ca_, cert_.cert);
    server_ = std::make_unique<TlsJwksServer>(cert_);
    server_->setBody(testing::jwksOf({k1_}));
    opts_.ca_file = ca_.string();
    opts_.refresh_interval = Duration(0);
    opts_.retry_interval = Duration(3'600'000);
  }
  CertPem cert_;
  std::filesystem::path ca_;
  std::unique_ptr<TlsJwksServer> server_;
  JwksSourceOptions opts_;
};

TEST_F(HttpsJwksTest, FetchesWithTheConfiguredCa) {
  auto body = httpsGet(server_->url(), opts_);
  ASSERT_TRUE(body) << body.status().toString();
  EXPECT_EQ(*body, testing::jwksOf({k1_}));
}

TEST_F(HttpsJwksTest, RefusesAnUntrustedServer) {
  JwksSourceOptions system_store = opts_;
  system_store.ca_file.clear();  // the self-signed certificate is not in the system store
  auto body = httpsGet(server_->url(), system_store);
  ASSERT_FALSE(body);
  EXPECT_NE(body.status().message().find("TLS handshake"), std::string::npos)
      << body.status().toString();
}

TEST_F(HttpsJwksTest, BoundsAndStatus) {
  JwksSourceOptions small = opts_;
  small.max_bytes = 10;
  EXPECT_FALSE(httpsGet(server_->url(), small));
  server_->setBody("gone", 404);
  auto r = httpsGet(server_->url(), opts_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("404"), std::string::npos);
}

TEST_F(HttpsJwksTest, SourceRefetchesOnUnknownKidInTheBackground) {
  auto src = JwksSource::open(server_->url(), clock_, opts_);
  ASSERT_TRUE(src) << src.status().toString();
  auto& s = **src;
  ASSERT_TRUE(s.keys());
  EXPECT_EQ(s.keys()->keys.size(), 1u);
  EXPECT_EQ(server_->requests(), 1);

  server_->setBody(testing::jwksOf({k1_, k2_}));
  EXPECT_EQ(s.onUnknownKid(), nullptr);  // never waits on the network
  ASSERT_TRUE(s.waitForGeneration(1, std::chrono::seconds(20)));
  EXPECT_EQ(s.keys()->keys.size(), 2u);
  EXPECT_EQ(server_->requests(), 2);

  EXPECT_EQ(s.onUnknownKid(), nullptr);  // rate-limited: no second request
  EXPECT_EQ(s.refetchRequests(), 1u);
  clock_.advance(Duration(30'000));
  s.onUnknownKid();
  EXPECT_EQ(s.refetchRequests(), 2u);
  ASSERT_TRUE(s.waitForGeneration(2, std::chrono::seconds(20)));
  EXPECT_EQ(server_->requests(), 3);
}

TEST_F(HttpsJwksTest, UnreachableAtStartIsNotFatal) {
  server_->setBody("oops", 500);
  auto src = JwksSource::open(server_->url(), clock_, opts_);
  ASSERT_TRUE(src);
  EXPECT_EQ((*src)->keys(), nullptr);
  EXPECT_FALSE((*src)->lastError().isOk());
  server_->setBody(testing::jwksOf({k1_}));
  ASSERT_TRUE((*src)->reload().isOk());
  EXPECT_EQ((*src)->keys()->keys.size(), 1u);
}

}  // namespace
}  // namespace baton::auth
