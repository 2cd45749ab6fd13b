// PHP's allocation-failure lines: exact formats only (a phrase elsewhere is never evidence).
#include <gtest/gtest.h>

#include "shmguard/evidence.hpp"

using namespace shmguard;

TEST(PhpError, FieldReportLine) {
  auto e = parse_php_shm_error(
      "Thu Oct 16 17:59:14 2014 (19446): Fatal Error Unable to allocate shared memory segment of "
      "67108864 bytes: mmap: Cannot allocate memory (12)\n");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->source, ShmErrorSource::Opcache);
  EXPECT_EQ(e->bytes, 67108864u);
  EXPECT_EQ(e->pid, 19446);
  EXPECT_EQ(e->model, "mmap");
  EXPECT_EQ(e->message, "Cannot allocate memory (12)");
}

TEST(PhpError, DayPaddedWithSpace) {
  auto e = parse_php_shm_error(
      "Sun Nov  1 09:05:00 2026 (7): Fatal Error Unable to allocate shared memory segment of 1 "
      "bytes: shm: Cannot allocate memory (12)");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->pid, 7);
  EXPECT_EQ(e->model, "shm");
}

TEST(PhpError, ApcuLine) {
  auto e = parse_php_shm_error(
      "PHP Fatal error:  apc_mmap: Failed to mmap 33554432 bytes. Is your apc.shm_size too large? "
      "in Unknown on line 0");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->source, ShmErrorSource::Apcu);
  EXPECT_EQ(e->bytes, 33554432u);
  EXPECT_EQ(e->pid, 0);
  auto newer = parse_php_shm_error(
      "PHP Fatal error:  apc_mmap: Failed to mmap 1073741824 bytes. apc.shm_size may be too large. "
      "in Unknown on line 0");
  ASSERT_TRUE(newer);
  EXPECT_EQ(newer->bytes, 1073741824u);
}

TEST(PhpError, PhraseInsideOtherLinesIsNotEvidence) {
  // httpd logs a client's URL at error level: the phrase is there, the format is not.
  EXPECT_FALSE(parse_php_shm_error(
      "[Tue Dec 01 20:00:00.123456 2026] [authz_core:error] [pid 5:tid 6] [client 127.0.0.1:1] "
      "AH01630: client denied by server configuration: /x/.ht Fatal Error Unable to allocate "
      "shared memory segment of 67108864 bytes: mmap: Cannot allocate memory (12)"));
  EXPECT_FALSE(parse_php_shm_error("[fcgid:warn] mod_fcgid: error reading data from FastCGI"));
  EXPECT_FALSE(parse_php_shm_error("Unable to allocate shared memory segment of 5 bytes: x"));
  EXPECT_FALSE(parse_php_shm_error(
      "x Thu Oct 16 17:59:14 2014 (19446): Fatal Error Unable to allocate shared memory segment "
      "of 67108864 bytes: mmap: Cannot allocate memory (12)"));
  // mod_shmguard's own lines quote PHP's words: never evidence.
  EXPECT_FALSE(parse_php_shm_error(
      "[Tue Dec 01 20:00:00 2026] [shmguard:error] SG0202 backend died: PHP: \"Unable to allocate "
      "shared memory segment of 67108864 bytes\""));
  EXPECT_FALSE(
      parse_php_shm_error("mod_fcgid: stderr: PHP Fatal error:  apc_mmap: Failed to "
                          "mmap 33554432 bytes."));
}

TEST(PhpError, MalformedPartsRejected) {
  const char* bad[] = {
      "Thu Oct 16 17:59:14 2014 (0): Fatal Error Unable to allocate shared memory segment of 1 "
      "bytes: mmap: Cannot allocate memory (12)",  // pid 0
      "Thu Oct 16 17:59:14 2014 (99999999999): Fatal Error Unable to allocate shared memory "
      "segment of 1 bytes: mmap: Cannot allocate memory (12)",  // pid too large
      "Thu Oct 16 17:59:14 2014 (5): Fatal Error Unable to allocate shared memory segment of "
      "lots bytes: mmap: Cannot allocate memory (12)",
      "Thu Oct 16 17:59:14 2014 (5): Fatal Error Unable to allocate shared memory segment of 1 "
      "bytes: mmap: Cannot allocate memory",  // no errno
      "Thu Oct 16 17:59:14 20x4 (5): Fatal Error Unable to allocate shared memory segment of 1 "
      "bytes: mmap: Cannot allocate memory (12)",
      "PHP Fatal error:  apc_mmap: Failed to mmap lots bytes.",
      "",
  };
  for (const char* line : bad) EXPECT_FALSE(parse_php_shm_error(line)) << line;
  EXPECT_FALSE(parse_php_shm_error(std::string(10000, 'P')));
}

// ---------------------------------------------------------------- the queue of OPcache lines

namespace {
bool workers_100_to_199(int pid) {
  return pid >= 100 && pid < 200;
}
bool none_are_workers(int) {
  return false;
}
bool all_exited(int) {
  return true;
}
}  // namespace

TEST(PhpErrorQueue, OnlyAWorkersLineCountsAndOnlyOncePerPid) {
  PhpErrorQueue q;
  q.offer({2147483000, 1, 1000}, workers_100_to_199);  // never a worker
  q.offer({150, 67108864, 1000}, workers_100_to_199);
  q.offer({150, 134217728, 1001}, workers_100_to_199);  // the same pid again: the first waits
  auto out = q.settle(1002, workers_100_to_199, all_exited);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].pid, 150);
  EXPECT_EQ(out[0].bytes, 67108864u);
  // The non-worker's line never counts, and is gone after kWaitMs.
  EXPECT_EQ(q.size(), 1u);
  EXPECT_TRUE(q.settle(1000 + PhpErrorQueue::kWaitMs + 1, workers_100_to_199, all_exited).empty());
  EXPECT_TRUE(q.empty());
}

TEST(PhpErrorQueue, ALineOfAWorkerNotYetInTheTableCountsOnceItIs) {
  PhpErrorQueue q;
  q.offer({150, 1, 1000}, none_are_workers);  // its node not linked yet
  EXPECT_TRUE(q.settle(1001, none_are_workers, all_exited).empty());
  auto out = q.settle(1002, workers_100_to_199, all_exited);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].pid, 150);
}

TEST(PhpErrorQueue, LinesNamingOtherPidsCannotCrowdOutAWorkersLine) {
  PhpErrorQueue q;
  q.offer({150, 1, 1000}, workers_100_to_199);
  for (int pid = 1000; pid < 1000 + 5000; ++pid) q.offer({pid, 1, 1000}, workers_100_to_199);
  q.offer({1, 1, 1000}, workers_100_to_199);
  EXPECT_LE(q.size(), 1 + PhpErrorQueue::kMaxUnknownLines);
  // Live non-workers and forgeries: the worker's line still waits for its exit, and counts then.
  auto alive_but_150 = [](int pid) { return pid == 150; };
  auto out = q.settle(1500, workers_100_to_199, alive_but_150);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].pid, 150);
}

TEST(PhpErrorQueue, ALiveWorkerIsNotDyingOfItsLine) {
  PhpErrorQueue q;
  q.offer({150, 1, 1000}, workers_100_to_199);
  auto alive = [](int) { return false; };
  EXPECT_FALSE(q.all_exited(alive));
  EXPECT_TRUE(q.settle(2000, workers_100_to_199, alive).empty());
  EXPECT_EQ(q.size(), 1u);
  EXPECT_TRUE(q.settle(1000 + PhpErrorQueue::kWaitMs + 1, workers_100_to_199, alive).empty());
  EXPECT_TRUE(q.empty());
}
