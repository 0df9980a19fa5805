// Path confusion: every target a client can send is either refused or routed and forwarded in
// the one form normalizeTarget() gives it (docs/security.md, "Paths").
#include "gateway/path.h"

#include <gtest/gtest.h>

namespace baton::gateway {
namespace {

struct PathCase {
  const char* target;
  const char* want;  // the normalized target, or nullptr when refused
  PathError error = PathError::kNone;
};

void PrintTo(const PathCase& c, std::ostream* os) { *os << '"' << c.target << '"'; }

class PathTable : public ::testing::TestWithParam<PathCase> {};

TEST_P(PathTable, NormalizesOrRefuses) {
  std::string out;
  PathError e = normalizeTarget(GetParam().target, &out);
  if (GetParam().want == nullptr) {
    EXPECT_EQ(e, GetParam().error) << GetParam().target << " -> " << out;
  } else {
    EXPECT_EQ(e, PathError::kNone) << GetParam().target;
    EXPECT_EQ(out, GetParam().want) << GetParam().target;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Confusion, PathTable,
    ::testing::Values(
        PathCase{"/admin", "/admin"}, PathCase{"//admin", "/admin"},
        PathCase{"///admin//x/", "/admin/x/"}, PathCase{"/%61dmin", "/admin"},
        PathCase{"/%61%64%6D%69%6E", "/admin"}, PathCase{"/x/../admin", "/admin"},
        PathCase{"/./admin", "/admin"}, PathCase{"/%2e%2e/admin", "/admin"},
        PathCase{"/%2E%2E/%2e/admin", "/admin"}, PathCase{"/x/.%2e/admin", "/admin"},
        PathCase{"/../../admin", "/admin"}, PathCase{"/..", "/"},
        PathCase{"/a/b/../../..", "/"}, PathCase{"/a/%7Euser/./b", "/a/~user/b"},
        PathCase{"/a/%7euser", "/a/~user"}, PathCase{"/a%3fb", "/a%3Fb"},
        PathCase{"/a?x=%2F&y=/../z", "/a?x=%2F&y=/../z"}, PathCase{"/a/.../b", "/a/.../b"},
        PathCase{"/a/..b/.c", "/a/..b/.c"}, PathCase{"/a/b/", "/a/b/"},
        PathCase{"/a%20b", "/a%20b"}, PathCase{"/a?", "/a?"},
        PathCase{"/admin;x", nullptr, PathError::kSemicolon},
        PathCase{"/admin%3bx", nullptr, PathError::kSemicolon},  // found by gateway_fuzz
        PathCase{"/a/.%3B?x", nullptr, PathError::kSemicolon},
        PathCase{"/a%2Bb%40c", "/a+b@c"},
        PathCase{"/admin/;/x", nullptr, PathError::kSemicolon},
        PathCase{"/admin%2fx", nullptr, PathError::kEncodedSlash},
        PathCase{"/admin%2Fx", nullptr, PathError::kEncodedSlash},
        PathCase{"/admin%5cx", nullptr, PathError::kBackslash},
        PathCase{"/x\\..\\admin", nullptr, PathError::kBackslash},
        PathCase{"/a%00", nullptr, PathError::kNul},
        PathCase{"/a%zz", nullptr, PathError::kSyntax}, PathCase{"/a%2", nullptr, PathError::kSyntax},
        PathCase{"/a#frag", nullptr, PathError::kSyntax}, PathCase{"admin", nullptr, PathError::kSyntax},
        PathCase{"", nullptr, PathError::kSyntax}, PathCase{"/\xc3\xa9", nullptr, PathError::kSyntax}));

}  // namespace
}  // namespace baton::gateway
