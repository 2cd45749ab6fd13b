// The refusal page (503, HTML or JSON).
#include <gtest/gtest.h>

#include "shmguard/refusal.hpp"

using namespace shmguard;

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

TEST(Refusal, FpmPoolFailureSaysSoNotSharedMemory) {
  RefusalInfo in;
  in.host = "a.example";
  in.translated = true;
  in.fpm_cause = "the pool could not start a child: fork() failed: Cannot allocate memory (12)";
  in.fpm_bound = "memory <privvmpages>";
  std::string h = render_refusal_html(in);
  EXPECT_NE(h.find("PHP-FPM pool"), std::string::npos);
  EXPECT_EQ(h.find("shared memory"), std::string::npos);
  EXPECT_EQ(h.find("fork()"), std::string::npos);  // the cause only with ShmGuardDetail On
  std::string j = render_refusal_json(in);
  EXPECT_NE(j.find("\"error\":\"PHP-FPM pool unavailable\""), std::string::npos) << j;
  EXPECT_EQ(j.find("\"cause\""), std::string::npos) << j;
  in.detail = true;
  h = render_refusal_html(in);
  EXPECT_NE(h.find("fork() failed: Cannot allocate memory (12)"), std::string::npos);
  EXPECT_NE(h.find("memory &lt;privvmpages&gt;"), std::string::npos);  // escaped
  j = render_refusal_json(in);
  EXPECT_NE(j.find("\"cause\":\"the pool could not start a child"), std::string::npos) << j;
  EXPECT_NE(j.find("\"bound\":\"memory \\u003cprivvmpages\\u003e\""), std::string::npos) << j;
}
