// mod_shmguard core: the refusal page (503, HTML or JSON).
#include "fastwrite.hpp"
#include "shmguard/refusal.hpp"
#include "text.hpp"

#include <algorithm>
#include <cstdlib>

#include "shmguard/json.hpp"
#include "shmguard/units.hpp"

namespace shmguard {
using text::trim;

std::string html_escape(std::string_view s) {
  std::string out;
  fast::Writer w(out);
  w.room(6 * s.size());
  w.esc(s);
  w.finish();
  return out;
}

namespace {
std::string retry_words(std::uint64_t s) {
  if (s == 0) return "in a moment";
  if (s < 120) return "in " + std::to_string(s) + " seconds";
  return "in " + std::to_string((s + 59) / 60) + " minutes";
}
}  // namespace

std::string render_refusal_html(const RefusalInfo& in) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<title>503 Service Temporarily Unavailable</title>\n";
  h += "<style>body{font-family:sans-serif;max-width:40em;margin:3em auto;padding:0 1em;"
       "color:#222}h1{font-size:1.4em}p.small{color:#666;font-size:.9em}</style>\n";
  h += "</head><body>\n<h1>This site is briefly over capacity</h1>\n";
  h += "<p>";
  if (!in.host.empty())
    h += "<strong>" + html_escape(in.host) + "</strong> ";
  else
    h += "The site ";
  if (!in.fpm_cause.empty())
    h += "cannot run its PHP right now: its <strong>PHP-FPM pool</strong> could not take the "
         "request. Nothing is wrong with your request.</p>\n";
  else
    h += "cannot start another worker right now because the server's <strong>shared memory"
         "</strong> is exhausted. Nothing is wrong with your request.</p>\n";
  h += "<p>Please try again " + html_escape(retry_words(in.retry_after)) + ".</p>\n";
  if (in.detail && !in.fpm_cause.empty()) {
    h += "<p class=\"small\">PHP-FPM: " + html_escape(in.fpm_cause) +
         "; the limit that bound: " + html_escape(in.fpm_bound) + ".</p>\n";
  } else if (in.detail) {
    h += "<p class=\"small\">Shared-memory headroom " + html_escape(human_bytes(in.headroom)) +
         ", a new worker needs " + html_escape(human_bytes(in.reserve));
    if (!in.binding.empty()) h += "; binding limit: " + html_escape(in.binding);
    h += ".</p>\n";
  }
  h += "<p class=\"small\">503 Service Temporarily Unavailable &mdash; mod_shmguard</p>\n";
  h += "</body></html>\n";
  return h;
}

std::string render_refusal_json(const RefusalInfo& in) {
  JsonWriter w;
  if (!in.fpm_cause.empty()) {
    w.begin_object()
        .field("status", 503)
        .field("error", "PHP-FPM pool unavailable")
        .field("message",
               "The site cannot run its PHP right now: its PHP-FPM pool could not take the "
               "request. Please retry after " +
                   std::to_string(in.retry_after) + " seconds.")
        .field("retry_after", in.retry_after)
        .field("translated", in.translated);
    if (in.detail) w.field("cause", in.fpm_cause).field("bound", in.fpm_bound);
    w.end_object();
    return w.take() + "\n";
  }
  w.begin_object()
      .field("status", 503)
      .field("error", "shared memory exhausted")
      .field("message",
             "The site is briefly over capacity: the server's shared memory is exhausted. "
             "Please retry after " +
                 std::to_string(in.retry_after) + " seconds.")
      .field("retry_after", in.retry_after)
      .field("translated", in.translated);
  if (in.detail) {
    w.field("headroom_bytes", in.headroom).field("reserve_bytes", in.reserve);
    w.field("binding", in.binding);
  }
  w.end_object();
  return w.take() + "\n";
}

namespace {
// q value of one Accept entry ("type;q=0.5" -> 0.5); 1 when absent.
double quality(std::string_view params) {
  std::size_t p = params.find("q=");
  if (p == std::string_view::npos) return 1.0;
  std::string v(params.substr(p + 2));
  char* end = nullptr;
  double q = std::strtod(v.c_str(), &end);
  return end == v.c_str() ? 1.0 : q;
}
}  // namespace

bool prefers_json(std::string_view accept) {
  double json_q = -1, html_q = -1;
  while (!accept.empty()) {
    std::size_t comma = accept.find(',');
    std::string_view item = trim(accept.substr(0, comma));
    accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
    std::size_t semi = item.find(';');
    std::string_view type = trim(item.substr(0, semi));
    double q = semi == std::string_view::npos ? 1.0 : quality(item.substr(semi + 1));
    if (type == "application/json" || type == "application/problem+json")
      json_q = std::max(json_q, q);
    else if (type == "text/html" || type == "application/xhtml+xml")
      html_q = std::max(html_q, q);
  }
  return json_q > 0 && json_q > html_q;
}

}  // namespace shmguard
