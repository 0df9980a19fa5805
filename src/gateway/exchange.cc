#include "gateway/exchange.h"

#include "core/ascii.h"
#include "gateway/path.h"

namespace baton::gateway {
namespace {

// Headers that the gateway sets itself: the client's are removed.
constexpr std::string_view kForwarding[] = {
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
    "x-forwarded-prefix", "x-forwarded-server", "forwarded", "x-real-ip",
};

// Names that mean framing or connection management; a look-alike with `_` is never relayed.
constexpr std::string_view kProtocol[] = {
    "host", "content-length", "transfer-encoding", "connection", "proxy-connection",
    "keep-alive", "te", "trailer", "upgrade", "expect", "authorization",
};

bool isCtlFree(std::string_view v) {
  for (char c : v) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) return false;
  }
  return true;
}

bool startsWithBatonPrefix(std::string_view name) {
  constexpr std::string_view kPrefix = "x-baton-";
  return name.size() >= kPrefix.size() && sameHeaderName(name.substr(0, kPrefix.size()), kPrefix);
}

}  // namespace

bool sameHeaderName(std::string_view name, std::string_view lower_name) {
  if (name.size() != lower_name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i] == '_' ? '-' : lowerAscii(name[i]);
    if (c != lower_name[i]) return false;
  }
  return true;
}

int statusForRequestError(http1::Error e) {
  switch (e) {
    case http1::Error::kHeadTooLarge:
    case http1::Error::kTooManyFields:
      return 431;
    case http1::Error::kBodyTooLarge:
      return 413;
    case http1::Error::kBadVersion:
      return 505;
    default:
      return 400;
  }
}

bool checkRequest(http1::RequestHead& req, http1::Error parse_error, const ForwardPolicy& policy,
                  RequestPlan* plan) {
  // Field by field, so the strings keep their capacity from one request to the next.
  plan->status = 0;
  plan->message.clear();
  plan->www_authenticate.clear();
  plan->close = false;
  plan->route = -1;
  plan->target.clear();
  plan->upstream_target.clear();
  plan->auth = AuthDecision{};
  auto refuse = [&](int status, std::string message) {
    plan->status = status;
    plan->message = std::move(message);
    plan->close = true;
    return false;
  };
  if (parse_error != http1::Error::kNone) {
    return refuse(statusForRequestError(parse_error),
                  std::string("malformed request: ") + http1::errorText(parse_error));
  }
  if (req.method() == "CONNECT") return refuse(400, "CONNECT is not supported");
  if (policy.max_body_bytes > 0 && req.framing() == http1::Framing::kLength &&
      req.contentLength() > policy.max_body_bytes) {
    return refuse(413, "request body too large");
  }
  if (PathError e = normalizeTarget(req.target(), &plan->target); e != PathError::kNone) {
    return refuse(400, pathErrorText(e));
  }
  for (http1::Field& f : req.fields()) {
    if (f.drop) continue;
    std::string_view n = f.name;
    bool drop = startsWithBatonPrefix(n);
    for (const std::string& h : policy.identity_headers) drop = drop || sameHeaderName(n, h);
    for (std::string_view h : kForwarding) drop = drop || sameHeaderName(n, h);
    if (!drop && n.find('_') != std::string_view::npos) {
      for (std::string_view h : kProtocol) drop = drop || sameHeaderName(n, h);
    }
    f.drop = drop;
  }
  return true;
}

bool routeRequest(http1::RequestHead& req, const RouteTable& table, Authorizer* authorizer,
                  RequestPlan* plan) {
  plan->route = table.match(req.host(), plan->target);
  if (plan->route < 0) {
    plan->status = 404;
    plan->message = "no route";
    plan->close = !req.keepAlive() || req.framing() != http1::Framing::kNone;
    return false;
  }
  const model::Route& route = table.entry(plan->route).route;
  plan->upstream_target = RouteTable::rewriteTarget(route, plan->target);
  plan->auth = AuthDecision{};  // again: a parked request is routed anew on release
  if (route.auth == "public") return true;
  if (authorizer == nullptr) {
    plan->auth.status = 401;
  } else {
    plan->auth = authorizer->authorize(req.hasAuthorization() ? req.authorization() : "", route);
  }
  // The gateway consumed the credentials; the backend does not get them unless the route asks.
  if (!route.forward_authorization) {
    for (http1::Field& f : req.fields()) {
      if (sameHeaderName(f.name, "authorization")) f.drop = true;
    }
  }
  if (plan->auth.status == 0) return true;
  plan->status = plan->auth.status;
  plan->message = plan->auth.status == 403 ? "forbidden" : "unauthorized";
  plan->www_authenticate = plan->auth.www_authenticate;
  plan->close = !req.keepAlive() || req.framing() != http1::Framing::kNone;
  return false;
}

void buildUpstreamHead(const http1::RequestHead& req, const RequestPlan& plan,
                       const ClientInfo& client, std::string* out) {
  std::string& head = *out;
  head.clear();
  head.append(req.method());
  head += ' ';
  head += plan.upstream_target;
  head += " HTTP/1.1\r\n";
  for (const http1::Field& f : req.fields()) {
    if (!f.drop) head.append(f.line);
  }
  // An HTTP/1.0 client may omit Host; an HTTP/1.1 backend requires one.
  if (!req.hasHost()) head += "Host: localhost\r\n";
  head += "X-Forwarded-For: ";
  head.append(client.ip);
  head += "\r\nX-Forwarded-Proto: ";
  head.append(client.proto);
  head += "\r\n";
  if (!req.host().empty()) {
    head += "X-Forwarded-Host: ";
    head.append(req.host());
    head += "\r\n";
  }
  for (const auto& [name, value] : plan.auth.add_headers) {
    // Claim values come from a verified token, but a header line must stay one line.
    if (!http1::isToken(name) || !isCtlFree(value)) continue;
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  if (req.websocketUpgrade()) head += "Connection: Upgrade\r\nUpgrade: websocket\r\n";
  head += "\r\n";
}

}  // namespace baton::gateway
