// mod_shmguard core: the history (history.hpp) drawn for the status page. Pure functions: an HTML
// fragment with inline SVG (no script, no external asset, no stylesheet needed: colours, fonts
// and sizes are SVG attributes), a <title> on every minute for a pointer, and a sentence that says
// the same for a screen reader or a text browser. Every text is escaped.
#pragma once

#include <cstdint>
#include <string>

#include "shmguard/history.hpp"

namespace shmguard {

// The section: <h2 id="history">, three charts (headroom, the binding limit's used against its
// limit, refusals and translated 500s per bucket) and the summary sentence. now_ms on the clock
// the history was recorded with.
std::string render_history_html(const History& h, std::int64_t now_ms);

// The same from a window (History::window), for tests and other writers.
std::string render_history_html(const History::Window& w, std::int64_t bucket_ms);

// The summary sentence alone (plain text, not escaped): "Last 1h: headroom now 832.0 MiB, ..."
// or "No data yet: ...".
std::string history_summary(const History::Window& w, std::int64_t bucket_ms);

}  // namespace shmguard
