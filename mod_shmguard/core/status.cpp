// mod_shmguard core: status sections.
#include "shmguard/status.hpp"

#include <cstring>

#include "shmguard/guard.hpp"
#include "shmguard/json.hpp"
#include "shmguard/render.hpp"
#include "shmguard/units.hpp"

namespace shmguard {

namespace {
void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}
bool get_u32(std::string_view& in, std::uint32_t& v) {
  if (in.size() < 4) return false;
  std::memcpy(&v, in.data(), 4);
  in.remove_prefix(4);
  return true;
}
}  // namespace

std::string encode_sections(const StatusSections& s) {
  std::string out = "SGB1";
  for (const std::string* part : {&s.html, &s.auto_text, &s.json_members, &s.metrics}) {
    put_u32(out, static_cast<std::uint32_t>(part->size()));
    out += *part;
  }
  return out;
}

std::optional<StatusSections> decode_sections(std::string_view in) {
  if (in.substr(0, 4) != "SGB1") return std::nullopt;
  in.remove_prefix(4);
  StatusSections s;
  for (std::string* part : {&s.html, &s.auto_text, &s.json_members, &s.metrics}) {
    std::uint32_t n;
    if (!get_u32(in, n) || n > in.size()) return std::nullopt;
    part->assign(in.data(), n);
    in.remove_prefix(n);
  }
  return s;
}

StatusSections render_sampler_sections(const Snapshot& snap, const std::vector<WorkerRow>& workers) {
  StatusSections out;
  out.html = "<h2>Sources</h2>\n<pre>" + html_escape(render_text(snap)) + "</pre>\n";
  out.html += "<h2>FastCGI workers</h2>\n<table><tr><th>pid</th><th>kind</th><th>state</th>"
              "<th>command</th><th>shared resident</th><th>segments</th></tr>\n";
  for (const auto& w : workers) {
    out.html += "<tr><td>" + std::to_string(w.pid) + "</td><td>" + html_escape(w.kind) +
                "</td><td>" + html_escape(w.state) + "</td><td>" + html_escape(w.command) +
                "</td><td>" + html_escape(human_bytes(w.rss_shmem)) + "</td><td>";
    for (const auto& seg : w.segments)
      out.html += html_escape(seg.kind + " " + std::to_string(seg.dev_major) + ":" +
                              std::to_string(seg.dev_minor) + ":" + std::to_string(seg.inode) +
                              " " + human_bytes(seg.size)) +
                  "<br>";
    out.html += "</td></tr>\n";
  }
  out.html += "</table>\n";

  out.auto_text += "ShmGuardHeadroomBytes: " +
                   (snap.headroom_bytes ? std::to_string(*snap.headroom_bytes) : "unbounded") + "\n";
  out.auto_text += "ShmGuardBinding: " + (snap.binding.empty() ? "none" : snap.binding) + "\n";
  out.auto_text += "ShmGuardWorkers: " + std::to_string(workers.size()) + "\n";

  JsonWriter w;
  w.begin_object();
  write_json_members(w, snap);
  w.key("workers").begin_array();
  for (const auto& wr : workers) {
    w.begin_object()
        .field("pid", wr.pid)
        .field("kind", wr.kind)
        .field("state", wr.state)
        .field("vhost_id", wr.vhost_id)
        .field("class", wr.klass)
        .field("command", wr.command)
        .field("uptime_s", wr.uptime_s)
        .field("rss_shmem_bytes", wr.rss_shmem);
    w.key("segments").begin_array();
    for (const auto& seg : wr.segments)
      w.begin_object()
          .field("dev", std::to_string(seg.dev_major) + ":" + std::to_string(seg.dev_minor))
          .field("inode", seg.inode)
          .field("size_bytes", seg.size)
          .field("kind", seg.kind)
          .end_object();
    w.end_array().end_object();
  }
  w.end_array();
  w.end_object();
  std::string j = w.take();
  out.json_members = j.substr(1, j.size() - 2);  // without the braces
  out.metrics = render_prometheus(snap);
  return out;
}

}  // namespace shmguard
