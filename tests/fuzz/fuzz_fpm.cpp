// libFuzzer target: a PHP-FPM pool's reply to the status request (core/fpm.cpp). The sampler
// reads it from whatever listens on the configured socket: the FastCGI records, the CGI
// response in them and FPM's JSON may be anything. Nothing may crash, hang or throw; a reply
// over kFpmReplyMax is refused; what parses stays within the bounds (names, field count).
// Also FPM's error-log lines (parse_fpm_log_line).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shmguard/fpm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto reply = shmguard::parse_fcgi_reply(in);
  if (reply) {
    if (size > shmguard::kFpmReplyMax || reply->out.size() > size) std::abort();
    if (auto cgi = shmguard::split_cgi_response(reply->out)) {
      if (cgi->status < 0 || cgi->status > 999) std::abort();
      (void)shmguard::parse_fpm_status_json(cgi->body);
    }
  }
  // The JSON parser on the raw input too (most inputs are no FastCGI).
  if (auto st = shmguard::parse_fpm_status_json(in)) {
    if (st->pool.empty() || st->pool.size() > shmguard::kFpmNameMax ||
        st->process_manager.size() > shmguard::kFpmNameMax)
      std::abort();
  }
  (void)shmguard::split_cgi_response(in);
  // A line of FPM's own error log (the sampler follows it): only the two events, in bounds.
  if (auto e = shmguard::parse_fpm_log_line(in)) {
    if (e->kind == shmguard::FpmLogEvent::Kind::ForkFailed && (e->err <= 0 || e->err > 4095))
      std::abort();
    if (e->pool.size() > shmguard::kFpmNameMax) std::abort();
  }
  return 0;
}
