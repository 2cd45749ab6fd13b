// mod_shmguard core: the snapshot as text (vzubc-like and more), JSON (stable keys) and Prometheus.
#pragma once

#include <string>
#include <string_view>

#include "shmguard/json.hpp"
#include "shmguard/model.hpp"

namespace shmguard {

std::string render_text(const Snapshot& s);
// JSON object with headroom_bytes, binding, limits, sources, unavailable, counters.
std::string render_json(const Snapshot& s);
// The same members written into an object the caller has opened (the module adds its own).
void write_json_members(JsonWriter& w, const Snapshot& s);
// Prometheus text exposition format, metric names prefixed "shmguard_", HELP/TYPE lines.
std::string render_prometheus(const Snapshot& s);

// Prometheus label value escaping (backslash, quote, newline).
std::string prom_label(std::string_view s);

}  // namespace shmguard
