// The jobs waiting for a worker, shared fairly between client connections and bounded in jobs
// and bytes, in all and per connection.
//
// Order: higher priority first; among equal priorities, the connections take turns (start-time
// fair queuing: a connection's n-th waiting job is stamped with its own counter, which starts at
// the stamp of the last job dispatched when the connection's queue was empty, so a newcomer
// neither waits for an old flood nor jumps ahead of it by more than its share); within one
// connection, submit order. A paused connection (one that is not reading its answers) has its
// jobs kept back, so unread answers cannot grow without bound; pop(ignore_pauses) is for a
// draining shutdown, which must finish every job.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/protocol.h"

namespace kiln::supervisor {

using ClientId = uint64_t;
using Micros = uint64_t;  // a point on the environment's monotonic clock, in microseconds

// A queued job's place: higher priority first, then its connection's turn, then submit order.
struct QueueKey {
  int64_t neg_priority = 0;
  uint64_t stamp = 0;
  uint64_t seq = 0;  // global submit order: the last tie-break
  auto operator<=>(const QueueKey&) const = default;
};

struct PoolJob {
  ClientId client = 0;
  uint64_t id = 0;
  std::string kind;
  proto::RawObject payload;
  uint64_t timeout_ms = 0;
  bool notify_started = false;  // its client asked for a `started` message
  Micros submitted = 0;
  Micros started = 0;
  std::string name;  // job_name(), given when it starts
  QueueKey key;      // given by JobQueue::push; a job put back returns to the same place
  // distcc hosts (supervisor/hosts.h): whether it may go to one (unknown until a host slot
  // looks), and the hosts that failed it (bit i: host i), which it does not go to again.
  enum class Remote : uint8_t { kUnknown, kYes, kNo } remote = Remote::kUnknown;
  uint64_t failed_hosts = 0;
};

// How loaded a pool is, for a timeline's counters.
struct PoolLoad {
  std::size_t queued = 0;
  std::size_t running = 0;
  std::size_t alive = 0;  // workers up (idle or busy)
};

struct QueueLimits {
  std::size_t max_jobs = 100000;             // --max-queue
  uint64_t max_bytes = 1024ull << 20;        // --max-queue-mb: payload bytes of every waiting job
  std::size_t max_client_jobs = 10000;       // --max-client-queue
  uint64_t max_client_bytes = 256ull << 20;  // --max-client-queue-mb
};

class JobQueue {
 public:
  // Where a queued job is, to take it back (cancel).
  using Key = QueueKey;

  explicit JobQueue(QueueLimits limits) : limits_(limits) {}

  // Why a job of `bytes` payload bytes from `client` cannot wait now ("" when it can), naming the
  // limit and its option.
  std::string refuse(ClientId client, std::size_t bytes) const;
  Key push(PoolJob job, int64_t priority);
  // A job taken out earlier goes back to its place (job.key), ahead of everything pushed after
  // it; it was accepted once, so no limit refuses it.
  Key put_back(PoolJob job);
  // The priority of the job pop() would give, if any.
  std::optional<int64_t> top_priority() const;
  // The queued job at `key`, taken out; nullopt if it is not queued.
  std::optional<PoolJob> take(ClientId client, const Key& key);
  // The next job to run, taken out: nullopt when none is (or none of an unpaused connection).
  std::optional<PoolJob> pop(bool ignore_pauses = false);
  std::vector<PoolJob> take_client(ClientId client);
  std::vector<PoolJob> take_all();
  void set_paused(ClientId client, bool paused);
  bool paused(ClientId client) const;

  std::size_t size() const { return size_; }
  uint64_t bytes() const { return bytes_; }
  bool empty() const { return size_ == 0; }
  const QueueLimits& limits() const { return limits_; }

 private:
  struct Client {
    std::map<Key, PoolJob> jobs;
    uint64_t bytes = 0;
    uint64_t next_stamp = 0;
    bool paused = false;
  };
  using Head = std::pair<Key, ClientId>;

  void unlist(ClientId id, const Client& c);  // its head leaves the ready set
  void list(ClientId id, const Client& c);    // its head joins it, if it may run
  Key insert(Client& c, PoolJob job);
  PoolJob remove(ClientId id, Client& c, std::map<Key, PoolJob>::iterator it);

  QueueLimits limits_;
  std::map<ClientId, Client> clients_;  // connections with jobs waiting, or paused
  std::set<Head> ready_;                // the head of each unpaused connection with jobs
  std::size_t size_ = 0;
  uint64_t bytes_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t last_stamp_ = 0;  // of the job dispatched last
};

}  // namespace kiln::supervisor
