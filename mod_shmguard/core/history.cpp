// mod_shmguard core: the ring of one-minute buckets behind the status page's chart.
#include "shmguard/history.hpp"

#include <algorithm>
#include <limits>

namespace shmguard {

namespace {

// Floor division (times before the clock's zero still fall in the right bucket).
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

std::size_t slot_of(std::int64_t index) {
  const auto n = static_cast<std::int64_t>(History::kBuckets);
  return static_cast<std::size_t>(((index % n) + n) % n);
}

void copy_name(std::array<char, 32>& to, std::string_view from) {
  const std::size_t n = std::min(from.size(), to.size() - 1);
  std::copy_n(from.data(), n, to.data());
  to[n] = '\0';
}

// The rise of a running total since `last`; a total below `last` was reset and counts from zero.
std::uint64_t rise(std::uint64_t total, std::uint64_t last) {
  return total >= last ? total - last : total;
}

}  // namespace

HistorySample history_sample(const Snapshot& snap, std::uint64_t refused_total,
                             std::uint64_t translated_total) {
  HistorySample s;
  s.refused_total = refused_total;
  s.translated_total = translated_total;
  const Limit* b = snap.binding_limit();
  if (snap.headroom_bytes && b) {
    s.headroom = *snap.headroom_bytes;
    s.binding = b->name;
    s.used = b->used_bytes;
    s.limit = b->limit_bytes;
  }
  return s;
}

History::History(std::int64_t bucket_ms) : bucket_ms_(std::max<std::int64_t>(bucket_ms, 1)) {}

std::int64_t History::shifted(std::int64_t now_ms) const {
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  if (offset_ms_ > 0 && now_ms > max - offset_ms_) return max;
  return now_ms + offset_ms_;
}

void History::record(std::int64_t now_ms, const HistorySample& s) {
  std::int64_t t = shifted(now_ms);
  if (recorded_ > 0 && t < last_ms_) {  // the clock went back: time stands still at the last sample
    offset_ms_ += last_ms_ - t;
    t = last_ms_;
  }
  last_ms_ = t;
  const std::int64_t index = floor_div(t, bucket_ms_);
  HistoryBucket& b = ring_[slot_of(index)];
  if (b.index != index) {  // a bucket last used a whole window ago (or never): start it afresh
    b = HistoryBucket{};
    b.index = index;
  }
  // Counters: the first sample is the baseline (what was counted before is not in the window).
  if (recorded_ > 0) {
    b.refused += rise(s.refused_total, last_refused_);
    b.translated += rise(s.translated_total, last_translated_);
  }
  last_refused_ = s.refused_total;
  last_translated_ = s.translated_total;
  ++recorded_;
  ++b.samples;
  if (!s.headroom) return;
  if (b.bounded == 0 || *s.headroom < b.headroom_min) {
    b.headroom_min = *s.headroom;
    b.used_at_min = s.used;
    b.limit_at_min = s.limit;
    copy_name(b.binding_at_min, s.binding);
  }
  ++b.bounded;
  b.headroom_last = *s.headroom;
  b.used_last = s.used;
  b.limit_last = s.limit;
  copy_name(b.binding_last, s.binding);
}

History::Window History::window(std::int64_t now_ms) const {
  std::int64_t t = shifted(now_ms);
  if (recorded_ > 0 && t < last_ms_) t = last_ms_;  // the clock went back since the last sample
  const std::int64_t current = floor_div(t, bucket_ms_);
  Window w{};
  for (std::size_t k = 0; k < kBuckets; ++k) {
    const std::int64_t index = current - static_cast<std::int64_t>(kBuckets - 1 - k);
    const HistoryBucket& b = ring_[slot_of(index)];
    if (b.index == index) {
      w[k] = b;
    } else {
      w[k] = HistoryBucket{};
      w[k].index = index;
    }
  }
  return w;
}

}  // namespace shmguard
