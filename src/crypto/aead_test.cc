#include "crypto/aead.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace baton::crypto {
namespace {

TEST(AeadTest, SealedValuesOpenOnlyWithTheirKeyAndPurpose) {
  const std::string key(kKeyBytes, 'k');
  auto s = seal(key, "hunter2", "purpose-a");
  ASSERT_TRUE(s.isOk());
  EXPECT_EQ(s->size(), kNonceBytes + 7 + kTagBytes);
  EXPECT_EQ(s->find("hunter2"), std::string::npos);
  EXPECT_EQ(*open(key, *s, "purpose-a"), "hunter2");
  EXPECT_NE(*seal(key, "hunter2", "purpose-a"), *s) << "a fresh nonce every time";
  EXPECT_EQ(open(key, *s, "purpose-b").status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(open(std::string(kKeyBytes, 'x'), *s, "purpose-a").status().code(),
            Code::kFailedPrecondition);
  std::string altered = *s;
  altered[kNonceBytes] ^= 1;
  EXPECT_EQ(open(key, altered, "purpose-a").status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(open(key, s->substr(0, 20), "purpose-a").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(seal("short", "x", "").status().code(), Code::kInvalidArgument);
  auto empty = seal(key, "", "e");
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(*open(key, *empty, "e"), "");
}

TEST(AeadTest, Sha256AndCleanse) {
  // FIPS 180-2's "abc".
  const std::string d = sha256("abc");
  ASSERT_EQ(d.size(), 32u);
  EXPECT_EQ(static_cast<unsigned char>(d[0]), 0xba);
  EXPECT_EQ(static_cast<unsigned char>(d[31]), 0xad);
  std::string secret(40, 's');
  cleanse(secret);
  EXPECT_TRUE(secret.empty());
}

TEST(AeadTest, KeyFilesAreMadeOnceWithMode0600) {
  const auto dir = std::filesystem::temp_directory_path() / ("aead-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "node.key";
  auto a = loadOrCreateKeyFile(file);
  ASSERT_TRUE(a.isOk()) << a.status().message();
  EXPECT_EQ(a->size(), kKeyBytes);
  struct stat st{};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*loadOrCreateKeyFile(file), *a);
  std::ofstream(file, std::ios::trunc) << "short";
  auto c = loadOrCreateKeyFile(file);
  ASSERT_FALSE(c.isOk());
  EXPECT_NE(c.status().message().find("expected 32 bytes"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace baton::crypto
