// mod_shmguard core: building the status model (the sampler's part, the headline's rule) and the
// small words and times every writer shares.
#include "shmguard/status_model.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>

#include "fastwrite.hpp"
#include "shmguard/units.hpp"

namespace shmguard {

std::string_view program_name(std::string_view command) {
  std::size_t end = command.find(' ');
  std::string_view first = command.substr(0, end);
  std::size_t slash = first.rfind('/');
  if (slash != std::string_view::npos) first.remove_prefix(slash + 1);
  while (!first.empty() && first.back() == ':') first.remove_suffix(1);
  return first;
}

std::string human_duration(std::int64_t s) {
  char b[48];
  return std::string(b, static_cast<std::size_t>(fast::write_duration(b, s) - b));
}

std::string iso_time(std::int64_t ms) {
  if (ms <= 0) return "";
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const char* state_key(GuardState s) {
  switch (s) {
    case GuardState::Ok:
      return "ok";
    case GuardState::Warning:
      return "warning";
    case GuardState::Refusing:
      return "refusing";
    case GuardState::FailingOpen:
      return "failing_open";
  }
  return "";
}

const char* state_word(GuardState s) {
  switch (s) {
    case GuardState::Ok:
      return "OK";
    case GuardState::Warning:
      return "warning";
    case GuardState::Refusing:
      return "refusing new workers";
    case GuardState::FailingOpen:
      return "failing open";
  }
  return "";
}

const std::string& StatusModel::fcgid_vhost_label(std::int32_t id) const {
  static const std::string none;
  if (id == 0) return none;
  for (const auto& v : vhosts)
    if (v.fcgid_vhost_id == id) return v.label;
  return none;
}

std::uint64_t SamplerPart::findings_with(std::string_view severity) const {
  std::uint64_t n = 0;
  for (const auto& f : findings) n += f.severity == severity;
  return n;
}

std::uint64_t SamplerPart::failures_last_minute() const {
  std::uint64_t n = 0;
  for (const auto& c : snap.counters) n += c.last_minute;
  return n;
}

// ------------------------------------------------------------------------------ the sampler's part
namespace {

// At most kCmdlineMax bytes of a command, not cut inside a UTF-8 sequence.
std::string_view clip_command(std::string_view c) {
  if (c.size() <= kCmdlineMax) return c;
  std::size_t n = kCmdlineMax;
  while (n > 0 && (static_cast<unsigned char>(c[n]) & 0xC0) == 0x80) --n;  // c[n]: a continuation
  return c.substr(0, n);
}

WorkerTotals totals_of(const std::vector<WorkerRow>& workers, const SegmentSharing& sharing) {
  WorkerTotals t;
  t.workers = workers.size();
  t.segments = sharing.uses.size();
  for (const auto& u : sharing.uses) {
    t.segment_bytes += u.seg.size;
    if (!u.shared()) {
      ++t.private_segments;
      t.private_bytes += u.seg.size;
    }
  }
  for (const auto& w : workers) {
    t.rss += w.rss_shmem;
    if (w.backend == "php-fpm") {
      ++t.fpm;
      t.rss_fpm += w.rss_shmem;
    } else {
      ++t.fcgid;
      t.rss_fcgid += w.rss_shmem;
    }
    if (!w.lean.empty()) ++t.lean;
  }
  return t;
}

}  // namespace

SamplerPart make_sampler_part(const Snapshot& snap, std::vector<WorkerRow> workers,
                              const StatusOptions& opts, std::optional<StatusHistory> history) {
  SamplerPart p;
  p.snap = snap;
  p.history = std::move(history);  // before the budget: the rows get what is left
  // The sharing analysis feeds the findings, the totals and every row's "shared by N".
  const SegmentSharing sharing = segment_sharing(workers);
  p.findings = advise(snap, workers, sharing);
  p.workers.totals = totals_of(workers, sharing);
  // Everything but the rows first: what is left of max_bytes is the rows'. Should that alone be
  // past the bound, the history and findings go first (fit_sampler_part), not the rows.
  std::size_t budget = SIZE_MAX;
  if (opts.max_bytes) {
    fit_sampler_part(p, opts.max_bytes);
    const std::size_t fixed = encode_sampler_part(p).size();
    budget = opts.max_bytes > fixed ? opts.max_bytes - fixed : 0;
  }
  const std::size_t rows = std::min(workers.size(), opts.max_rows);
  WorkerTable& t = p.workers;
  t.rows.reserve(rows);
  std::size_t used = 0;
  for (std::size_t i = 0; i < rows; ++i) {
    WorkerRow& w = workers[i];
    const std::size_t at = t.mapped_by.size();
    for (std::size_t k = 0; k < w.segments.size(); ++k)
      t.mapped_by.push_back(static_cast<std::uint32_t>(sharing.users(i, k)));
    const std::string_view cmd =
        clip_command(opts.full_commands ? std::string_view(w.command) : program_name(w.command));
    if (cmd.size() != w.command.size()) w.command = std::string(cmd);
    const std::size_t size = opts.max_bytes ? encoded_row_size(w, t.mapped_by.data() + at) : 0;
    if (size > budget - used) {
      t.mapped_by.resize(at);
      break;
    }
    used += size;
    t.rows.push_back(std::move(w));
  }
  t.not_listed = workers.size() - t.rows.size();
  // The rows' count and the not-listed count grew with the rows (a few bytes of varint).
  while (opts.max_bytes && !t.rows.empty() && encode_sampler_part(p).size() > opts.max_bytes) {
    t.mapped_by.resize(t.mapped_by.size() - t.rows.back().segments.size());
    t.rows.pop_back();
    ++t.not_listed;
  }
  t.index();
  return p;
}

bool fit_sampler_part(SamplerPart& p, std::size_t max_bytes) {
  if (!max_bytes) return true;
  std::size_t size = encode_sampler_part(p).size();
  if (size <= max_bytes) return true;
  bool history = false;
  std::uint64_t findings = 0, pools = 0;
  // The findings kept, then the one that says what was left out.
  auto say = [&](std::vector<Finding> keep) {
    std::string what;
    auto add = [&](const std::string& s) { what += (what.empty() ? "" : ", ") + s; };
    if (history) add("the last hour's history");
    if (findings) add(std::to_string(findings) + (findings == 1 ? " finding" : " findings"));
    if (pools) add(std::to_string(pools) + (pools == 1 ? " PHP-FPM pool" : " PHP-FPM pools"));
    keep.push_back(Finding{"status-part-cut",
                           "warning",
                           "The sampler's part of the status page exceeded its bound of " +
                               std::to_string(max_bytes) + " bytes: left out " + what + ".",
                           {{"max_bytes", max_bytes},
                            {"findings_left_out", findings},
                            {"fpm_pools_left_out", pools},
                            {"history_left_out", history}}});
    p.findings = std::move(keep);
    size = encode_sampler_part(p).size();
  };
  if (p.history) {
    p.history.reset();
    history = true;
    say(std::move(p.findings));
    if (size <= max_bytes) return true;
  }
  if (!p.findings.empty()) {
    findings = p.findings.size() - (history ? 1 : 0);  // not the note just added
    say({});
    if (size <= max_bytes) return true;
  }
  if (!p.fpm_pools.empty()) {
    pools = p.fpm_pools.size();
    p.fpm_pools.clear();
    say({});
    if (size <= max_bytes) return true;
  }
  WorkerTable& t = p.workers;
  t.index();
  t.mapped_by.resize(t.first.back());  // one entry per row segment, whoever built the table
  while (size > max_bytes && !t.rows.empty()) {
    // Rows off the end until the estimate fits, then the encoding is measured again (the
    // counts' varints).
    std::size_t estimate = size;
    while (estimate > max_bytes && !t.rows.empty()) {
      const std::size_t i = t.rows.size() - 1;
      const std::size_t row = encoded_row_size(t.rows[i], t.mapped_by.data() + t.first[i]);
      estimate = estimate > row ? estimate - row : 0;
      t.mapped_by.resize(t.first[i]);
      t.first.pop_back();
      t.rows.pop_back();
      ++t.not_listed;
    }
    size = encode_sampler_part(p).size();
  }
  t.index();
  return size <= max_bytes;
}

// ------------------------------------------------------------------------------ the headline

Headline decide_headline(const SamplerHealth& h, const HotValues& hot,
                         const std::vector<VhostStatus>& vhosts, const SamplerPart* part) {
  Headline out;
  out.hot = hot;
  if (!h.fresh) {
    out.state = GuardState::FailingOpen;
    out.detail = h.sampled_ms > 0 ? "The last sample is " + std::to_string(h.age_ms) +
                                        " ms old (limit " + std::to_string(h.bound_ms) +
                                        " ms): the guard serves every request unguarded."
                                  : "The sampler has not published a sample yet: the guard "
                                    "serves every request unguarded.";
    return out;
  }
  std::vector<std::string> refusing, would;
  std::uint64_t reserve = 0;
  std::vector<std::string> fpm_low;
  for (const auto& v : vhosts) {
    if (!v.guard || hot.headroom < 0) continue;
    if (hot.warn && v.counts.fpm_low > 0) fpm_low.push_back(v.label);  // low now, FPM served
    // Only PHP-FPM requests so far: no reserve applies to them, nothing is refused.
    if (v.counts.guarded > 0 && v.counts.fpm == v.counts.guarded) continue;
    if (static_cast<std::uint64_t>(hot.headroom) >= v.reserve.bytes) continue;
    (v.dry_run ? would : refusing).push_back(v.label);
    reserve = std::max(reserve, v.reserve.bytes);
  }
  auto list = [](const std::vector<std::string>& l) {
    std::string s;
    for (std::size_t i = 0; i < l.size() && i < 5; ++i) s += (i ? ", " : "") + l[i];
    if (l.size() > 5) s += " and " + std::to_string(l.size() - 5) + " more";
    return s;
  };
  std::string hr = hot.headroom < 0 ? "" : human_bytes(static_cast<std::uint64_t>(hot.headroom));
  if (!refusing.empty()) {
    out.state = GuardState::Refusing;
    out.detail = "Headroom " + hr + " is below the reserve (up to " + human_bytes(reserve) +
                 ") of " + list(refusing) +
                 ": requests that would need a new worker get 503; requests an idle worker can "
                 "serve still pass.";
    if (h.class_table_full > 0)
      out.detail += " The class table is full: " + std::to_string(h.class_table_full) +
                    " requests of new mod_fcgid classes were not guarded (failed open; SG0206).";
    return out;
  }
  std::vector<std::string> why;
  if (!would.empty())
    why.push_back("headroom " + hr + " is below the reserve of " + list(would) +
                  " (ShmGuardAction log: counted and logged, not refused)");
  if (hot.warn) why.push_back("headroom is below ShmGuardWarnBelow");
  if (!fpm_low.empty())
    why.push_back("PHP-FPM requests of " + list(fpm_low) +
                  " were served with the headroom low (never refused: they map no new shared "
                  "memory; a new FPM child needs privvmpages for its private pages)");
  const std::uint64_t rose = part ? part->failures_last_minute() : 0;
  const std::uint64_t critical = part ? part->findings_with("critical") : 0;
  if (rose > 0)
    why.push_back("failure counters rose by " + std::to_string(rose) + " in the last minute");
  if (critical > 0)
    why.push_back(std::to_string(critical) + " critical finding" + (critical == 1 ? "" : "s"));
  if (h.class_table_full > 0)
    why.push_back("the class table is full: " + std::to_string(h.class_table_full) +
                  " requests of new mod_fcgid classes were not guarded (failed open; SG0206)");
  if (!why.empty()) {
    out.state = GuardState::Warning;
    for (std::size_t i = 0; i < why.size(); ++i) out.detail += (i ? "; " : "") + why[i];
    out.detail[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out.detail[0])));
    out.detail += ".";
    return out;
  }
  out.detail = hot.headroom < 0 ? "No finite shared-memory limit is known: nothing to guard."
                                : "Headroom covers every guarded vhost's reserve.";
  return out;
}

}  // namespace shmguard
