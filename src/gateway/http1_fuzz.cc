// libFuzzer target for the gateway's protocol decisions (scripts/fuzz.sh gateway). Structure-
// aware: the input is split into a request head, a response head and body bytes, fed at split
// points the input chooses, so the fuzzer reaches folded lines, duplicate headers, chunk sizes
// and trailers at every boundary. Checks, besides ASan/UBSan: every view a parsed head hands out
// lies inside its own copy; a decoder never claims more bytes than it was given; relayed bytes
// are a subsequence of the input; the path normalizer is idempotent.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/exchange.h"
#include "gateway/http1.h"
#include "gateway/path.h"

namespace {

using namespace baton::gateway;

void check(bool ok) {
  if (!ok) std::abort();
}

void inside(std::string_view outer, std::string_view v) {
  if (v.empty()) return;
  check(v.data() >= outer.data() && v.data() + v.size() <= outer.data() + outer.size());
}

// Splits the next piece off `in` at a length the input chooses.
std::string_view take(std::string_view& in) {
  if (in.size() < 2) {
    std::string_view all = in;
    in = {};
    return all;
  }
  size_t n = (static_cast<uint8_t>(in[0]) << 8 | static_cast<uint8_t>(in[1])) % (in.size() - 1);
  std::string_view piece = in.substr(2, n);
  in.remove_prefix(2 + n);
  return piece;
}

void fuzzBody(http1::Framing framing, uint64_t length, std::string_view bytes, uint8_t step) {
  http1::BodyDecoder d(framing, length, 1 << 20);
  size_t pos = 0, relayed = 0;
  size_t piece = step % 17 + 1;
  while (pos < bytes.size() && !d.done()) {
    size_t n = std::min(piece, bytes.size() - pos);
    auto st = d.feed(bytes.data() + pos, n);
    check(st.n <= n);
    if (st.error != http1::Error::kNone) return;
    if (st.forward) relayed += st.n;
    if (st.n == 0) break;
    pos += st.n;
  }
  check(relayed <= pos);
  if (!d.done()) (void)d.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  uint8_t step = size > 0 ? data[0] : 1;
  std::string_view req_bytes = take(in);
  std::string_view resp_bytes = take(in);
  std::string_view body = in;

  // Request head, found incrementally at the input's split point.
  http1::RequestHead req;
  size_t resume = 0;
  size_t split = req_bytes.empty() ? 0 : step % req_bytes.size();
  size_t end = http1::findHeadEnd(req_bytes.substr(0, split), &resume);
  if (end == 0) end = http1::findHeadEnd(req_bytes, &resume);
  if (end > 0) {
    http1::Limits limits;
    http1::Error e = req.parse(req_bytes.substr(0, end), limits);
    inside(req.raw(), req.method());
    inside(req.raw(), req.target());
    inside(req.raw(), req.host());
    inside(req.raw(), req.authorization());
    for (const auto& f : req.fields()) {
      inside(req.raw(), f.name);
      inside(req.raw(), f.value);
      inside(req.raw(), f.line);
    }
    RequestPlan plan;
    ForwardPolicy policy;
    policy.identity_headers = {"x-user"};
    if (checkRequest(req, e, policy, &plan)) {
      std::string again;
      check(normalizeTarget(plan.target, &again) == PathError::kNone && again == plan.target);
      RouteTable table;
      routeRequest(req, table, nullptr, &plan);
      plan.upstream_target = plan.target;
      std::string head;
      buildUpstreamHead(req, plan, ClientInfo{"127.0.0.1", "http"}, &head);
      // The rebuilt head is one well-formed head that parses to the same framing.
      http1::RequestHead back;
      size_t r2 = 0;
      check(http1::findHeadEnd(head, &r2) == head.size());
      check(back.parse(head, http1::Limits{1 << 20, 1024}) == http1::Error::kNone);
      check(back.framing() == req.framing() && back.contentLength() == req.contentLength());
      fuzzBody(req.framing(), req.contentLength(), body, step);
    }
  }

  http1::ResponseHead resp;
  resume = 0;
  end = http1::findHeadEnd(resp_bytes, &resume);
  if (end > 0) {
    http1::Error e = resp.parse(resp_bytes.substr(0, end), step & 1 ? "HEAD" : "GET",
                                http1::Limits{});
    inside(resp.raw(), resp.statusLine());
    for (const auto& f : resp.fields()) inside(resp.raw(), f.line);
    if (e == http1::Error::kNone) fuzzBody(resp.framing(), resp.contentLength(), body, step);
  }
  fuzzBody(http1::Framing::kChunked, 0, body, step);
  return 0;
}
