// The status page's history: one-minute buckets in a fixed ring, clocks that jump, counters that
// reset, unbounded limits, no data.
#include <gtest/gtest.h>

#include <type_traits>

#include "shmguard/history.hpp"
#include "history_samples.hpp"

using namespace shmguard;

using shmguard_test::bounded;

namespace {

constexpr std::int64_t kMin = 60000;
constexpr std::uint64_t MiB = 1ull << 20;

HistorySample unbounded(std::uint64_t refused = 0) {
  HistorySample s;
  s.refused_total = refused;
  return s;
}

std::size_t buckets_with_data(const History::Window& w) {
  std::size_t n = 0;
  for (const auto& b : w) n += b.samples > 0;
  return n;
}

}  // namespace

// A History is a value of fixed size: no container that grows with the samples.
static_assert(std::is_trivially_copyable_v<HistoryBucket>);
static_assert(sizeof(History) < 16 * 1024);

TEST(History, EmptyWindowHasNoDataAndConsecutiveIndexes) {
  History h;
  auto w = h.window(100 * kMin + 5);
  ASSERT_EQ(w.size(), History::kBuckets);
  EXPECT_EQ(buckets_with_data(w), 0u);
  for (std::size_t k = 0; k < w.size(); ++k)
    EXPECT_EQ(w[k].index, 100 - static_cast<std::int64_t>(History::kBuckets - 1 - k));
  EXPECT_EQ(h.recorded(), 0u);
}

TEST(History, SamplesOfOneMinuteShareABucketWithLowestAndLast) {
  History h;
  h.record(10 * kMin + 0, bounded(500 * MiB));
  h.record(10 * kMin + 20000, bounded(100 * MiB, 1024 * MiB, 0, 0, "beancounter:privvmpages"));
  h.record(10 * kMin + 59999, bounded(300 * MiB));
  auto w = h.window(10 * kMin + 59999);
  EXPECT_EQ(buckets_with_data(w), 1u);
  const HistoryBucket& b = w.back();
  EXPECT_EQ(b.index, 10);
  EXPECT_EQ(b.samples, 3u);
  EXPECT_EQ(b.bounded, 3u);
  EXPECT_EQ(b.headroom_min, 100 * MiB);
  EXPECT_EQ(b.used_at_min, 924 * MiB);
  EXPECT_EQ(b.limit_at_min, 1024 * MiB);
  EXPECT_EQ(b.binding_min_name(), "beancounter:privvmpages");
  EXPECT_EQ(b.headroom_last, 300 * MiB);
  EXPECT_EQ(b.used_last, 724 * MiB);
  EXPECT_EQ(b.binding_last_name(), "beancounter:shmpages");
  // The next minute starts a new bucket.
  h.record(11 * kMin, bounded(42 * MiB));
  w = h.window(11 * kMin);
  EXPECT_EQ(w.back().headroom_min, 42 * MiB);
  EXPECT_EQ(w[History::kBuckets - 2].headroom_min, 100 * MiB);
}

TEST(History, RingWrapsKeepingTheLastHourOnly) {
  History h;
  for (std::int64_t m = 0; m < 200; ++m)
    h.record(m * kMin + 1000, bounded(static_cast<std::uint64_t>(m) * MiB));
  auto w = h.window(199 * kMin + 2000);
  EXPECT_EQ(buckets_with_data(w), History::kBuckets);
  for (std::size_t k = 0; k < w.size(); ++k) {
    const std::int64_t m = 199 - static_cast<std::int64_t>(History::kBuckets - 1 - k);
    EXPECT_EQ(w[k].index, m);
    EXPECT_EQ(w[k].samples, 1u);
    EXPECT_EQ(w[k].headroom_min, static_cast<std::uint64_t>(m) * MiB) << k;
  }
  EXPECT_EQ(h.recorded(), 200u);
}

TEST(History, WindowLaterThanTheLastSampleShowsTheGap) {
  History h;
  for (std::int64_t m = 0; m < 5; ++m) h.record(m * kMin, bounded(MiB));
  // Asked 30 minutes after the last sample (a stalled sampler): 5 buckets, 30 minutes back.
  auto w = h.window(34 * kMin);
  EXPECT_EQ(buckets_with_data(w), 5u);
  EXPECT_EQ(w.back().index, 34);
  EXPECT_EQ(w.back().samples, 0u);
  EXPECT_EQ(w[History::kBuckets - 31].index, 4);
  EXPECT_EQ(w[History::kBuckets - 31].samples, 1u);
  // Asked two hours later: nothing left.
  EXPECT_EQ(buckets_with_data(h.window(124 * kMin)), 0u);
}

TEST(History, ForwardJumpLeavesEmptyBucketsBetween) {
  History h;
  for (std::int64_t m = 0; m < 5; ++m) h.record(m * kMin, bounded(MiB));
  h.record(10 * kMin, bounded(2 * MiB));  // stopped for 5 minutes
  auto w = h.window(10 * kMin);
  EXPECT_EQ(buckets_with_data(w), 6u);
  for (std::size_t k = History::kBuckets - 6; k < History::kBuckets - 1; ++k)
    EXPECT_EQ(w[k].samples, 0u) << k;
  // A jump of more than the window: only the new bucket, even where the ring's slot is reused.
  h.record(10 * kMin + 60 * kMin, bounded(3 * MiB));
  w = h.window(70 * kMin);
  EXPECT_EQ(buckets_with_data(w), 1u);
  EXPECT_EQ(w.back().samples, 1u);
  EXPECT_EQ(w.back().headroom_min, 3 * MiB);  // not merged with minute 10's sample
}

TEST(History, ClockStepBackJoinsTheLastBucketAndTimeGoesOn) {
  History h;
  for (std::int64_t m = 0; m < 10; ++m) h.record(100 * kMin + m * kMin, bounded(MiB));
  // The clock steps back by an hour: the sample joins the latest bucket, nothing is lost.
  h.record(49 * kMin, bounded(7 * MiB));
  auto w = h.window(49 * kMin);
  EXPECT_EQ(buckets_with_data(w), 10u);
  EXPECT_EQ(w.back().index, 109);
  EXPECT_EQ(w.back().samples, 2u);
  EXPECT_EQ(w.back().headroom_last, 7 * MiB);
  // From then on the new clock counts from there: one minute later is the next bucket.
  h.record(50 * kMin, bounded(8 * MiB));
  w = h.window(50 * kMin);
  EXPECT_EQ(buckets_with_data(w), 11u);
  EXPECT_EQ(w.back().index, 110);
  EXPECT_EQ(w.back().headroom_min, 8 * MiB);
  // A view asked with a time before the last sample shows the window ending at the last sample.
  EXPECT_EQ(h.window(0).back().index, 110);
}

TEST(History, CountersRiseByDeltasBaselineFirstResetCountsFromZero) {
  History h;
  h.record(0, bounded(MiB, 1024 * MiB, 100, 7));     // baseline: what came before is not counted
  h.record(1000, bounded(MiB, 1024 * MiB, 103, 7));  // +3 refused
  h.record(kMin, bounded(MiB, 1024 * MiB, 105, 8));  // next minute: +2, +1
  h.record(kMin + 1000, bounded(MiB, 1024 * MiB, 2, 0));  // reset (new counters): +2, +0
  auto w = h.window(kMin + 1000);
  EXPECT_EQ(w[History::kBuckets - 2].refused, 3u);
  EXPECT_EQ(w[History::kBuckets - 2].translated, 0u);
  EXPECT_EQ(w.back().refused, 4u);
  EXPECT_EQ(w.back().translated, 1u);
}

TEST(History, UnboundedSamplesCountButHaveNoHeadroom) {
  History h;
  h.record(0, unbounded());
  h.record(1000, unbounded(1));
  auto w = h.window(1000);
  EXPECT_EQ(w.back().samples, 2u);
  EXPECT_EQ(w.back().bounded, 0u);
  EXPECT_EQ(w.back().refused, 1u);
  h.record(2000, bounded(5 * MiB));
  h.record(3000, unbounded());
  w = h.window(3000);
  EXPECT_EQ(w.back().samples, 4u);
  EXPECT_EQ(w.back().bounded, 1u);
  EXPECT_EQ(w.back().headroom_min, 5 * MiB);
  EXPECT_EQ(w.back().headroom_last, 5 * MiB);  // the last bounded sample's
}

TEST(History, LongBindingNameIsCutNotOverrun) {
  History h;
  const std::string name(100, 'x');
  h.record(0, bounded(MiB, 2 * MiB, 0, 0, name));
  auto w = h.window(0);
  EXPECT_EQ(w.back().binding_min_name(), std::string(31, 'x'));
  EXPECT_EQ(w.back().binding_last_name(), std::string(31, 'x'));
}

TEST(History, BucketLengthIsAParameter) {
  History h(30000);
  h.record(0, bounded(MiB));
  h.record(30000, bounded(2 * MiB));
  auto w = h.window(30000);
  EXPECT_EQ(buckets_with_data(w), 2u);
  EXPECT_EQ(h.bucket_ms(), 30000);
  EXPECT_EQ(History(0).bucket_ms(), 1);
}

TEST(History, NegativeTimesFloorToTheirBucket) {
  History h;
  h.record(-1, bounded(MiB));
  h.record(0, bounded(2 * MiB));
  auto w = h.window(0);
  EXPECT_EQ(w[History::kBuckets - 2].index, -1);
  EXPECT_EQ(w[History::kBuckets - 2].samples, 1u);
  EXPECT_EQ(w.back().samples, 1u);
}

TEST(History, SampleFromSnapshotTakesTheBindingLimit) {
  Snapshot s;
  s.limits.push_back({"beancounter:shmpages", 1024 * MiB, 1000 * MiB});
  s.limits.push_back({"beancounter:privvmpages", 4096 * MiB, 100 * MiB});
  s.headroom_bytes = 24 * MiB;
  s.binding = "beancounter:shmpages";
  HistorySample hs = history_sample(s, 5, 6);
  ASSERT_TRUE(hs.headroom);
  EXPECT_EQ(*hs.headroom, 24 * MiB);
  EXPECT_EQ(hs.binding, "beancounter:shmpages");
  EXPECT_EQ(hs.used, 1000 * MiB);
  EXPECT_EQ(hs.limit, 1024 * MiB);
  EXPECT_EQ(hs.refused_total, 5u);
  EXPECT_EQ(hs.translated_total, 6u);
  Snapshot none;
  EXPECT_FALSE(history_sample(none, 0, 0).headroom);
}
