// mod_shmguard core: the one encoding of the sampler's part of the status model (the shared
// segment's blob). Integers are LEB128 varints (signed ones zigzagged), strings and lists are
// prefixed with their length, optionals with a presence byte. The decoder checks every length
// against what is left of the input before it allocates, and wants the input consumed exactly.
#include <cstring>
#include <limits>

#include "shmguard/status_model.hpp"

namespace shmguard {

namespace {

constexpr std::string_view kMagic = "SGP1";

class Enc {
 public:
  explicit Enc(std::string& out) : o_(out) {}
  void u(std::uint64_t v) {
    while (v >= 0x80) {
      o_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    o_.push_back(static_cast<char>(v));
  }
  void i(std::int64_t v) {
    u((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void b(bool v) { o_.push_back(v ? 1 : 0); }
  void s(std::string_view v) {
    u(v.size());
    o_.append(v.data(), v.size());
  }
  void ou(const std::optional<std::uint64_t>& v) {
    b(v.has_value());
    if (v) u(*v);
  }

 private:
  std::string& o_;
};

class Dec {
 public:
  explicit Dec(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return ok_ && in_.empty(); }
  std::uint64_t u() {
    std::uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return fail();
      auto c = static_cast<unsigned char>(in_.front());
      in_.remove_prefix(1);
      if (shift == 63 && c > 1) return fail();  // more than 64 bits
      if (shift > 0 && c == 0) return fail();   // overlong: one value, one encoding
      v |= static_cast<std::uint64_t>(c & 0x7F) << shift;
      if (!(c & 0x80)) return v;
    }
    return fail();
  }
  std::int64_t i() {
    std::uint64_t z = u();
    return static_cast<std::int64_t>((z >> 1) ^ (~(z & 1) + 1));
  }
  template <class T>
  T u_as() {  // an unsigned or int field: out of its range is a failure, not a wrap
    std::uint64_t v = u();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return fail(), T{};
    return static_cast<T>(v);
  }
  template <class T>
  T i_as() {
    std::int64_t v = i();
    if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        v > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
      return fail(), T{};
    return static_cast<T>(v);
  }
  bool b() {
    if (in_.empty()) return fail();
    char c = in_.front();
    in_.remove_prefix(1);
    if (c != 0 && c != 1) return fail();
    return c == 1;
  }
  std::string s() {
    std::uint64_t n = u();
    if (!ok_ || n > in_.size()) return fail(), std::string();
    std::string v(in_.data(), static_cast<std::size_t>(n));
    in_.remove_prefix(static_cast<std::size_t>(n));
    return v;
  }
  std::optional<std::uint64_t> ou() {
    if (!b()) return std::nullopt;
    return u();
  }
  // A list's length: every element takes at least one byte, so more than what is left is a lie.
  // (Lists are not reserved from it: they grow with the elements actually decoded.)
  std::size_t count() {
    std::uint64_t n = u();
    if (!ok_ || n > in_.size()) return fail(), 0;
    return static_cast<std::size_t>(n);
  }
  std::uint64_t fail() {
    ok_ = false;
    in_ = {};
    return 0;
  }

 private:
  std::string_view in_;
  bool ok_ = true;
};

// ------------------------------------------------------------------------------ the snapshot

void put(Enc& e, const Beancounters& bc) {
  e.s(bc.file);
  e.s(bc.version);
  e.b(bc.version_known);
  e.u(bc.blocks_in_file);
  e.s(bc.block.id);
  e.u(bc.block.rows.size());
  for (const auto& r : bc.block.rows) {
    e.s(r.resource);
    e.u(r.held);
    e.u(r.maxheld);
    e.u(r.barrier);
    e.u(r.limit);
    e.u(r.failcnt);
    e.u(static_cast<std::uint64_t>(r.unit));
  }
  e.b(bc.lenient);
  e.u(bc.format_notes.size());
  for (const auto& n : bc.format_notes) e.s(n);
}
void get(Dec& d, Beancounters& bc) {
  bc.file = d.s();
  bc.version = d.s();
  bc.version_known = d.b();
  bc.blocks_in_file = d.u_as<std::size_t>();
  bc.block.id = d.s();
  std::size_t n = d.count();
  for (std::size_t i = 0; i < n && d.ok(); ++i) {
    BeancounterRow r;
    r.resource = d.s();
    r.held = d.u();
    r.maxheld = d.u();
    r.barrier = d.u();
    r.limit = d.u();
    r.failcnt = d.u();
    std::uint64_t unit = d.u();
    if (unit > static_cast<std::uint64_t>(BcUnit::Count)) d.fail();
    r.unit = static_cast<BcUnit>(unit);
    bc.block.rows.push_back(std::move(r));
  }
  bc.lenient = d.b();
  n = d.count();
  for (std::size_t i = 0; i < n && d.ok(); ++i) bc.format_notes.push_back(d.s());
}

void put(Enc& e, const std::optional<PsiLine>& p) {
  e.b(p.has_value());
  if (!p) return;
  for (std::uint32_t v : {p->avg10, p->avg60, p->avg300}) e.u(v);
  e.u(p->total_us);
}
void get(Dec& d, std::optional<PsiLine>& p) {
  if (!d.b()) return;
  p.emplace();
  for (std::uint32_t* v : {&p->avg10, &p->avg60, &p->avg300}) {
    *v = d.u_as<std::uint32_t>();
    if (*v > 10099) d.fail();  // parse_psi's range
  }
  p->total_us = d.u();
}

void put(Enc& e, const CgroupMemory& c) {
  e.i(c.version);
  e.s(c.dir);
  for (const auto* v : {&c.limit, &c.usage, &c.shmem, &c.file, &c.anon, &c.events_max,
                        &c.events_oom, &c.events_oom_kill, &c.failcnt})
    e.ou(*v);
  e.u(c.levels.size());
  for (const auto& l : c.levels) {
    e.s(l.dir);
    e.ou(l.limit);
    e.ou(l.usage);
    for (const auto* v : {&l.inactive_file, &l.active_file, &l.dirty, &l.writeback}) e.ou(*v);
  }
  e.b(c.pressure.has_value());
  if (c.pressure) {
    put(e, c.pressure->some);
    put(e, c.pressure->full);
  }
}
void get(Dec& d, CgroupMemory& c) {
  c.version = d.i_as<int>();
  c.dir = d.s();
  for (auto* v : {&c.limit, &c.usage, &c.shmem, &c.file, &c.anon, &c.events_max, &c.events_oom,
                  &c.events_oom_kill, &c.failcnt})
    *v = d.ou();
  std::size_t n = d.count();
  for (std::size_t i = 0; i < n && d.ok(); ++i) {
    CgroupLevel l;
    l.dir = d.s();
    l.limit = d.ou();
    l.usage = d.ou();
    for (auto* v : {&l.inactive_file, &l.active_file, &l.dirty, &l.writeback}) *v = d.ou();
    c.levels.push_back(std::move(l));
  }
  if (d.b()) {
    c.pressure.emplace();
    get(d, c.pressure->some);
    get(d, c.pressure->full);
  }
}

void put(Enc& e, const Overcommit& m) {
  e.i(m.mode);
  for (const auto* v : {&m.commit_limit, &m.committed_as, &m.shmem, &m.mem_available, &m.mem_total})
    e.ou(*v);
}
void get(Dec& d, Overcommit& m) {
  m.mode = d.i_as<int>();
  for (auto* v : {&m.commit_limit, &m.committed_as, &m.shmem, &m.mem_available, &m.mem_total})
    *v = d.ou();
}

void put(Enc& e, const Sysv& v) {
  e.ou(v.shmmax);
  e.ou(v.shmall);
  e.ou(v.shmmni);
  e.b(v.segments.has_value());
  if (!v.segments) return;
  e.u(v.segments->size());
  for (const auto& s : *v.segments) {
    e.i(s.key);
    e.u(s.shmid);
    e.u(s.size);
    e.u(s.cpid);
    e.u(s.nattch);
    e.u(s.uid);
    e.ou(s.rss);
    e.ou(s.swap);
  }
}
void get(Dec& d, Sysv& v) {
  v.shmmax = d.ou();
  v.shmall = d.ou();
  v.shmmni = d.ou();
  if (!d.b()) return;
  v.segments.emplace();
  std::size_t n = d.count();
  for (std::size_t i = 0; i < n && d.ok(); ++i) {
    SysvSegment s;
    s.key = d.i();
    s.shmid = d.u();
    s.size = d.u();
    s.cpid = d.u();
    s.nattch = d.u();
    s.uid = d.u();
    s.rss = d.ou();
    s.swap = d.ou();
    v.segments->push_back(s);
  }
}

void put(Enc& e, const DevShm& v) {
  e.s(v.path);
  e.u(v.total);
  e.u(v.free);
  e.u(v.avail);
}
void get(Dec& d, DevShm& v) {
  v.path = d.s();
  v.total = d.u();
  v.free = d.u();
  v.avail = d.u();
}

template <class T>
void put_opt(Enc& e, const std::optional<T>& v) {
  e.b(v.has_value());
  if (v) put(e, *v);
}
template <class T>
void get_opt(Dec& d, std::optional<T>& v) {
  if (!d.b()) return;
  v.emplace();
  get(d, *v);
}

void put(Enc& e, const Snapshot& s) {
  e.i(s.taken_at_ms);
  e.u(s.page_size);
  put_opt(e, s.beancounters);
  put_opt(e, s.cgroup);
  put_opt(e, s.overcommit);
  put_opt(e, s.sysv);
  put_opt(e, s.devshm);
  e.u(s.unavailable.size());
  for (const auto& u : s.unavailable) {
    e.s(u.source);
    e.s(u.reason);
  }
  e.u(s.limits.size());
  for (const auto& l : s.limits) {
    e.s(l.name);
    e.u(l.limit_bytes);
    e.u(l.used_bytes);
    e.ou(l.reclaimable_bytes);
  }
  e.ou(s.headroom_bytes);
  e.s(s.binding);
  e.u(s.counters.size());
  for (const auto& c : s.counters) {
    e.s(c.name);
    e.u(c.value);
    e.u(c.since_start);
    e.u(c.last_minute);
  }
}
void get(Dec& d, Snapshot& s) {
  s.taken_at_ms = d.i();
  s.page_size = d.u();
  get_opt(d, s.beancounters);
  get_opt(d, s.cgroup);
  get_opt(d, s.overcommit);
  get_opt(d, s.sysv);
  get_opt(d, s.devshm);
  std::size_t n = d.count();
  for (std::size_t i = 0; i < n && d.ok(); ++i) {
    Unavail u;
    u.source = d.s();
    u.reason = d.s();
    s.unavailable.push_back(std::move(u));
  }
  n = d.count();
  for (std::size_t i = 0; i < n && d.ok(); ++i) {
    Limit l;
    l.name = d.s();
    l.limit_bytes = d.u();
    l.used_bytes = d.u();
    l.reclaimable_bytes = d.ou();
    s.limits.push_back(std::move(l));
  }
  s.headroom_bytes = d.ou();
  s.binding = d.s();
  n = d.count();
  for (std::size_t i = 0; i < n && d.ok(); ++i) {
    Counter c;
    c.name = d.s();
    c.value = d.u();
    c.since_start = d.u();
    c.last_minute = d.u();
    s.counters.push_back(std::move(c));
  }
}

// ------------------------------------------------------------------------------ the workers

void put_row(Enc& e, const WorkerRow& w, const std::uint32_t* mapped_by) {
  e.i(w.pid);
  e.s(w.backend);
  e.s(w.kind);
  e.s(w.state);
  e.i(w.vhost_id);
  e.s(w.klass);
  e.s(w.command);
  e.i(w.uptime_s);
  e.u(w.rss_shmem);
  e.u(w.rss_anon);
  e.u(w.segments.size());
  for (std::size_t k = 0; k < w.segments.size(); ++k) {
    const Segment& s = w.segments[k];
    e.u(s.dev_major);
    e.u(s.dev_minor);
    e.u(s.inode);
    e.u(s.size);
    e.s(s.kind);
    e.u(mapped_by[k]);
  }
  e.s(w.error);
  e.s(w.lean);
}
void get_row(Dec& d, WorkerRow& w, std::vector<std::uint32_t>& mapped_by) {
  w.pid = d.i_as<int>();
  w.backend = d.s();
  w.kind = d.s();
  w.state = d.s();
  w.vhost_id = d.i_as<int>();
  w.klass = d.s();
  w.command = d.s();
  w.uptime_s = d.i();
  w.rss_shmem = d.u();
  w.rss_anon = d.u();
  std::size_t n = d.count();
  for (std::size_t k = 0; k < n && d.ok(); ++k) {
    Segment s;
    s.dev_major = d.u_as<std::uint32_t>();
    s.dev_minor = d.u_as<std::uint32_t>();
    s.inode = d.u();
    s.size = d.u();
    s.kind = d.s();
    mapped_by.push_back(d.u_as<std::uint32_t>());
    w.segments.push_back(std::move(s));
  }
  w.error = d.s();
  w.lean = d.s();
}

std::uint64_t* totals_fields(WorkerTotals& t, std::size_t i) {
  std::uint64_t* f[] = {&t.workers,       &t.segments, &t.segment_bytes, &t.private_segments,
                        &t.private_bytes, &t.rss,      &t.rss_fcgid,     &t.rss_fpm,
                        &t.fcgid,         &t.fpm,      &t.lean};
  return i < sizeof f / sizeof f[0] ? f[i] : nullptr;
}

}  // namespace

void WorkerTable::index() {
  first.assign(rows.size() + 1, 0);
  std::uint32_t at = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    first[i] = at;
    at += static_cast<std::uint32_t>(rows[i].segments.size());
  }
  first[rows.size()] = at;
}

// The history: its bucket length, then kBuckets buckets (binding names at most 31 bytes).
void put(Enc& e, const StatusHistory& h) {
  e.i(h.bucket_ms);
  for (const HistoryBucket& b : h.window) {
    e.i(b.index);
    e.u(b.samples);
    e.u(b.bounded);
    for (std::uint64_t v : {b.headroom_min, b.used_at_min, b.limit_at_min, b.headroom_last,
                            b.used_last, b.limit_last, b.refused, b.translated})
      e.u(v);
    e.s(b.binding_min_name());
    e.s(b.binding_last_name());
  }
}

void get_name(Dec& d, std::array<char, 32>& to) {
  std::string s = d.s();
  if (s.size() >= to.size() || s.find('\0') != std::string::npos) {
    d.fail();
    return;
  }
  std::memcpy(to.data(), s.data(), s.size());
}

void get(Dec& d, StatusHistory& h) {
  // A bucket of at most a day: the chart multiplies it by the window's length.
  h.bucket_ms = d.i();
  if (h.bucket_ms < 1 || h.bucket_ms > 86400000) d.fail();
  std::int64_t prev = 0;
  bool first = true;
  for (HistoryBucket& b : h.window) {
    b.index = d.i();
    b.samples = d.u_as<std::uint32_t>();
    b.bounded = d.u_as<std::uint32_t>();
    for (std::uint64_t* v : {&b.headroom_min, &b.used_at_min, &b.limit_at_min, &b.headroom_last,
                             &b.used_last, &b.limit_last, &b.refused, &b.translated})
      *v = d.u();
    get_name(d, b.binding_at_min);
    get_name(d, b.binding_last);
    // What History::window() makes: consecutive buckets, bounded samples among all.
    if (b.bounded > b.samples ||
        (!first && (prev == std::numeric_limits<std::int64_t>::max() || b.index != prev + 1)))
      d.fail();
    if (!d.ok()) return;
    prev = b.index;
    first = false;
  }
}

std::string encode_sampler_part(const SamplerPart& p) {
  std::string out(kMagic);
  Enc e(out);
  put(e, p.snap);
  const WorkerTable& w = p.workers;
  e.u(w.rows.size());
  std::size_t at = 0;
  for (const auto& r : w.rows) {
    put_row(e, r, w.mapped_by.data() + at);
    at += r.segments.size();
  }
  e.u(w.not_listed);
  WorkerTotals t = w.totals;
  for (std::size_t i = 0; std::uint64_t* f = totals_fields(t, i); ++i) e.u(*f);
  e.u(p.findings.size());
  for (const auto& f : p.findings) {
    e.s(f.id);
    e.s(f.severity);
    e.s(f.text);
    e.u(f.numbers.size());
    for (const auto& [k, v] : f.numbers) {
      e.s(k);
      e.u(v);
    }
  }
  e.b(p.history.has_value());
  if (p.history) put(e, *p.history);
  e.u(p.fpm_pools.size());
  for (const FpmPool& f : p.fpm_pools) {
    for (const std::string* s : {&f.name, &f.socket, &f.status_path, &f.error, &f.status.pool,
                                 &f.status.process_manager, &f.log, &f.last_failure})
      e.s(*s);
    e.u(f.fork_failures);
    e.u(f.translated);
    e.b(f.configured);
    e.b(f.ok);
    e.i(f.read_ms);
    const FpmPoolStatus& st = f.status;
    for (std::uint64_t v : {st.idle, st.active, st.total, st.max_active, st.listen_queue,
                            st.max_listen_queue, st.listen_queue_len, st.max_children_reached,
                            st.slow_requests, st.accepted, st.start_since})
      e.u(v);
  }
  return out;
}

std::optional<SamplerPart> decode_sampler_part(std::string_view in) {
  if (in.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  Dec d(in.substr(kMagic.size()));
  SamplerPart p;
  get(d, p.snap);
  WorkerTable& w = p.workers;
  std::size_t n = d.count();
  for (std::size_t i = 0; i < n && d.ok(); ++i) {
    w.rows.emplace_back();
    get_row(d, w.rows.back(), w.mapped_by);
  }
  w.not_listed = d.u();
  for (std::size_t i = 0; std::uint64_t* f = totals_fields(w.totals, i); ++i) *f = d.u();
  n = d.count();
  for (std::size_t i = 0; i < n && d.ok(); ++i) {
    Finding f;
    f.id = d.s();
    f.severity = d.s();
    f.text = d.s();
    std::size_t m = d.count();
    for (std::size_t k = 0; k < m && d.ok(); ++k) {
      std::string key = d.s();
      f.numbers.emplace_back(std::move(key), d.u());
    }
    p.findings.push_back(std::move(f));
  }
  if (d.b()) {
    p.history.emplace();
    get(d, *p.history);
  }
  n = d.count();
  if (n > kMaxFpmPools) return std::nullopt;
  for (std::size_t i = 0; i < n && d.ok(); ++i) {
    FpmPool f;
    for (std::string* s : {&f.name, &f.socket, &f.status_path, &f.error, &f.status.pool,
                           &f.status.process_manager, &f.log, &f.last_failure})
      *s = d.s();
    f.fork_failures = d.u();
    f.translated = d.u();
    f.configured = d.b();
    f.ok = d.b();
    f.read_ms = d.i();
    FpmPoolStatus& st = f.status;
    for (std::uint64_t* v : {&st.idle, &st.active, &st.total, &st.max_active, &st.listen_queue,
                             &st.max_listen_queue, &st.listen_queue_len, &st.max_children_reached,
                             &st.slow_requests, &st.accepted, &st.start_since})
      *v = d.u();
    if (f.name.size() > kFpmNameMax || f.status.pool.size() > kFpmNameMax ||
        f.status.process_manager.size() > kFpmNameMax)
      d.fail();
    p.fpm_pools.push_back(std::move(f));
  }
  if (!d.done()) return std::nullopt;
  // What make_sampler_part() makes, no more: the rows' bound, private within all.
  const WorkerTotals& t = w.totals;
  if (w.rows.size() > kMaxWorkerRows || t.private_segments > t.segments ||
      t.private_bytes > t.segment_bytes)
    return std::nullopt;
  w.index();
  return p;
}

std::size_t encoded_row_size(const WorkerRow& w, const std::uint32_t* mapped_by) {
  std::string s;
  Enc e(s);
  put_row(e, w, mapped_by);
  return s.size();
}

}  // namespace shmguard
