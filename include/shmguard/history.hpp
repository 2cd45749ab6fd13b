// mod_shmguard core: the last hour of headroom, the binding limit and refusals, at a fixed cost.
// The sampler records every sample; the status page draws it (chart.hpp). A ring of one-minute
// buckets (kBuckets of them, fixed memory, no allocation after construction); a sample costs a
// few comparisons. The history lives in the sampler's memory: a new sampler (a restart, a new
// server generation) starts with none.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shmguard/model.hpp"

namespace shmguard {

// What one sample contributes.
struct HistorySample {
  std::optional<std::uint64_t> headroom;  // nullopt: no finite limit known (unbounded)
  std::string_view binding;               // the binding limit's name (with headroom)
  std::uint64_t used = 0, limit = 0;      // the binding limit's used and limit bytes
  // Running totals since the server generation started, summed over virtual hosts: requests
  // refused (503 before a worker was started) and backend 500s translated to 503. A total that
  // goes down (the counters were reset) counts from zero again.
  std::uint64_t refused_total = 0, translated_total = 0;
};

// The sample's headroom and binding limit from a snapshot (compute_headroom already run).
HistorySample history_sample(const Snapshot& snap, std::uint64_t refused_total,
                             std::uint64_t translated_total);

// One bucket: what the samples that fell in it saw.
struct HistoryBucket {
  std::int64_t index = -1;    // bucket number on the history's timeline (-1: never used)
  std::uint32_t samples = 0;  // 0: no sample in this bucket (the sampler was not running)
  std::uint32_t bounded = 0;  // samples with a finite limit (the rest were unbounded)
  // Over the bounded samples: the lowest headroom, the binding limit at that moment, and the
  // last sample's values.
  std::uint64_t headroom_min = 0, used_at_min = 0, limit_at_min = 0;
  std::uint64_t headroom_last = 0, used_last = 0, limit_last = 0;
  std::array<char, 32> binding_at_min{};  // NUL-terminated, cut at 31 bytes
  std::array<char, 32> binding_last{};
  std::uint64_t refused = 0, translated = 0;  // rises within the bucket
  std::string_view binding_min_name() const { return binding_at_min.data(); }
  std::string_view binding_last_name() const { return binding_last.data(); }
};

class History {
 public:
  static constexpr std::size_t kBuckets = 60;
  using Window = std::array<HistoryBucket, kBuckets>;

  // bucket_ms: a bucket's length (60 s: the window is an hour). Values below 1 become 1.
  explicit History(std::int64_t bucket_ms = 60000);

  // Records a sample taken at now_ms (any clock that normally moves forward: the sampler passes
  // its monotonic clock). A clock that went back is taken as not having moved (the sample joins
  // the last bucket and later times are shifted by the step); one that jumped forward leaves the
  // buckets in between empty, like a sampler that was stopped.
  void record(std::int64_t now_ms, const HistorySample& s);

  // The kBuckets buckets ending with the one now_ms falls in, oldest first; buckets no sample
  // fell in have samples == 0 (their index is still set).
  Window window(std::int64_t now_ms) const;

  std::int64_t bucket_ms() const { return bucket_ms_; }
  std::uint64_t recorded() const { return recorded_; }  // samples recorded in all

 private:
  std::int64_t shifted(std::int64_t now_ms) const;
  std::int64_t bucket_ms_;
  std::int64_t offset_ms_ = 0;  // added to the clock: the sum of the steps back it made
  std::int64_t last_ms_ = 0;    // the last sample's time (shifted)
  std::uint64_t recorded_ = 0;
  std::uint64_t last_refused_ = 0, last_translated_ = 0;
  std::array<HistoryBucket, kBuckets> ring_{};
};

}  // namespace shmguard
