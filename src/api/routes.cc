#include "api/routes.h"

#include <string>
#include <vector>

namespace baton::api {
namespace {

bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

std::vector<std::string> splitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(percentDecode(path.substr(i, j - i)));
    i = j;
  }
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct MethodTable {
  RouteId get = RouteId::kMethodNotAllowed;
  RouteId put = RouteId::kMethodNotAllowed;
  RouteId post = RouteId::kMethodNotAllowed;
  RouteId del = RouteId::kMethodNotAllowed;
};

RouteMatch pick(std::string_view method, const MethodTable& t) {
  RouteMatch m;
  if (method == "GET" || method == "HEAD") {
    m.id = t.get;
  } else if (method == "PUT") {
    m.id = t.put;
    m.is_write = true;
  } else if (method == "POST") {
    m.id = t.post;
    m.is_write = true;
  } else if (method == "DELETE") {
    m.id = t.del;
    m.is_write = true;
  } else {
    m.id = RouteId::kMethodNotAllowed;
  }
  if (m.id == RouteId::kMethodNotAllowed) m.is_write = false;
  return m;
}

}  // namespace

const char* routeName(RouteId id) {
  switch (id) {
    case RouteId::kNotFound:
      return "not_found";
    case RouteId::kMethodNotAllowed:
      return "method_not_allowed";
    case RouteId::kHealth:
      return "health";
    case RouteId::kMetrics:
      return "metrics";
    case RouteId::kListApps:
      return "list_apps";
    case RouteId::kGetApp:
      return "get_app";
    case RouteId::kPutApp:
      return "put_app";
    case RouteId::kDeleteApp:
      return "delete_app";
    case RouteId::kListServices:
      return "list_services";
    case RouteId::kListInstances:
      return "list_instances";
    case RouteId::kListNodes:
      return "list_nodes";
    case RouteId::kSetScale:
      return "set_scale";
    case RouteId::kClearScale:
      return "clear_scale";
    case RouteId::kLogs:
      return "logs";
    case RouteId::kEvents:
      return "events";
    case RouteId::kCreateApiKey:
      return "create_apikey";
    case RouteId::kListApiKeys:
      return "list_apikeys";
    case RouteId::kDeleteApiKey:
      return "delete_apikey";
    case RouteId::kListIntentions:
      return "list_intentions";
    case RouteId::kPutIntention:
      return "put_intention";
    case RouteId::kDeleteIntention:
      return "delete_intention";
    case RouteId::kCheckIntention:
      return "check_intention";
    case RouteId::kListSecrets:
      return "list_secrets";
    case RouteId::kGetSecret:
      return "get_secret";
    case RouteId::kPutSecret:
      return "put_secret";
    case RouteId::kDeleteSecret:
      return "delete_secret";
    case RouteId::kUndeleteSecret:
      return "undelete_secret";
    case RouteId::kDestroySecret:
      return "destroy_secret";
    case RouteId::kGetSecretMeta:
      return "get_secret_metadata";
    case RouteId::kPutSecretMeta:
      return "put_secret_metadata";
    case RouteId::kDeleteSecretMeta:
      return "delete_secret_metadata";
    case RouteId::kListAudit:
      return "list_audit";
    case RouteId::kOperatorInit:
      return "operator_init";
    case RouteId::kOperatorUnseal:
      return "operator_unseal";
    case RouteId::kSealStatus:
      return "seal_status";
    case RouteId::kCreateToken:
      return "create_token";
    case RouteId::kListTokens:
      return "list_tokens";
    case RouteId::kRevokeToken:
      return "revoke_token";
    case RouteId::kTokenSelf:
      return "token_self";
  }
  return "unknown";
}

std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hexValue(s[i + 1]);
      int lo = hexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::map<std::string, std::string> parseQuery(std::string_view query) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i <= query.size()) {
    size_t j = query.find('&', i);
    if (j == std::string_view::npos) j = query.size();
    std::string_view part = query.substr(i, j - i);
    if (!part.empty()) {
      size_t eq = part.find('=');
      std::string k(part.substr(0, eq));
      std::string v(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
      for (char& c : k) c = c == '+' ? ' ' : c;
      for (char& c : v) c = c == '+' ? ' ' : c;
      out[percentDecode(k)] = percentDecode(v);
    }
    i = j + 1;
  }
  return out;
}

RouteMatch matchRoute(std::string_view method, std::string_view path) {
  auto seg = splitPath(path);
  auto n = seg.size();
  if (n == 1 && seg[0] == "metrics") return pick(method, {.get = RouteId::kMetrics});
  if (n < 2 || seg[0] != "v1") return {};
  const std::string& top = seg[1];
  if (n == 2) {
    if (top == "health") return pick(method, {.get = RouteId::kHealth});
    if (top == "apps") return pick(method, {.get = RouteId::kListApps});
    if (top == "services") return pick(method, {.get = RouteId::kListServices});
    if (top == "instances") return pick(method, {.get = RouteId::kListInstances});
    if (top == "nodes") return pick(method, {.get = RouteId::kListNodes});
    if (top == "events") return pick(method, {.get = RouteId::kEvents});
    if (top == "intentions") {
      return pick(method, {.get = RouteId::kListIntentions,
                           .put = RouteId::kPutIntention,
                           .del = RouteId::kDeleteIntention});
    }
    if (top == "secrets") return pick(method, {.get = RouteId::kListSecrets});
    if (top == "audit") return pick(method, {.get = RouteId::kListAudit});
    if (top == "tokens") {
      return pick(method, {.get = RouteId::kListTokens, .post = RouteId::kCreateToken});
    }
    if (top == "apikeys") {
      return pick(method, {.get = RouteId::kListApiKeys, .post = RouteId::kCreateApiKey});
    }
    return {};
  }
  if (top == "operator") {
    // The secrets' seal (docs/secrets.md "Unsealing").
    if (n != 3) return {};
    if (seg[2] == "init") return pick(method, {.post = RouteId::kOperatorInit});
    if (seg[2] == "unseal") return pick(method, {.post = RouteId::kOperatorUnseal});
    if (seg[2] == "seal") return pick(method, {.get = RouteId::kSealStatus});
    return {};
  }
  if (top == "intentions") {
    if (n != 3 || seg[2] != "check") return {};
    return pick(method, {.get = RouteId::kCheckIntention});
  }
  if (top == "secrets") {
    // The path is every segment after the kind ("shop/db"); secrets/kv.h checks its form.
    if (n < 4) return {};
    RouteMatch m;
    const std::string& kind = seg[2];
    if (kind == "data") {
      m = pick(method, {.get = RouteId::kGetSecret,
                        .put = RouteId::kPutSecret,
                        .del = RouteId::kDeleteSecret});
    } else if (kind == "metadata") {
      m = pick(method, {.get = RouteId::kGetSecretMeta,
                        .put = RouteId::kPutSecretMeta,
                        .del = RouteId::kDeleteSecretMeta});
    } else if (kind == "undelete") {
      m = pick(method, {.post = RouteId::kUndeleteSecret});
    } else if (kind == "destroy") {
      m = pick(method, {.post = RouteId::kDestroySecret});
    } else {
      return {};
    }
    std::string path;
    for (size_t i = 3; i < n; ++i) path += (i > 3 ? "/" : "") + seg[i];
    m.params["path"] = path;
    return m;
  }
  if (top == "tokens") {
    if (n != 3) return {};
    if (seg[2] == "self") return pick(method, {.get = RouteId::kTokenSelf});
    RouteMatch m = pick(method, {.del = RouteId::kRevokeToken});
    m.params["accessor"] = seg[2];
    return m;
  }
  if (top == "apikeys") {
    if (n != 3) return {};
    RouteMatch m = pick(method, {.del = RouteId::kDeleteApiKey});
    m.params["id"] = seg[2];
    return m;
  }
  if (top != "apps") return {};
  RouteMatch m;
  if (n == 3) {
    m = pick(method,
             {.get = RouteId::kGetApp, .put = RouteId::kPutApp, .del = RouteId::kDeleteApp});
  } else if (n == 6 && seg[3] == "services" && seg[5] == "scale") {
    m = pick(method, {.post = RouteId::kSetScale, .del = RouteId::kClearScale});
  } else if (n == 6 && seg[3] == "services" && seg[5] == "logs") {
    m = pick(method, {.get = RouteId::kLogs});
  } else {
    return {};
  }
  m.params["app"] = seg[2];
  if (n == 6) m.params["svc"] = seg[4];
  return m;
}

bool isLoopbackHost(std::string_view host) {
  if (host.empty()) return true;
  std::string_view name = host;
  if (name.front() == '[') {
    size_t close = name.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view rest = name.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !allDigits(rest.substr(1)))) return false;
    return name.substr(1, close - 1) == "::1";
  }
  if (size_t colon = name.find(':'); colon != std::string_view::npos) {
    if (!allDigits(name.substr(colon + 1))) return false;
    name = name.substr(0, colon);
  }
  if (iequals(name, "localhost")) return true;
  // 127.a.b.c, four decimal octets.
  int parts = 0;
  for (std::string_view rest = name;; ++parts) {
    size_t dot = rest.find('.');
    std::string_view octet = rest.substr(0, dot);
    if (octet.size() > 3 || !allDigits(octet) || std::stoi(std::string(octet)) > 255) return false;
    if (parts == 0 && octet != "127") return false;
    if (dot == std::string_view::npos) break;
    rest = rest.substr(dot + 1);
  }
  return parts == 3;
}

bool isLoopbackOrigin(std::string_view origin) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.starts_with(scheme)) {
      std::string_view host = origin.substr(scheme.size());
      return !host.empty() && host.find('/') == std::string_view::npos && isLoopbackHost(host);
    }
  }
  return false;
}

}  // namespace baton::api
