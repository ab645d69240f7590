// The replicas' thread team: every part runs once, each on its own thread (part 0 on the
// caller's), the same threads job after job, fewer parts than threads, and errors rethrown.
#include "base/fork_join_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>

namespace j2v {
namespace {

TEST(ForkJoinPool, RunsEveryPartOnceOnItsOwnThreadJobAfterJob) {
  ForkJoinPool pool(3);
  EXPECT_EQ(pool.helpers(), 3u);
  std::set<std::thread::id> helpers_seen;
  for (int job = 0; job < 500; ++job) {
    size_t parts = 1 + job % 4;
    std::vector<int> runs(parts, 0);
    std::vector<std::thread::id> threads(parts);
    pool.run(parts, [&](size_t part) {
      ++runs[part];
      threads[part] = std::this_thread::get_id();
    });
    for (size_t p = 0; p < parts; ++p) ASSERT_EQ(runs[p], 1) << "job " << job << " part " << p;
    ASSERT_EQ(threads[0], std::this_thread::get_id());
    std::set<std::thread::id> distinct(threads.begin(), threads.end());
    ASSERT_EQ(distinct.size(), parts);
    helpers_seen.insert(threads.begin() + 1, threads.end());
  }
  EXPECT_EQ(helpers_seen.size(), 3u) << "the same three helpers serve every job";
  EXPECT_THROW(pool.run(5, [](size_t) {}), std::logic_error);
}

TEST(ForkJoinPool, AnErrorInAnyPartReachesTheCallerAfterAllPartsEnd) {
  ForkJoinPool pool(2);
  for (size_t failing : {0u, 1u, 2u}) {
    std::atomic<int> finished{0};
    EXPECT_THROW(pool.run(3,
                          [&](size_t part) {
                            if (part == failing) throw std::runtime_error("part failed");
                            ++finished;
                          }),
                 std::runtime_error);
    EXPECT_EQ(finished.load(), 2);
  }
  // Still usable afterwards.
  std::atomic<int> ran{0};
  pool.run(3, [&](size_t) { ++ran; });
  EXPECT_EQ(ran.load(), 3);
  ForkJoinPool alone(0);
  alone.run(1, [&](size_t) { ++ran; });
  EXPECT_EQ(ran.load(), 4);
}

}  // namespace
}  // namespace j2v
