// mod_shmguard glue: /shmguard-status (SetHandler shmguard-status) and the mod_status section.
// Reads only what the sampler published plus the module's own counters.
#include <string>

#include "glue.hpp"
#include "shmguard/guard.hpp"
#include "shmguard/json.hpp"
#include "shmguard/status.hpp"
#include "shmguard/units.hpp"

#include "apr_strings.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "mod_status.h"

APLOG_USE_MODULE(shmguard);

namespace shmguard::glue {

namespace {

struct VhostView {
  const char* name;
  int port;
  const ServerConf* conf;
  const shm::VhostCounters* counters;
};

template <class F>
void each_vhost(F&& f) {
  for (server_rec* s = gen.main_server; s; s = s->next) {
    const ServerConf* c = server_conf(s);
    if (c->vhost_index < 0) continue;
    f(VhostView{s->server_hostname ? s->server_hostname : "", static_cast<int>(s->port), c,
                &gen.seg->vhosts[c->vhost_index]});
  }
}

std::string state_words(std::int64_t headroom, bool fresh) {
  if (!fresh) return "no fresh sample: failing open";
  if (headroom < 0) return "OK (no finite limit)";
  if (gen.seg->warn_state.load()) return "warning: headroom below ShmGuardWarnBelow";
  return "OK";
}

}  // namespace

int status_handler(request_rec* r) {
  if (r->method_number != M_GET) {
    r->allowed = (AP_METHOD_BIT << M_GET);
    return HTTP_METHOD_NOT_ALLOWED;
  }
  if (!gen.seg) return HTTP_SERVICE_UNAVAILABLE;
  std::string fmt = r->args ? r->args : "";
  std::string blob;
  std::optional<StatusSections> sec;
  if (shm::read_blob(gen.seg, blob)) sec = decode_sections(blob);
  std::int64_t sampled = gen.seg->sample_wall_ms.load();
  std::int64_t age = apr_time_as_msec(apr_time_now()) - sampled;
  std::int64_t interval = gen.seg->interval_ms.load();
  bool fresh = sampled > 0 && age <= (3 * interval < 1500 ? 1500 : 3 * interval);
  std::int64_t headroom = gen.seg->headroom.load();
  std::string out;

  if (fmt.rfind("json", 0) == 0) {
    JsonWriter w;
    w.begin_object();
    w.key("sampler")
        .begin_object()
        .field("pid", static_cast<int>(gen.seg->sampler_pid.load()))
        .field("interval_ms", interval)
        .field("samples", gen.seg->samples.load())
        .field("starts", gen.seg->sampler_starts.load())
        .field("last_sample_age_ms", sampled ? age : -1)
        .field("fresh", fresh)
        .field("failing_open", !fresh)
        .end_object();
    w.key("vhosts").begin_array();
    each_vhost([&](const VhostView& v) {
      w.begin_object()
          .field("name", v.name)
          .field("port", v.port)
          .field("guard", conf_enabled(v.conf))
          .field("action", conf_dry_run(v.conf) ? "log" : "refuse");
      if (v.conf->reserve_auto == 0)
        w.field("reserve_bytes", static_cast<std::uint64_t>(v.conf->reserve));
      else
        w.field("reserve", "auto");
      w.field("guarded", v.counters->guarded.load())
          .field("passed", v.counters->passed.load())
          .field("refused", v.counters->refused.load())
          .field("would_refuse", v.counters->would_refuse.load())
          .field("failed_open", v.counters->failed_open.load())
          .field("translated", v.counters->translated.load())
          .field("last_refusal_ms", v.counters->last_refusal_ms.load())
          .end_object();
    });
    w.end_array();
    w.end_object();
    out = w.take();
    if (sec && !sec->json_members.empty()) {
      out.pop_back();  // '}'
      out += "," + sec->json_members + "}";
    }
    out += "\n";
    ap_set_content_type(r, "application/json");
  } else if (fmt.rfind("auto", 0) == 0) {
    out = "ShmGuardState: " + state_words(headroom, fresh) + "\n";
    out += "ShmGuardSamplerPid: " + std::to_string(gen.seg->sampler_pid.load()) + "\n";
    out += "ShmGuardSampleAgeMs: " + std::to_string(sampled ? age : -1) + "\n";
    if (sec) out += sec->auto_text;
    each_vhost([&](const VhostView& v) {
      std::string n = std::string(v.name) + ":" + std::to_string(v.port);
      out += "ShmGuardRefused[" + n + "]: " + std::to_string(v.counters->refused.load()) + "\n";
    });
    ap_set_content_type(r, "text/plain; charset=utf-8");
  } else if (fmt.rfind("metrics", 0) == 0) {
    if (sec) out = sec->metrics;
    ap_set_content_type(r, "text/plain; version=0.0.4");
  } else {
    out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mod_shmguard "
          "status</title></head><body>\n<h1>mod_shmguard</h1>\n<p>" +
          html_escape(state_words(headroom, fresh)) + "; headroom " +
          (headroom < 0 ? std::string("unbounded")
                        : html_escape(human_bytes(static_cast<std::uint64_t>(headroom)))) +
          "</p>\n";
    if (sec) out += sec->html;
    out += "</body></html>\n";
    ap_set_content_type(r, "text/html; charset=utf-8");
  }
  apr_table_setn(r->headers_out, "Cache-Control", "no-store");
  ap_set_content_length(r, static_cast<apr_off_t>(out.size()));
  if (!r->header_only) ap_rwrite(out.data(), static_cast<int>(out.size()), r);
  return OK;
}

int status_hook(request_rec* r, int flags) {
  if (!gen.seg) return OK;
  std::int64_t headroom = gen.seg->headroom.load();
  std::string h = headroom < 0 ? std::string("unbounded")
                               : std::to_string(static_cast<std::uint64_t>(headroom));
  if (flags & AP_STATUS_SHORT) {
    ap_rprintf(r, "ShmGuardHeadroomBytes: %s\n", h.c_str());
    ap_rprintf(r, "ShmGuardBinding: %s\n", shm::binding_name(gen.seg->binding.load()));
  } else {
    ap_rprintf(r, "<hr>\n<h2>mod_shmguard</h2>\n<p>Shared-memory headroom: %s (%s)</p>\n",
               html_escape(headroom < 0 ? h : human_bytes(static_cast<std::uint64_t>(headroom)))
                   .c_str(),
               shm::binding_name(gen.seg->binding.load()));
  }
  return OK;
}

}  // namespace shmguard::glue
