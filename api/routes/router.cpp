#include "api/routes/router.hpp"

#include <cstdlib>

#include "api/routes/percent.hpp"

namespace forkvm::api {

namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

}  // namespace

Router::Router(std::vector<RoutePattern> routes) {
  for (auto& r : routes) {
    Compiled c{std::move(r.method), {}};
    for (auto part : split_path(r.pattern)) {
      if (part.size() > 3 && part.substr(0, 2) == "{*" && part.back() == '}')
        c.segments.push_back({Segment::Kind::tail, std::string(part.substr(2, part.size() - 3))});
      else if (part.size() > 2 && part.front() == '{' && part.back() == '}')
        c.segments.push_back({Segment::Kind::param, std::string(part.substr(1, part.size() - 2))});
      else
        c.segments.push_back({Segment::Kind::literal, std::string(part)});
    }
    routes_.push_back(std::move(c));
  }
}

bool Router::match_path(const Compiled& route, const std::vector<std::string_view>& parts,
                        std::string_view path, std::map<std::string, std::string>& raw) {
  raw.clear();
  for (size_t i = 0; i < route.segments.size(); i++) {
    const Segment& s = route.segments[i];
    if (s.kind == Segment::Kind::tail) {
      if (i >= parts.size()) return false;
      // Everything from this segment on, slashes included.
      size_t offset = static_cast<size_t>(parts[i].data() - path.data());
      raw[s.text] = std::string(path.substr(offset));
      return true;
    }
    if (i >= parts.size()) return false;
    if (s.kind == Segment::Kind::literal && parts[i] != s.text) return false;
    if (s.kind == Segment::Kind::param) {
      if (parts[i].empty()) return false;
      raw[s.text] = std::string(parts[i]);
    }
  }
  return parts.size() == route.segments.size();
}

RouteMatch Router::match(std::string_view method, std::string_view path) const {
  auto parts = split_path(path);
  RouteMatch best;
  std::vector<Segment::Kind> best_key;
  std::map<std::string, std::string> best_raw;
  std::map<std::string, std::string> raw;
  // Pass 1: the most specific pattern that matches the path at all.
  for (size_t i = 0; i < routes_.size(); i++) {
    if (!match_path(routes_[i], parts, path, raw)) continue;
    std::vector<Segment::Kind> key;
    for (const auto& s : routes_[i].segments) key.push_back(s.kind);
    if (best.kind == RouteMatch::Kind::not_found || key > best_key) {
      best.kind = RouteMatch::Kind::method_not_allowed;
      best_key = std::move(key);
    }
  }
  if (best.kind == RouteMatch::Kind::not_found) return best;
  // Pass 2: among routes with that exact shape, the one for this method.
  for (size_t i = 0; i < routes_.size(); i++) {
    std::vector<Segment::Kind> key;
    for (const auto& s : routes_[i].segments) key.push_back(s.kind);
    if (key != best_key || !match_path(routes_[i], parts, path, raw)) continue;
    if (routes_[i].method != method) {
      best.allowed.push_back(routes_[i].method);
      continue;
    }
    best.kind = RouteMatch::Kind::found;
    best.index = i;
    best_raw = raw;
  }
  if (best.kind != RouteMatch::Kind::found) return best;
  best.allowed.clear();
  const auto& segs = routes_[best.index].segments;
  for (auto& [name, value] : best_raw) {
    bool tail = false;
    for (const auto& s : segs)
      if (s.text == name && s.kind == Segment::Kind::tail) tail = true;
    auto decoded = tail ? decode_file_tail(value) : percent_decode(value);
    if (!decoded) {
      best.kind = RouteMatch::Kind::bad_escape;
      best.params.clear();
      return best;
    }
    best.params[name] = std::move(*decoded);
  }
  return best;
}

std::string_view target_path(std::string_view target) {
  size_t scheme = target.find("://");
  if (scheme != std::string_view::npos && scheme < target.find('/')) {
    size_t slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  size_t end = target.find_first_of("?#");
  target = target.substr(0, end);
  return target.empty() ? std::string_view("/") : target;
}

std::string_view target_query(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  target.remove_prefix(q + 1);
  return target.substr(0, target.find('#'));
}

std::optional<std::string> decode_file_tail(std::string_view raw) {
  auto decoded = percent_decode(raw);
  if (!decoded) return std::nullopt;
  if (raw.find('/') != std::string_view::npos && !decoded->empty() && decoded->front() != '/')
    decoded->insert(decoded->begin(), '/');
  return decoded;
}

}  // namespace forkvm::api
