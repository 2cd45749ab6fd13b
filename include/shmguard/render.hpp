// mod_shmguard core: a snapshot alone as text (vzubc-like and more), JSON (stable keys) and
// Prometheus: shmguard-probe's output. The JSON and Prometheus ones are the snapshot parts of the
// status writers (status.hpp): write_json.cpp and write_prometheus.cpp hold both.
#pragma once

#include <string>
#include <string_view>

#include "shmguard/json.hpp"
#include "shmguard/model.hpp"

namespace shmguard {

std::string render_text(const Snapshot& s);
// JSON object with headroom_bytes, binding, limits, sources, unavailable, counters.
std::string render_json(const Snapshot& s);
// The same members written into an object the caller has opened (the status page's ?json).
void write_json_members(JsonWriter& w, const Snapshot& s);
// Prometheus text exposition format, metric names prefixed "shmguard_", HELP/TYPE lines.
std::string render_prometheus(const Snapshot& s);

// Prometheus label value escaping (backslash, quote, newline).
std::string prom_label(std::string_view s);

}  // namespace shmguard
