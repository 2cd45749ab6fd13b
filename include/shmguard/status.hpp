// mod_shmguard core: the status writers, one per format, over the status model (status_model.hpp).
// The status handler (/shmguard-status: HTML, ?auto, ?json, ?metrics) and the mod_status section
// write through these; shmguard-probe writes its snapshot through render.hpp's functions, which
// are the same writers' snapshot parts (its JSON keys and metric names are the status page's).
#pragma once

#include <cstdint>
#include <string>

#include "shmguard/status_model.hpp"

namespace shmguard {

// The whole page; `refresh` > 0 adds <meta http-equiv="refresh">.
std::string write_status_html(const StatusModel& m, int refresh = 0);
std::string write_status_auto(const StatusModel& m);        // "Key: value" lines
std::string write_status_json(const StatusModel& m);        // one object, newline-terminated
std::string write_status_prometheus(const StatusModel& m);  // text exposition format 0.0.4

// The mod_status section (server-status): ?auto lines (AP_STATUS_SHORT) or an HTML paragraph.
std::string write_mod_status_auto(const StatusModel& m);
std::string write_mod_status_html(const StatusModel& m);

// The sums the mod_status section shows.
struct ModStatusSums {
  std::uint64_t guarded = 0, refused = 0, translated = 0, critical = 0, warning = 0;
};
ModStatusSums mod_status_sums(const StatusModel& m);

}  // namespace shmguard
