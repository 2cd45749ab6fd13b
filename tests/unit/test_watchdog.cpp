// The parent's watchdog on the sampler (issue 20, low): a SIGSTOPped sampler is noticed.
#include <gtest/gtest.h>

#include "shmguard/rules.hpp"
#include "shmguard/watchdog.hpp"

using namespace shmguard;

TEST(Watchdog, AStoppedSamplerIsStalledAfterTheBound) {
  SamplerWatchdog w(500);
  EXPECT_EQ(w.stall_ms(), 10000);  // 4 x 1.5 s is less than 10 s
  EXPECT_FALSE(w.stalled(42, 100, 0));
  EXPECT_FALSE(w.stalled(42, 100, 9999));
  EXPECT_EQ(w.quiet_ms(), 9999);
  EXPECT_TRUE(w.stalled(42, 100, 10000));
  // Once per stall: counted again from there.
  EXPECT_FALSE(w.stalled(42, 100, 15000));
  EXPECT_TRUE(w.stalled(42, 100, 20000));
}

TEST(Watchdog, ASamplerThatPublishesOrANewOneIsNotStalled) {
  SamplerWatchdog w(500);
  std::uint64_t n = 0;
  for (std::int64_t t = 0; t < 100000; t += 9000) EXPECT_FALSE(w.stalled(42, ++n, t));
  // A slow sample (one in 9 s) is not a stall; a new sampler (another pid) starts afresh.
  EXPECT_FALSE(w.stalled(43, n, 200000));
  EXPECT_FALSE(w.stalled(43, n, 209000));
  EXPECT_TRUE(w.stalled(43, n, 210000));
  EXPECT_FALSE(w.stalled(0, n, 300000));  // none running
  EXPECT_FALSE(w.stalled(43, n, 300001));
}

TEST(Watchdog, BoundFollowsTheInterval) {
  SamplerWatchdog slow(5000);  // staleness bound 15 s
  EXPECT_EQ(slow.stall_ms(), 4 * staleness_bound_ms(5000));
  EXPECT_GT(slow.stall_ms(), staleness_bound_ms(5000));
}
