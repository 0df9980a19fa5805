// The gateway's HTTP/1.1 framing, alone: request and response heads, chunked and length bodies.
// Each refusal here is one of the request-smuggling classes in docs/security.md.
#include "gateway/http1.h"

#include <gtest/gtest.h>

#include <string>

namespace baton::gateway::http1 {
namespace {

Error parseRequest(RequestHead& r, std::string_view text) {
  size_t resume = 0;
  size_t end = findHeadEnd(text, &resume);
  if (end == 0) return Error::kTruncated;
  EXPECT_EQ(end, text.size()) << "test heads end at the blank line";
  return r.parse(text.substr(0, end), Limits{});
}

Error parseResponse(ResponseHead& r, std::string_view text, std::string_view method = "GET") {
  size_t resume = 0;
  size_t end = findHeadEnd(text, &resume);
  if (end == 0) return Error::kTruncated;
  return r.parse(text.substr(0, end), method, Limits{});
}

TEST(Http1Test, FindHeadEndScansOnceAcrossCalls) {
  std::string buf = "GET / HTTP/1.1\r\nHost: a\r\n";
  size_t resume = 0;
  EXPECT_EQ(findHeadEnd(buf, &resume), 0u);
  buf += "\r";
  EXPECT_EQ(findHeadEnd(buf, &resume), 0u);
  buf += "\n";
  EXPECT_EQ(findHeadEnd(buf, &resume), buf.size());
  resume = 0;
  EXPECT_EQ(findHeadEnd("GET / HTTP/1.1\nHost: a\n\nrest", &resume), 24u);  // bare LFs end too
}

TEST(Http1Test, ParsesAPlainRequest) {
  RequestHead r;
  ASSERT_EQ(parseRequest(r, "GET /a?b HTTP/1.1\r\nHost: example.com:8080\r\n"
                            "Authorization: Bearer x\r\nX-A:  v v \t\r\n\r\n"),
            Error::kNone);
  EXPECT_EQ(r.method(), "GET");
  EXPECT_EQ(r.target(), "/a?b");
  EXPECT_EQ(r.version(), 11);
  EXPECT_EQ(r.host(), "example.com:8080");
  EXPECT_EQ(r.authorization(), "Bearer x");
  ASSERT_EQ(r.fields().size(), 3u);
  EXPECT_EQ(r.fields()[2].value, "v v");
  EXPECT_EQ(r.fields()[2].line, "X-A:  v v \t\r\n");
  EXPECT_EQ(r.framing(), Framing::kNone);
  EXPECT_TRUE(r.keepAlive());
}

TEST(Http1Test, ViewsPointIntoTheHeadsOwnCopy) {
  RequestHead r;
  std::string buf = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(200, 'v') + "\r\n\r\n";
  ASSERT_EQ(parseRequest(r, buf), Error::kNone);
  std::fill(buf.begin(), buf.end(), 'Z');  // the caller's buffer is reused
  EXPECT_EQ(r.host(), "a");
  EXPECT_EQ(r.fields()[1].value, std::string(200, 'v'));
  const char* begin = r.raw().data();
  for (const Field& f : r.fields()) {
    EXPECT_GE(f.value.data(), begin);
    EXPECT_LE(f.value.data() + f.value.size(), begin + r.raw().size());
  }
}

struct Case {
  const char* name;
  const char* head;
  Error want;
};

class RequestRefusals : public ::testing::TestWithParam<Case> {};

TEST_P(RequestRefusals, Refused) {
  RequestHead r;
  EXPECT_EQ(parseRequest(r, GetParam().head), GetParam().want) << GetParam().name;
}

INSTANTIATE_TEST_SUITE_P(
    Smuggling, RequestRefusals,
    ::testing::Values(
        Case{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n",
             Error::kObsFold},
        Case{"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tfolded\r\n\r\n",
             Error::kObsFold},
        Case{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", Error::kMalformed},
        Case{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", Error::kMalformed},
        Case{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
             Error::kMalformed},
        Case{"whitespace before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
             Error::kObsFold},
        Case{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
             Error::kBadContentLength},
        Case{"CL twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
             Error::kBadContentLength},
        Case{"CL plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
             Error::kBadContentLength},
        Case{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\n",
             Error::kBadContentLength},
        Case{"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
             Error::kBadContentLength},
        Case{"CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
             Error::kBadContentLength},
        Case{"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
             Error::kBadTransferEncoding},
        Case{"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
             Error::kBadTransferEncoding},
        Case{"TE chunked, identity",
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
             Error::kBadTransferEncoding},
        Case{"TE twice",
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
             Error::kBadTransferEncoding},
        Case{"TE on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
             Error::kBadTransferEncoding},
        Case{"CL and TE",
             "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
             Error::kLengthAndChunked},
        Case{"Connection names CL",
             "POST / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Content-Length\r\nContent-Length: 3\r\n\r\n",
             Error::kConnectionNamesFraming},
        Case{"Connection names TE",
             "POST / HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
             Error::kConnectionNamesFraming},
        Case{"Connection names Host", "GET / HTTP/1.1\r\nHost: a\r\nConnection: HOST\r\n\r\n",
             Error::kConnectionNamesFraming},
        Case{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Error::kDuplicateHost},
        Case{"no Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", Error::kMissingHost},
        Case{"Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Error::kBadHost},
        Case{"Host with userinfo", "GET / HTTP/1.1\r\nHost: x@y\r\n\r\n", Error::kBadHost},
        Case{"Host open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", Error::kBadHost},
        Case{"Host bad port", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", Error::kBadHost},
        Case{"two Authorizations",
             "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nauthorization: Bearer y\r\n\r\n",
             Error::kDuplicateAuthorization},
        Case{"absolute-form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", Error::kBadTarget},
        Case{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Error::kBadTarget},
        Case{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", Error::kBadVersion},
        Case{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Error::kMalformed},
        Case{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", Error::kMalformed},
        Case{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Error::kMalformed},
        Case{"non-ASCII in target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
             Error::kMalformed},
        Case{"empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", Error::kMalformed},
        Case{"bad name char", "GET / HTTP/1.1\r\nHost: a\r\nX(A): x\r\n\r\n", Error::kMalformed}),
    [](const ::testing::TestParamInfo<Case>& info) {
      std::string n;
      for (const char* p = info.param.name; *p; ++p) n += std::isalnum(*p) ? *p : '_';
      return n;
    });

TEST(Http1Test, NulInAValueIsRefused) {
  RequestHead r;
  using namespace std::string_literals;
  EXPECT_EQ(parseRequest(r, "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s), Error::kMalformed);
}

TEST(Http1Test, FramingOfAcceptedRequests) {
  RequestHead r;
  ASSERT_EQ(parseRequest(r, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n"),
            Error::kNone);
  EXPECT_EQ(r.framing(), Framing::kLength);
  EXPECT_EQ(r.contentLength(), 7u);
  ASSERT_EQ(parseRequest(r, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tChunked \r\n\r\n"),
            Error::kNone);
  EXPECT_EQ(r.framing(), Framing::kChunked);
  ASSERT_EQ(parseRequest(r, "GET / HTTP/1.0\r\n\r\n"), Error::kNone);  // 1.0 may omit Host
  EXPECT_FALSE(r.keepAlive());
  ASSERT_EQ(parseRequest(r, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), Error::kNone);
  EXPECT_TRUE(r.keepAlive());
  ASSERT_EQ(parseRequest(r, "GET / HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n"),
            Error::kNone);
  EXPECT_FALSE(r.keepAlive());
  ASSERT_EQ(parseRequest(r, "GET / HTTP/1.1\r\nHost: \r\n\r\n"), Error::kNone);  // RFC: may be empty
  ASSERT_EQ(parseRequest(r, "GET / HTTP/1.1\r\nHost: [v1.a:b]:8\r\n\r\n"), Error::kNone);  // IPvFuture
}

TEST(Http1Test, HopByHopFieldsAreMarked) {
  RequestHead r;
  ASSERT_EQ(parseRequest(r, "GET / HTTP/1.1\r\nX-Secret: 1\r\nHost: a\r\n"
                            "Connection: keep-alive, x-secret\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
                            "Upgrade: websocket\r\nExpect: 100-continue\r\nX-Kept: 1\r\n\r\n"),
            Error::kNone);
  for (const Field& f : r.fields()) {
    EXPECT_EQ(f.drop, f.name != "Host" && f.name != "X-Kept") << f.name;
  }
  EXPECT_TRUE(r.expectContinue());
  EXPECT_FALSE(r.websocketUpgrade());  // Connection does not say upgrade
  ASSERT_EQ(parseRequest(r, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                            "Upgrade: websocket\r\n\r\n"),
            Error::kNone);
  EXPECT_TRUE(r.websocketUpgrade());
}

TEST(Http1Test, LimitsOnFields) {
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 200; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  head += "\r\n";
  RequestHead r;
  EXPECT_EQ(parseRequest(r, head), Error::kTooManyFields);
  Limits small;
  small.max_head_bytes = 20;
  EXPECT_EQ(r.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", small), Error::kHeadTooLarge);
}

TEST(Http1Test, Responses) {
  ResponseHead r;
  ASSERT_EQ(parseResponse(r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: x-hop\r\n"
                             "X-Hop: 1\r\nKeep-Alive: timeout=3, max=10\r\nX-Kept: 1\r\n\r\n"),
            Error::kNone);
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.framing(), Framing::kLength);
  EXPECT_EQ(r.contentLength(), 5u);
  EXPECT_TRUE(r.keepAlive());
  EXPECT_EQ(r.keepAliveTimeout(), 3);
  EXPECT_EQ(r.statusLine(), "HTTP/1.1 200 OK\r\n");
  for (const Field& f : r.fields()) {
    EXPECT_EQ(f.drop, f.name != "Content-Length" && f.name != "X-Kept") << f.name;
  }
  ASSERT_EQ(parseResponse(r, "HTTP/1.1 204\r\n\r\n"), Error::kNone);  // no reason phrase
  EXPECT_EQ(r.framing(), Framing::kNone);
  ASSERT_EQ(parseResponse(r, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD"),
            Error::kNone);
  EXPECT_EQ(r.framing(), Framing::kNone);
  ASSERT_EQ(parseResponse(r, "HTTP/1.1 200 OK\r\n\r\n"), Error::kNone);
  EXPECT_EQ(r.framing(), Framing::kUntilClose);
  EXPECT_FALSE(r.keepAlive());
  ASSERT_EQ(parseResponse(r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Error::kNone);
  EXPECT_EQ(r.framing(), Framing::kChunked);
  ASSERT_EQ(parseResponse(r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), Error::kNone);
  EXPECT_EQ(r.framing(), Framing::kUntilClose);
  ASSERT_EQ(parseResponse(r, "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"), Error::kNone);
  EXPECT_FALSE(r.keepAlive());
  ASSERT_EQ(parseResponse(r, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n"),
            Error::kNone);
  for (const Field& f : r.fields()) EXPECT_FALSE(f.drop) << f.name;

  EXPECT_EQ(parseResponse(r, "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n"), Error::kObsFold);
  EXPECT_EQ(parseResponse(r, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: "
                             "chunked\r\n\r\n"),
            Error::kLengthAndChunked);
  EXPECT_EQ(parseResponse(r, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            Error::kBadContentLength);
  EXPECT_EQ(parseResponse(r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Error::kBadTransferEncoding);
  EXPECT_EQ(parseResponse(r, "HTTP/1.1 20 OK\r\n\r\n"), Error::kMalformed);
  EXPECT_EQ(parseResponse(r, "ICY 200 OK\r\n\r\n"), Error::kMalformed);
}

// Runs a whole byte string through a decoder; returns what is relayed, or "ERR".
std::string decodeAll(BodyDecoder d, std::string_view in, size_t piece, size_t* used = nullptr) {
  std::string out;
  size_t pos = 0;
  while (!d.done() && pos < in.size()) {
    size_t n = std::min(piece, in.size() - pos);
    size_t off = 0;
    while (off < n && !d.done()) {
      auto st = d.feed(in.data() + pos + off, n - off);
      if (st.error != Error::kNone) return "ERR";
      if (st.forward) out.append(in.substr(pos + off, st.n));
      off += st.n;
      if (st.n == 0) break;
    }
    pos += off;
  }
  if (used) *used = pos;
  return d.done() ? out : "INCOMPLETE";
}

TEST(Http1Test, ChunkedBodiesAtEverySplit) {
  const std::string body = "5\r\nhello\r\n1a;ext=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n"
                           "X-Trailer: evil\r\nX-Two: 2\r\n\r\nGET /next";
  const std::string relayed =
      "5\r\nhello\r\n1a;ext=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
  for (size_t piece : {1u, 2u, 3u, 7u, 64u, 1000u}) {
    size_t used = 0;
    EXPECT_EQ(decodeAll(BodyDecoder(Framing::kChunked, 0), body, piece, &used), relayed) << piece;
    EXPECT_EQ(body.substr(used), "GET /next") << piece;
  }
}

TEST(Http1Test, ChunkedRefusals) {
  for (const char* bad : {"5\nhello\r\n0\r\n\r\n", "5\r\nhello\n0\r\n\r\n", "5\r\nhelloX\r\n",
                          "g\r\n", "\r\n", ";x\r\n", "11111111111111111\r\n",
                          "5;a\nb\r\nhello\r\n0\r\n\r\n", "0\r\n folded: x\r\n\r\n",
                          "0\r\nX : y\r\n\r\n", "0\r\n\rx", "-1\r\n",
                          // after the size only BWS ";" (found by the h11 differential test:
                          // "1 0" is one chunk of 0x10 bytes to a backend that skips spaces)
                          "5 x\r\nhello\r\n0\r\n\r\n", "1 0\r\nh\r\n0\r\n\r\n",
                          "5;\r\nhello\r\n0\r\n\r\n", "5;a b\r\nhello\r\n0\r\n\r\n",
                          "5;a=\r\nhello\r\n0\r\n\r\n", "5;a=\"b\r\nhello\r\n0\r\n\r\n",
                          "5;a=b\"c\"\r\nhello\r\n0\r\n\r\n", "5;=b\r\nhello\r\n0\r\n\r\n"}) {
    EXPECT_EQ(decodeAll(BodyDecoder(Framing::kChunked, 0), bad, 1000), "ERR") << bad;
  }
  EXPECT_EQ(decodeAll(BodyDecoder(Framing::kChunked, 0, 4), "5\r\nhello\r\n0\r\n\r\n", 1000),
            "ERR");  // over the body limit
  for (const char* good : {"5 ;a = b\r\nhello\r\n0\r\n\r\n", "5;a=\"b \\\" c\";d\r\nhello\r\n0\r\n\r\n",
                           "5 \r\nhello\r\n0;x\r\n\r\n", "005;A\t;B=1\r\nhello\r\n0\r\n\r\n"}) {
    EXPECT_NE(decodeAll(BodyDecoder(Framing::kChunked, 0), good, 3), "ERR") << good;
  }
}

TEST(Http1Test, LengthAndCloseDelimitedBodies) {
  size_t used = 0;
  EXPECT_EQ(decodeAll(BodyDecoder(Framing::kLength, 3), "abcdef", 2, &used), "abc");
  EXPECT_EQ(used, 3u);
  BodyDecoder d(Framing::kUntilClose, 0);
  EXPECT_EQ(d.feed("abc", 3).n, 3u);
  EXPECT_FALSE(d.done());
  EXPECT_EQ(d.finish(), Error::kNone);
  EXPECT_TRUE(d.done());
  BodyDecoder l(Framing::kLength, 10);
  l.feed("abc", 3);
  EXPECT_EQ(l.finish(), Error::kTruncated);
  EXPECT_TRUE(BodyDecoder().done());
  EXPECT_EQ(BodyDecoder(Framing::kLength, 10, 5).feed("abc", 3).error, Error::kBodyTooLarge);
}

}  // namespace
}  // namespace baton::gateway::http1
