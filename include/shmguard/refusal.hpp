// mod_shmguard core: what a refused visitor is told (the 503 page, HTML or JSON).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shmguard {

// What the refusal page may say. Numbers are shown only with `detail` (ShmGuardDetail On).
struct RefusalInfo {
  std::uint64_t retry_after = 30;
  bool detail = false;
  std::uint64_t headroom = 0, reserve = 0;
  std::string binding;      // "beancounter:shmpages"
  std::string host;         // the site's name
  bool translated = false;  // a backend died of it (500 turned into 503)
  // Not shared memory: PHP-FPM's pool could not serve (mod_proxy_fcgi's error turned into this
  // 503, SG0230): what the module saw, and the limit that bound (shown with `detail` only).
  std::string fpm_cause, fpm_bound;
};

// HTML page (all text escaped) and JSON body for a 503 caused by shared-memory exhaustion,
// or by a PHP-FPM pool that could not serve (fpm_cause).
std::string render_refusal_html(const RefusalInfo& info);
std::string render_refusal_json(const RefusalInfo& info);
// Does this Accept header prefer application/json over text/html?
bool prefers_json(std::string_view accept);

// HTML escaping of text and attribute values.
std::string html_escape(std::string_view s);

}  // namespace shmguard
