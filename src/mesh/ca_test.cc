#include "mesh/ca.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <fstream>

#include "core/testing/fake_clock.h"
#include "core/testing/temp_dir.h"
#include "state/sqlite_store.h"

namespace baton::mesh {
namespace {

X509* readCert(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return x;
}

// Whether `leaf` verifies against `root` at `when` (seconds since the epoch).
bool verifies(const std::string& root, const std::string& leaf, time_t when) {
  X509* r = readCert(root);
  X509* l = readCert(leaf);
  X509_STORE* st = X509_STORE_new();
  X509_STORE_add_cert(st, r);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, st, l, nullptr);
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), when);
  bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(st);
  X509_free(l);
  X509_free(r);
  return ok;
}

TEST(SpiffeTest, IdsRoundTripAndStrangersAreRefused) {
  EXPECT_EQ(spiffeId("baton", {"shop", "web"}), "spiffe://baton/app/shop/svc/web");
  EXPECT_EQ(parseSpiffeId("baton", "spiffe://baton/app/shop/svc/web"),
            (ServiceRef{"shop", "web"}));
  for (const char* bad : {"spiffe://other/app/shop/svc/web", "spiffe://baton/app/shop/svc/",
                          "spiffe://baton/app/Shop/svc/web", "spiffe://baton/app/shop/svc/web/x",
                          "spiffe://baton.evil/app/shop/svc/web", "http://baton/app/shop/svc/web",
                          ""}) {
    EXPECT_FALSE(parseSpiffeId("baton", bad).has_value()) << bad;
  }
}

class MeshCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(state::SqliteStore::open(dir_.path() / "db", clock_).value());
  }
  testing::TempDir dir_;
  testing::FakeClock clock_{SystemClock::instance().now()};
  std::unique_ptr<state::SqliteStore> store_;
};

TEST_F(MeshCaTest, RootIsMadeOnceSealedAndLeavesVerify) {
  const auto kek = dir_.path() / "mesh-ca.kek";
  auto ca = MeshCa::loadOrCreate(*store_, kek, "baton", clock_);
  ASSERT_TRUE(ca.isOk()) << ca.status().toString();
  struct stat st {};
  ASSERT_EQ(::stat(kek.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);

  // The store holds the certificate and a sealed key: no PEM private key in clear.
  auto rec = store_->get("/baton/mesh/ca");
  ASSERT_TRUE(rec.isOk() && rec->has_value());
  EXPECT_EQ((*rec)->value.find("PRIVATE KEY"), std::string::npos);

  auto again = MeshCa::loadOrCreate(*store_, kek, "baton", clock_);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ((*again)->rootPem(), (*ca)->rootPem());

  auto leaf = (*again)->issue({"shop", "web"}, Duration(24 * 3'600'000));
  ASSERT_TRUE(leaf.isOk()) << leaf.status().toString();
  const time_t now = std::chrono::system_clock::to_time_t(clock_.now());
  EXPECT_TRUE(verifies((*ca)->rootPem(), leaf->cert_pem, now));
  EXPECT_FALSE(verifies((*ca)->rootPem(), leaf->cert_pem, now + 25 * 3600)) << "expired";
  X509* x = readCert(leaf->cert_pem);
  GENERAL_NAMES* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_GENERAL_NAME_num(names), 1);
  GENERAL_NAME* n = sk_GENERAL_NAME_value(names, 0);
  ASSERT_EQ(n->type, GEN_URI);
  std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
                  ASN1_STRING_length(n->d.uniformResourceIdentifier));
  EXPECT_EQ(uri, "spiffe://baton/app/shop/svc/web");
  GENERAL_NAMES_free(names);
  X509_free(x);

  // Another agent's root does not vouch for this one's leaves.
  testing::TempDir other;
  auto other_store = state::SqliteStore::open(other.path() / "db", clock_);
  auto foreign = MeshCa::loadOrCreate(**other_store, other.path() / "kek", "baton", clock_);
  ASSERT_TRUE(foreign.isOk());
  EXPECT_FALSE(verifies((*foreign)->rootPem(), leaf->cert_pem, now));
}

TEST_F(MeshCaTest, AWrongKeyEncryptionKeyIsAClearError) {
  ASSERT_TRUE(MeshCa::loadOrCreate(*store_, dir_.path() / "kek", "baton", clock_).isOk());
  std::ofstream(dir_.path() / "kek2", std::ios::binary) << std::string(32, 'x');
  auto ca = MeshCa::loadOrCreate(*store_, dir_.path() / "kek2", "baton", clock_);
  ASSERT_FALSE(ca.isOk());
  EXPECT_NE(ca.status().message().find("key-encryption key"), std::string::npos);
  std::ofstream(dir_.path() / "short", std::ios::binary) << "abc";
  EXPECT_FALSE(MeshCa::loadOrCreate(*store_, dir_.path() / "short", "baton", clock_).isOk());
}

}  // namespace
}  // namespace baton::mesh
