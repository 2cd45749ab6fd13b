// mod_shmguard core: the guard's decision, and what a refused visitor is told.
// Pure functions: the request path calls decide() with values it read from shared memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shmguard {

enum class Verdict : std::uint8_t {
  Pass,         // enough headroom, or an idle worker can serve
  Refuse,       // headroom below the reserve and a new worker would be needed
  WouldRefuse,  // the same, but ShmGuardAction log: count and log, serve anyway
  FailOpen,     // no fresh sample or the worker table cannot be read: serve
};
const char* to_string(Verdict v);

struct GuardInput {
  bool fresh = false;              // a sample younger than the staleness bound exists
  bool bounded = false;            // a finite limit exists (else headroom is unbounded)
  std::uint64_t headroom = 0;      // bytes, when bounded
  std::uint64_t reserve = 0;       // bytes a new worker needs
  bool spawns_workers = true;      // mod_fcgid spawns per request class; PHP-FPM does not
  std::int32_t idle_workers = -1;  // idle workers of the request's class; < 0 unknown
  bool dry_run = false;            // ShmGuardAction log
};

// Refuse only when all of: the data is fresh, a finite limit exists, headroom < reserve, and
// (for spawning backends) no idle worker of the class is known to exist.
inline Verdict decide(const GuardInput& in) {
  if (!in.fresh) return Verdict::FailOpen;
  if (!in.bounded || in.headroom >= in.reserve) return Verdict::Pass;
  if (in.spawns_workers) {
    if (in.idle_workers < 0) return Verdict::FailOpen;
    if (in.idle_workers > 0) return Verdict::Pass;
  }
  return in.dry_run ? Verdict::WouldRefuse : Verdict::Refuse;
}

// What the refusal page may say. Numbers are shown only with `detail` (ShmGuardDetail On).
struct RefusalInfo {
  std::uint64_t retry_after = 30;
  bool detail = false;
  std::uint64_t headroom = 0, reserve = 0;
  std::string binding;      // "beancounter:shmpages"
  std::string host;         // the site's name
  bool translated = false;  // a backend died of it (500 turned into 503)
};

// HTML page (all text escaped) and JSON body for a 503 caused by shared-memory exhaustion.
std::string render_refusal_html(const RefusalInfo& info);
std::string render_refusal_json(const RefusalInfo& info);
// Does this Accept header prefer application/json over text/html?
bool prefers_json(std::string_view accept);

// HTML escaping of text and attribute values.
std::string html_escape(std::string_view s);

}  // namespace shmguard
