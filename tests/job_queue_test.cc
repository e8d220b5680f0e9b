// The queue alone: turns between connections, priority, limits in jobs and bytes, pausing.
#include "supervisor/job_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kiln::supervisor {
namespace {

PoolJob job(ClientId client, uint64_t id, std::size_t bytes = 1) {
  PoolJob j;
  j.client = client;
  j.id = id;
  j.kind = "echo";
  j.payload.bytes = std::string(bytes, '\xc0');
  return j;
}

// "A1 B1 ..." for what pop() gives until it gives nothing.
std::string drain(JobQueue& q, bool ignore_pauses = false) {
  std::string order;
  while (std::optional<PoolJob> j = q.pop(ignore_pauses)) {
    order += (order.empty() ? "" : " ") + std::string(1, static_cast<char>('A' + j->client)) +
             std::to_string(j->id);
  }
  return order;
}

TEST(JobQueue, ConnectionsTakeTurnsAndEachKeepsItsSubmitOrder) {
  JobQueue q({});
  for (uint64_t id = 1; id <= 5; ++id) q.push(job(0, id), 0);
  for (uint64_t id = 1; id <= 2; ++id) q.push(job(1, id), 0);
  EXPECT_EQ(drain(q), "A1 B1 A2 B2 A3 A4 A5");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(JobQueue, ANewcomerGetsTheNextTurnNotTheFloodsBacklog) {
  JobQueue q({});
  for (uint64_t id = 1; id <= 8; ++id) q.push(job(0, id), 0);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.pop());  // A1..A4 ran
  q.push(job(1, 1), 0);
  q.push(job(1, 2), 0);
  EXPECT_EQ(drain(q), "B1 A5 B2 A6 A7 A8") << "B neither waits for A's backlog nor jumps it";
}

TEST(JobQueue, PriorityComesBeforeTurns) {
  JobQueue q({});
  q.push(job(0, 1), 0);
  q.push(job(0, 2), 0);
  q.push(job(1, 1), -1);
  q.push(job(1, 2), 7);
  EXPECT_EQ(drain(q), "B2 A1 A2 B1");
}

TEST(JobQueue, LimitsInJobsAndBytesNameTheirOptions) {
  constexpr uint64_t kMiB = 1 << 20;
  JobQueue q({.max_jobs = 4,
              .max_bytes = 100 * kMiB,
              .max_client_jobs = 2,
              .max_client_bytes = 60 * kMiB});
  EXPECT_EQ(q.refuse(0, 61 * kMiB),
            "this connection already has 0.0 MiB of payloads waiting and this one is 61.0 MiB "
            "(--max-client-queue-mb 60)");
  q.push(job(0, 1, 50 * kMiB), 0);
  EXPECT_EQ(q.refuse(0, 11 * kMiB),
            "this connection already has 50.0 MiB of payloads waiting and this one is 11.0 MiB "
            "(--max-client-queue-mb 60)");
  EXPECT_EQ(q.refuse(0, 10 * kMiB), "");
  q.push(job(0, 2, 10 * kMiB), 0);
  EXPECT_EQ(q.refuse(0, 1), "this connection already has 2 jobs waiting (--max-client-queue)");
  EXPECT_EQ(q.refuse(1, 41 * kMiB),
            "the queue already holds 60.0 MiB of payloads and this one is 41.0 MiB "
            "(--max-queue-mb 100)");
  EXPECT_EQ(q.refuse(1, 40 * kMiB), "") << "another connection still has room";
  q.push(job(1, 1, 20 * kMiB), 0);
  q.push(job(2, 1, 10), 0);
  EXPECT_EQ(q.refuse(3, 1), "the queue already holds 4 jobs (--max-queue)");
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.bytes(), 80 * kMiB + 10);
}

TEST(JobQueue, APausedConnectionsJobsWaitWhileOthersRun) {
  JobQueue q({});
  q.push(job(0, 1), 0);
  q.push(job(0, 2), 0);
  q.push(job(1, 1), 0);
  q.set_paused(0, true);
  EXPECT_TRUE(q.paused(0));
  EXPECT_EQ(drain(q), "B1");
  EXPECT_EQ(q.size(), 2u) << "A's jobs are kept, not dropped";
  q.push(job(0, 3), 0);  // a paused connection may still queue
  q.set_paused(0, false);
  EXPECT_EQ(drain(q), "A1 A2 A3");
  q.push(job(0, 4), 0);
  q.set_paused(0, true);
  EXPECT_EQ(drain(q, /*ignore_pauses=*/true), "A4") << "a draining shutdown runs everything";
}

TEST(JobQueue, AJobPutBackReturnsToItsPlaceWhateverTheLimits) {
  QueueLimits limits;
  limits.max_jobs = 2;
  JobQueue q(limits);
  EXPECT_EQ(q.top_priority(), std::nullopt);
  q.push(job(0, 1, 10), 0);
  q.push(job(0, 2, 10), 0);
  std::optional<PoolJob> first = q.pop();
  q.push(job(1, 1, 10), 3);
  EXPECT_EQ(q.top_priority(), std::optional<int64_t>(3));
  EXPECT_NE(q.refuse(0, 10), "") << "full";
  q.put_back(std::move(*first));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.bytes(), 30u);
  EXPECT_EQ(drain(q), "B1 A1 A2");
}

TEST(JobQueue, CancelAndClientGoneTakeExactlyTheirJobs) {
  JobQueue q({});
  const JobQueue::Key a2 = [&] {
    q.push(job(0, 1, 5), 0);
    return q.push(job(0, 2, 7), 0);
  }();
  q.push(job(1, 1, 3), 0);
  ASSERT_EQ(q.take(0, a2)->id, 2u);
  EXPECT_FALSE(q.take(0, a2)) << "taken once";
  EXPECT_EQ(q.bytes(), 8u);
  const std::vector<PoolJob> gone = q.take_client(1);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(drain(q), "A1");
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
}

}  // namespace
}  // namespace kiln::supervisor
