// The guard's decision and the refusal page.
#include <gtest/gtest.h>

#include "shmguard/guard.hpp"

using namespace shmguard;

namespace {
GuardInput low() {
  GuardInput in;
  in.fresh = true;
  in.bounded = true;
  in.headroom = 12ULL << 20;
  in.reserve = 64ULL << 20;
  in.spawns_workers = true;
  in.idle_workers = 0;
  return in;
}
}  // namespace

TEST(Decide, RefusesWhenLowAndNoIdleWorker) {
  EXPECT_EQ(decide(low()), Verdict::Refuse);
}

TEST(Decide, IdleWorkerServes) {
  GuardInput in = low();
  in.idle_workers = 2;
  EXPECT_EQ(decide(in), Verdict::Pass);
}

TEST(Decide, AmpleHeadroomPasses) {
  GuardInput in = low();
  in.headroom = 64ULL << 20;  // equal to the reserve is enough
  EXPECT_EQ(decide(in), Verdict::Pass);
}

TEST(Decide, UnboundedPasses) {
  GuardInput in = low();
  in.bounded = false;
  in.headroom = 0;
  EXPECT_EQ(decide(in), Verdict::Pass);
}

TEST(Decide, StaleFailsOpen) {
  GuardInput in = low();
  in.fresh = false;
  EXPECT_EQ(decide(in), Verdict::FailOpen);
}

TEST(Decide, UnknownWorkerTableFailsOpen) {
  GuardInput in = low();
  in.idle_workers = -1;
  EXPECT_EQ(decide(in), Verdict::FailOpen);
}

TEST(Decide, FpmDecidedByReserveAlone) {
  GuardInput in = low();
  in.spawns_workers = false;
  in.idle_workers = -1;
  EXPECT_EQ(decide(in), Verdict::Refuse);
  in.headroom = 1ULL << 30;
  EXPECT_EQ(decide(in), Verdict::Pass);
}

TEST(Decide, DryRun) {
  GuardInput in = low();
  in.dry_run = true;
  EXPECT_EQ(decide(in), Verdict::WouldRefuse);
}

TEST(Refusal, HtmlSaysSharedMemoryAndEscapes) {
  RefusalInfo info;
  info.host = "<script>alert(1)</script>.example";
  info.retry_after = 30;
  std::string h = render_refusal_html(info);
  EXPECT_NE(h.find("shared memory"), std::string::npos);
  EXPECT_NE(h.find("in 30 seconds"), std::string::npos);
  EXPECT_EQ(h.find("<script>"), std::string::npos);
  EXPECT_NE(h.find("&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(h.find("MiB"), std::string::npos) << "no numbers without ShmGuardDetail";
}

TEST(Refusal, DetailShowsNumbers) {
  RefusalInfo info;
  info.detail = true;
  info.headroom = 12ULL << 20;
  info.reserve = 64ULL << 20;
  info.binding = "beancounter:shmpages";
  std::string h = render_refusal_html(info);
  EXPECT_NE(h.find("12.0 MiB"), std::string::npos);
  EXPECT_NE(h.find("64.0 MiB"), std::string::npos);
  std::string j = render_refusal_json(info);
  EXPECT_NE(j.find("\"headroom_bytes\":12582912"), std::string::npos) << j;
  EXPECT_NE(j.find("\"binding\":\"beancounter:shmpages\""), std::string::npos);
}

TEST(Refusal, JsonWithoutDetailHasNoNumbers) {
  RefusalInfo info;
  std::string j = render_refusal_json(info);
  EXPECT_NE(j.find("\"status\":503"), std::string::npos);
  EXPECT_EQ(j.find("headroom_bytes"), std::string::npos);
}

TEST(Refusal, PrefersJson) {
  EXPECT_TRUE(prefers_json("application/json"));
  EXPECT_TRUE(prefers_json("application/json, text/html;q=0.5"));
  EXPECT_FALSE(prefers_json("text/html,application/xhtml+xml,application/json;q=0.9"));
  EXPECT_FALSE(prefers_json("*/*"));
  EXPECT_FALSE(prefers_json(""));
  EXPECT_FALSE(prefers_json("application/json;q=0"));
}
