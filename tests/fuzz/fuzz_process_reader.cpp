// libFuzzer target: the sampler's process reader (read_worker, read_segments) on a hostile
// process: any local user's process chooses its own maps (tens of thousands of mappings), its
// name and command line. The input is cut at the first two "\n@@\n" into maps, stat and cmdline,
// written as <tmp>/4242/{maps,stat,cmdline,status}; the reader must not crash, keep at most
// kMaxSegments distinct segments, and say when it left some out.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "shmguard/workers.hpp"

namespace {
const std::string& root() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/fuzz-process-reader-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    std::string d = tmpl;
    if (::mkdir((d + "/4242").c_str(), 0700) != 0) std::abort();
    return d;
  }();
  return dir;
}
void put(const std::string& name, std::string_view text) {
  FILE* f = std::fopen((root() + "/4242/" + name).c_str(), "wb");
  if (!f) std::abort();
  if (!text.empty()) std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (int i = 0; i < 2; ++i) {
    std::size_t cut = in.find("\n@@\n");
    parts[i] = in.substr(0, cut);
    in = cut == std::string_view::npos ? std::string_view{} : in.substr(cut + 4);
  }
  parts[2] = in;
  put("maps", parts[0]);
  put("stat", parts[1].empty() ? std::string_view("4242 (php-fpm) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 "
                                                  "20 0 1 0 100 1000 10")
                               : parts[1]);
  put("cmdline", parts[2]);
  put("status", "Uid:\t33\t33\t33\t33\nRssShmem:\t1024 kB\n");
  shmguard::MapsBounds b;
  auto segs = shmguard::read_segments(root(), 4242, &b);
  if (segs) {
    if (segs.value->size() > shmguard::kMaxSegments) std::abort();
    for (std::size_t i = 0; i < segs.value->size(); ++i)
      for (std::size_t k = i + 1; k < segs.value->size(); ++k)
        if ((*segs.value)[i] == (*segs.value)[k]) std::abort();  // one per (dev, inode)
    if (b.segments_left_out > 0 && segs.value->size() != shmguard::kMaxSegments) std::abort();
    if ((b.cut || b.segments_left_out) == b.note().empty()) std::abort();
  }
  auto w = shmguard::read_worker(root(), 4242, true);
  if (w && w.value->segments.size() > shmguard::kMaxSegments) std::abort();
  if (w && w.value->cmdline.size() > shmguard::kCmdlineMax) std::abort();
  return 0;
}
