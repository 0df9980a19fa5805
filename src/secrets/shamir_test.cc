#include "secrets/shamir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "auth/jose.h"
#include "crypto/aead.h"

namespace baton::secrets::shamir {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string freshKey() { return crypto::randomBytes(kKeyBytes).value(); }

TEST(Shamir, EveryThresholdSubsetOfAFiveThreeSplitMakesTheKey) {
  const std::string kek = freshKey();
  auto shares = split(kek, 5, 3);
  ASSERT_TRUE(shares.isOk()) << shares.status().toString();
  ASSERT_EQ(shares->size(), 5u);
  int subsets = 0;
  for (int a = 0; a < 5; ++a) {
    for (int b = a + 1; b < 5; ++b) {
      for (int c = b + 1; c < 5; ++c) {
        auto key = combine({(*shares)[a], (*shares)[b], (*shares)[c]});
        ASSERT_TRUE(key.isOk()) << key.status().toString();
        EXPECT_EQ(*key, kek);
        // The order in which they are given does not matter.
        EXPECT_EQ(*combine({(*shares)[c], (*shares)[a], (*shares)[b]}), kek);
        ++subsets;
      }
    }
  }
  EXPECT_EQ(subsets, 10);
  for (const auto& s : *shares) {
    EXPECT_EQ(s.threshold, 3);
    EXPECT_EQ(s.key_id, keyId(kek));
    EXPECT_NE(s.bytes, kek);
  }
}

TEST(Shamir, FewerSharesThanTheThresholdDoNotMakeTheKey) {
  const std::string kek = freshKey();
  auto shares = split(kek, 5, 3).value();
  auto two = combine({shares[0], shares[1]});
  EXPECT_EQ(two.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(two.status().message(), HasSubstr("needs 3 shares, got 2"));
  // Interpolating two points as if they were the whole polynomial gives another key, which the
  // key id refuses.
  Share a = shares[0], b = shares[1];
  a.threshold = b.threshold = 2;
  auto wrong = combine({a, b});
  EXPECT_EQ(wrong.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(wrong.status().message(), HasSubstr("do not make the key"));
}

TEST(Shamir, TwoSplitsOfOneKeyDoNotMix) {
  const std::string kek = freshKey();
  auto s1 = split(kek, 3, 2).value();
  auto s2 = split(kek, 3, 2).value();
  EXPECT_NE(s1[0].bytes, s2[0].bytes) << "fresh coefficients for every split";
  EXPECT_EQ(combine({s1[0], s2[1]}).status().code(), Code::kFailedPrecondition);
  auto other = split(freshKey(), 3, 2).value();
  auto mixed = combine({s1[0], other[1]});
  EXPECT_EQ(mixed.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(mixed.status().message(), HasSubstr("share 2 belongs to another key"));
  auto twice = combine({s1[0], s1[0]});
  EXPECT_THAT(twice.status().message(), HasSubstr("share 1 was given twice"));
}

TEST(Shamir, SplitBounds) {
  const std::string kek = freshKey();
  EXPECT_TRUE(split(kek, 2, 2).isOk());
  EXPECT_TRUE(split(kek, 16, 16).isOk());
  EXPECT_EQ(split(kek, 1, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(split(kek, 5, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(split(kek, 3, 4).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(split(kek, 17, 3).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(split("short", 3, 2).status().code(), Code::kInvalidArgument);
  auto all = split(kek, 16, 16).value();
  EXPECT_EQ(*combine(all), kek);
}

TEST(Shamir, SharesRoundTripAsText) {
  const std::string kek = freshKey();
  const auto shares = split(kek, 5, 3).value();
  for (const auto& s : shares) {
    const std::string text = encodeShare(s);
    EXPECT_TRUE(text.starts_with("bs1.3." + std::to_string(s.index) + "." + s.key_id + "."))
        << text;
    auto back = parseShare("  " + text + "\n");  // as pasted, or read from a file
    ASSERT_TRUE(back.isOk()) << back.status().toString();
    EXPECT_EQ(back->index, s.index);
    EXPECT_EQ(back->threshold, 3);
    EXPECT_EQ(back->key_id, s.key_id);
    EXPECT_EQ(back->bytes, s.bytes);
  }
}

// A share whose checksum is right for whatever parts it has (as a careless or hostile writer
// could make), to reach the checks behind the checksum.
std::string withChecksum(const std::string& body) {
  // As shamir.cc computes it: SHA-256 over a domain string and the body, first 4 bytes in hex.
  std::string in("baton unseal share check\0", 25);
  in += body;
  std::string digest = crypto::sha256(in).substr(0, 4);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : digest) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  return body + "." + hex;
}

TEST(Shamir, ParseErrorsSayWhatIsWrongAndNeverQuoteTheShare) {
  const std::string kek = freshKey();
  auto shares = split(kek, 5, 3).value();
  const std::string good = encodeShare(shares[1]);
  const std::string part = good.substr(17, 43);  // the share's bytes, after "bs1.3.2.KEYID."

  struct Case {
    std::string text;
    std::string message;
  };
  std::string mistyped = good;
  mistyped[mistyped.size() - 20] = mistyped[mistyped.size() - 20] == 'A' ? 'B' : 'A';
  std::string bad_check = good;
  bad_check.back() = bad_check.back() == '0' ? '1' : '0';
  const std::string body = "bs1.3.2." + shares[1].key_id + "." + part;
  const std::vector<Case> cases = {
      {"", "the share is empty"},
      {" \n", "the share is empty"},
      {"hello", "not an unseal share"},
      {"bsx.3.2", "not an unseal share"},
      {"bs2." + good.substr(4), "share version 2 is not supported"},
      {good.substr(0, good.size() - 5), "truncated"},
      {good.substr(0, 30), "truncated"},
      {good + ".", "truncated"},
      {good + "0", "truncated"},
      {good.substr(0, good.rfind('.')), "truncated"},
      {mistyped, "mistyped"},
      {bad_check, "mistyped"},
      {"bs1.3.2." + shares[1].key_id + "." + part + "." + "ABCDEF12", "truncated"},
      {withChecksum("bs1.3.0." + shares[1].key_id + "." + part), "index 0 is not a share"},
      {withChecksum("bs1.3.17." + shares[1].key_id + "." + part), "index is not a number from 1"},
      {withChecksum("bs1.3.02." + shares[1].key_id + "." + part), "index is not a number"},
      {withChecksum("bs1.1.2." + shares[1].key_id + "." + part), "threshold is not a number from 2"},
      {withChecksum("bs1.+3.2." + shares[1].key_id + "." + part), "threshold is not a number"},
      {withChecksum("bs1.3.2.ABCDEF12." + part), "key id is not 8 lower-case hex"},
      {withChecksum("bs1.3.2." + shares[1].key_id + "." + part.substr(1)), "key part is not 43"},
      {withChecksum("bs1.3.2." + shares[1].key_id + "." + part.substr(1) + "="), "key part"},
      {withChecksum("bs1.3.2." + shares[1].key_id + "." + part + "AAAA"), "key part"},
  };
  for (const Case& c : cases) {
    auto r = parseShare(c.text);
    ASSERT_FALSE(r.isOk()) << c.message;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << "for input of " << c.text.size()
                                                             << " characters";
    EXPECT_THAT(r.status().message(), Not(HasSubstr(part.substr(0, 10))));
  }
  EXPECT_TRUE(parseShare(withChecksum(body)).isOk());
}

// An agent that starts sealed combines shares without ever having split a key: libgfshare's
// random hook must be set then too (it scrubs contexts with it; Debian's starts null). The
// "threadsafe" death-test style runs this in a fresh process, where no split has happened.
// The shares are those of the fuzz corpus: a fixed test key of 32 bytes 0x42.
TEST(ShamirDeathTest, CombineWorksInAProcessThatNeverSplit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        std::vector<Share> given;
        for (const char* text :
             {"bs1.3.1.ead8c3df.Ny621sGMR1FnP6e5ihTp_A_B4qpq9Gss4UyVo1QGcCo.75acce9d",
              "bs1.3.2.ead8c3df.dCWuJgwLUZdb0huNkK8EjIR5VvrnyalGwy40-8rF4H0.98231812",
              "bs1.3.3.ead8c3df.AUlaso_FVIR-r_52WPmvMsn69hLPf4AoYCDjGtyB0hU.2da47d22"}) {
          given.push_back(parseShare(text).value());
        }
        auto key = combine(given);
        std::_Exit(key.isOk() && *key == std::string(32, '\x42') ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace baton::secrets::shamir
