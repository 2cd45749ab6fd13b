// mod_shmguard core: the JSON writer. The snapshot's members (shmguard-probe --format json writes
// them alone) and the status page's ?json, which writes the same members inside its own object.
#include "shmguard/json.hpp"
#include "shmguard/render.hpp"
#include "shmguard/status.hpp"
#include "writers.hpp"

namespace shmguard {
using text::sat_mul;
using writers::bc_bytes;
using writers::overcommit_mode_name;

void write_json_members(JsonWriter& w, const Snapshot& s) {
  w.field("headroom_bytes", s.headroom_bytes);
  if (s.binding.empty())
    w.key("binding").null();
  else
    w.field("binding", s.binding);
  w.field("taken_at_ms", s.taken_at_ms);
  w.field("page_size", s.page_size);

  w.key("limits").begin_array();
  for (const auto& l : s.limits) {
    w.begin_object()
        .field("name", l.name)
        .field("limit_bytes", l.limit_bytes)
        .field("used_bytes", l.used_bytes)
        .field("reclaimable_bytes", l.reclaimable_bytes)
        .field("headroom_bytes", l.headroom_bytes())
        .field("binding", l.name == s.binding)
        .end_object();
  }
  w.end_array();

  if (s.beancounters && s.beancounters->lenient) {
    // Only with --lenient: whether the file is the kernel's exact format, and how it differs.
    const auto& bc = *s.beancounters;
    w.key("beancounter_format").begin_object();
    w.field("read", "lenient");
    w.field("exact", bc.format_notes.empty());
    w.key("notes").begin_array();
    for (const auto& n : bc.format_notes) w.value(n);
    w.end_array();
    w.end_object();
  }

  w.key("sources").begin_array();
  if (s.beancounters) {
    const auto& bc = *s.beancounters;
    for (const auto& r : bc.block.rows) {
      w.begin_object()
          .field("source", "beancounter")
          .field("container", bc.block.id)
          .field("file", bc.file)
          .field("version", bc.version)
          .field("version_known", bc.version_known)
          .field("resource", r.resource)
          .field("held", r.held)
          .field("maxheld", r.maxheld)
          .field("barrier", r.barrier)
          .field("limit", r.limit)
          .field("failcnt", r.failcnt)
          .field("unit", to_string(r.unit))
          .field("barrier_unlimited", r.barrier_unlimited())
          .field("limit_unlimited", r.limit_unlimited())
          .field("held_bytes", bc_bytes(r, r.held, s.page_size))
          .field("maxheld_bytes", bc_bytes(r, r.maxheld, s.page_size));
      w.key("barrier_bytes");
      if (r.barrier_unlimited())
        w.null();
      else
        w.value(bc_bytes(r, r.barrier, s.page_size));
      w.key("limit_bytes");
      if (r.limit_unlimited())
        w.null();
      else
        w.value(bc_bytes(r, r.limit, s.page_size));
      w.end_object();
    }
  }
  if (s.cgroup) {
    const auto& c = *s.cgroup;
    w.begin_object()
        .field("source", "cgroup")
        .field("version", c.version)
        .field("dir", c.dir)
        .field("limit_bytes", c.limit)
        .field("usage_bytes", c.usage)
        .field("reclaimable_bytes",
               c.levels.empty() ? std::nullopt : cgroup_reclaimable(c.levels.front()))
        .field("shmem_bytes", c.shmem)
        .field("file_bytes", c.file)
        .field("anon_bytes", c.anon)
        .field("failcnt", c.failcnt);
    w.key("events")
        .begin_object()
        .field("max", c.events_max)
        .field("oom", c.events_oom)
        .field("oom_kill", c.events_oom_kill)
        .end_object();
    // memory.pressure (PSI, v2): percentages of the last 10/60/300 s, total stall in us.
    w.key("pressure");
    if (!c.pressure) {
      w.null();
    } else {
      w.begin_object();
      for (const auto& [kind, line] :
           {std::pair<const char*, const std::optional<PsiLine>*>{"some", &c.pressure->some},
            {"full", &c.pressure->full}}) {
        w.key(kind);
        if (!*line) {
          w.null();
          continue;
        }
        w.begin_object()
            .field("avg10", (*line)->avg10 / 100.0)
            .field("avg60", (*line)->avg60 / 100.0)
            .field("avg300", (*line)->avg300 / 100.0)
            .field("total_us", (*line)->total_us)
            .end_object();
      }
      w.end_object();
    }
    w.key("levels").begin_array();
    for (const auto& l : c.levels)
      w.begin_object()
          .field("dir", l.dir)
          .field("limit_bytes", l.limit)
          .field("usage_bytes", l.usage)
          .field("inactive_file_bytes", l.inactive_file)
          .field("active_file_bytes", l.active_file)
          .field("dirty_bytes", l.dirty)
          .field("writeback_bytes", l.writeback)
          .field("reclaimable_bytes", cgroup_reclaimable(l))
          .end_object();
    w.end_array().end_object();
  }
  if (s.overcommit) {
    const auto& m = *s.overcommit;
    w.begin_object()
        .field("source", "overcommit")
        .field("mode", m.mode)
        .field("mode_name", overcommit_mode_name(m.mode))
        .field("commit_limit_bytes", m.commit_limit)
        .field("committed_as_bytes", m.committed_as)
        .field("shmem_bytes", m.shmem)
        .field("mem_available_bytes", m.mem_available)
        .field("mem_total_bytes", m.mem_total)
        .end_object();
  }
  if (s.sysv) {
    const auto& v = *s.sysv;
    w.begin_object()
        .field("source", "sysv")
        .field("shmmax_bytes", v.shmmax)
        .field("shmall_pages", v.shmall);
    w.key("shmall_bytes");
    if (v.shmall)
      w.value(sat_mul(*v.shmall, s.page_size));
    else
      w.null();
    w.field("shmmni", v.shmmni);
    w.key("segments");
    if (v.segments)
      w.value(static_cast<std::uint64_t>(v.segments->size()));
    else
      w.null();
    w.field("segments_bytes", v.segments_bytes()).end_object();
  }
  if (s.devshm) {
    w.begin_object()
        .field("source", "devshm")
        .field("path", s.devshm->path)
        .field("total_bytes", s.devshm->total)
        .field("free_bytes", s.devshm->free)
        .field("avail_bytes", s.devshm->avail)
        .end_object();
  }
  w.end_array();

  w.key("unavailable").begin_array();
  for (const auto& u : s.unavailable)
    w.begin_object().field("source", u.source).field("reason", u.reason).end_object();
  w.end_array();

  w.key("counters").begin_array();
  for (const auto& c : s.counters)
    w.begin_object()
        .field("name", c.name)
        .field("value", c.value)
        .field("since_start", c.since_start)
        .field("last_minute", c.last_minute)
        .end_object();
  w.end_array();
}

std::string render_json(const Snapshot& s) {
  JsonWriter w;
  w.begin_object();
  write_json_members(w, s);
  w.end_object();
  return w.take() + "\n";
}

namespace {

// The worker objects, appended straight into the output (with 1000 workers they are most of the
// work): byte for byte what JsonWriter writes for the same fields.
void worker_objects(std::string& o, const StatusModel& m, const WorkerTable& t) {
  fast::Writer out(o);
  out.room(1 + t.rows.size() * 520);  // a typical object; room() below guarantees each one
  out.ch('[');
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const WorkerRow& wr = t.rows[i];
    const std::string& vhost = m.fcgid_vhost_label(wr.vhost_id);
    // Bound: the keys, 6 bytes per byte of string values plus quotes, 20 per number.
    std::size_t segs_text = 0;
    for (const auto& s : wr.segments) segs_text += s.kind.size();
    out.room(512 +
             6 * (wr.backend.size() + wr.kind.size() + wr.state.size() + wr.klass.size() +
                  wr.command.size() + wr.error.size() + wr.lean.size() + segs_text + vhost.size()) +
             wr.segments.size() * 224);
    if (i) out.ch(',');
    out.lit("{\"pid\":");
    out.i(wr.pid);
    out.lit(",\"backend\":");
    out.json(wr.backend);
    out.lit(",\"kind\":");
    out.json(wr.kind);
    out.lit(",\"state\":");
    out.json(wr.state);
    out.lit(",\"fcgid_vhost_id\":");
    out.i(wr.vhost_id);
    out.lit(",\"vhost\":");
    if (vhost.empty())
      out.lit("null");
    else
      out.json(vhost);
    out.lit(",\"class\":");
    out.json(wr.klass);
    out.lit(",\"command\":");
    out.json(wr.command);
    out.lit(",\"uptime_s\":");
    out.i(wr.uptime_s);
    out.lit(",\"rss_shmem_bytes\":");
    out.u(wr.rss_shmem);
    out.lit(",\"rss_anon_bytes\":");
    out.u(wr.rss_anon);
    if (wr.lean.empty()) {
      out.lit(",\"degraded\":false");
    } else {
      out.lit(",\"degraded\":true,\"lean\":");
      out.json(wr.lean);
    }
    if (!wr.error.empty()) {
      out.lit(",\"error\":");
      out.json(wr.error);
    }
    out.lit(",\"segments\":[");
    for (std::size_t k = 0; k < wr.segments.size(); ++k) {
      const Segment& seg = wr.segments[k];
      std::uint32_t n = t.users(i, k);
      if (k) out.ch(',');
      out.lit("{\"dev\":\"");
      out.u(seg.dev_major);
      out.ch(':');
      out.u(seg.dev_minor);
      out.lit("\",\"inode\":");
      out.u(seg.inode);
      out.lit(",\"size_bytes\":");
      out.u(seg.size);
      out.lit(",\"kind\":");
      out.json(seg.kind);
      out.lit(",\"mapped_by\":");
      out.u(n);
      if (n > 1)
        out.lit(",\"shared\":true}");
      else
        out.lit(",\"shared\":false}");
    }
    out.lit("]}");
  }
  out.room(1);
  out.ch(']');
  out.finish();
}

void workers_members(JsonWriter& w, const StatusModel& m, const WorkerTable& t) {
  w.key("workers");
  worker_objects(w.raw_value(), m, t);
  if (t.not_listed) w.field("workers_not_listed", t.not_listed);
  const WorkerTotals& tot = t.totals;
  w.key("worker_totals")
      .begin_object()
      .field("workers", tot.workers)
      .field("segments", tot.segments)
      .field("segment_bytes", tot.segment_bytes)
      .field("private_segments", tot.private_segments)
      .field("private_segment_bytes", tot.private_bytes)
      .field("shared_segments", tot.segments - tot.private_segments)
      .field("shared_segment_bytes", tot.segment_bytes - tot.private_bytes)
      .field("rss_shmem_bytes", tot.rss)
      .field("degraded_workers", tot.lean)
      .end_object();
}

void findings_member(JsonWriter& w, const std::vector<Finding>& findings) {
  w.key("findings").begin_array();
  for (const auto& f : findings) {
    w.begin_object().field("id", f.id).field("severity", f.severity).field("text", f.text);
    w.key("numbers").begin_object();
    for (const auto& [k, v] : f.numbers) w.field(k, v);
    w.end_object().end_object();
  }
  w.end_array();
}

// Nothing published yet: the probe's keys from the hot values.
void unpublished_members(JsonWriter& w, const HotValues& hot) {
  if (hot.headroom < 0)
    w.key("headroom_bytes").null();
  else
    w.field("headroom_bytes", hot.headroom);
  if (hot.binding.empty())
    w.key("binding").null();
  else
    w.field("binding", hot.binding);
  w.key("sources").begin_array().end_array();
  w.key("unavailable").begin_array().end_array();
  w.key("workers").begin_array().end_array();
  w.key("findings").begin_array().end_array();
}

void sampler_member(JsonWriter& w, const SamplerHealth& h) {
  w.key("sampler")
      .begin_object()
      .field("pid", h.pid)
      .field("interval_ms", h.interval_ms)
      .field("samples", h.samples)
      .field("error_log_reads", h.log_reads)
      .field("starts", h.starts)
      .field("class_table_full_requests", h.class_table_full);
  if (h.sampled_ms)
    w.field("last_sample_ms", h.sampled_ms).field("last_sample_age_ms", h.age_ms);
  else
    w.key("last_sample_ms").null().key("last_sample_age_ms").null();
  w.field("staleness_bound_ms", h.bound_ms)
      .field("fresh", h.fresh)
      .field("failing_open", !h.fresh)
      .end_object();
}

void fpm_pools_member(JsonWriter& w, const std::vector<FpmPool>& pools) {
  w.key("fpm_pools").begin_array();
  for (const FpmPool& f : pools) {
    const FpmPoolStatus& st = f.status;
    w.begin_object()
        .field("name", f.name)
        .field("configured", f.configured)
        .field("socket", f.socket)
        .field("status_path", f.status_path)
        .field("ok", f.ok)
        .field("error", f.error)
        .field("hint", fpm_status_hint(f))
        .field("read_ms", f.read_ms);
    if (f.configured)
      w.field("log", f.log)
          .field("fork_failures", f.fork_failures)
          .field("last_failure", f.last_failure)
          .field("translated", f.translated);
    if (f.ok)
      w.field("process_manager", st.process_manager)
          .field("idle", st.idle)
          .field("active", st.active)
          .field("total", st.total)
          .field("max_active", st.max_active)
          .field("listen_queue", st.listen_queue)
          .field("max_listen_queue", st.max_listen_queue)
          .field("listen_queue_len", st.listen_queue_len)
          .field("max_children_reached", st.max_children_reached)
          .field("slow_requests", st.slow_requests)
          .field("accepted", st.accepted)
          .field("start_since", st.start_since);
    w.end_object();
  }
  w.end_array();
}

void vhost_object(JsonWriter& w, const VhostStatus& v) {
  const VhostCounts& c = v.counts;
  w.begin_object()
      .field("name", v.label)
      .field("server_name", v.server_name)
      .field("port", v.port)
      .field("fcgid_vhost_id", v.fcgid_vhost_id)
      .field("guard", v.guard)
      .field("action", v.action);
  w.key("reserve")
      .begin_object()
      .field("mode", v.reserve.is_auto ? "auto" : "fixed")
      .field("bytes", v.reserve.bytes)
      .field("source", v.reserve.source)
      .field("need_basis", v.reserve.basis)
      .field("need_basis_text", v.reserve.basis_text)
      .field("mapped_bytes", v.reserve.mapped_bytes)
      .field("touched_bytes", v.reserve.touched_bytes)
      .end_object();
  w.field("guarded", c.guarded)
      .field("passed", c.passed)
      .field("refused", c.refused)
      .field("would_refuse", c.would_refuse)
      .field("failed_open", c.failed_open)
      .field("translated", c.translated)
      .field("waited", c.waited)
      .field("wait_served", c.wait_served)
      .field("wait_expired", c.wait_expired)
      .field("queue_full", c.queue_full)
      .field("lean_starts", c.lean_starts)
      .field("reclaims_given", c.reclaims_given)
      .field("reclaims_taken", c.reclaims_taken)
      .field("fpm", c.fpm)
      .field("fpm_low_headroom", c.fpm_low);
  if (v.fair_share < 0)
    w.key("fair_share").null();
  else
    w.field("fair_share", v.fair_share).field("budget_workers", v.budget_workers);
  w.key("waiting_now").begin_object();
  for (std::size_t i = 1; i < kWaitReasons; ++i)
    w.field(to_string(static_cast<WaitFor>(i)), v.waiting_now[i]);
  w.end_object();
  w.key("fit")
      .begin_object()
      .field("workers_now", v.workers_now)
      .field("more_workers", v.fit_more)
      .field("max_processes_per_class", v.max_processes_fit)
      .field("most_workers_seen", v.most_seen)
      .field("per_worker_bytes", v.per_worker_fit)
      .end_object();
  if (c.last_refusal_ms)
    w.field("last_refusal_ms", c.last_refusal_ms)
        .field("last_refusal", iso_time(c.last_refusal_ms));
  else
    w.key("last_refusal_ms").null().key("last_refusal").null();
  w.end_object();
}

}  // namespace

std::string write_status_json(const StatusModel& m) {
  JsonWriter w;
  w.begin_object();
  w.field("state", state_key(m.headline.state)).field("state_text", state_word(m.headline.state));
  w.field("state_detail", m.headline.detail);
  if (!m.part) unpublished_members(w, m.headline.hot);
  sampler_member(w, m.sampler);
  w.key("vhosts").begin_array();
  for (const auto& v : m.vhosts) vhost_object(w, v);
  w.end_array();
  if (m.part) {
    write_json_members(w, m.part->snap);
    workers_members(w, m, m.part->workers);
    findings_member(w, m.part->findings);
    fpm_pools_member(w, m.part->fpm_pools);
  }
  w.end_object();
  return w.take() + "\n";
}

}  // namespace shmguard
