#include "supervisor/job_queue.h"

#include <algorithm>
#include <cstdio>

namespace kiln::supervisor {

namespace {

std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace

std::string JobQueue::refuse(ClientId client, std::size_t bytes) const {
  const auto it = clients_.find(client);
  const std::size_t own_jobs = it != clients_.end() ? it->second.jobs.size() : 0;
  const uint64_t own_bytes = it != clients_.end() ? it->second.bytes : 0;
  if (size_ >= limits_.max_jobs) {
    return "the queue already holds " + std::to_string(size_) + " jobs (--max-queue)";
  }
  if (own_jobs >= limits_.max_client_jobs) {
    return "this connection already has " + std::to_string(own_jobs) +
           " jobs waiting (--max-client-queue)";
  }
  if (bytes_ + bytes > limits_.max_bytes) {
    return "the queue already holds " + mib(bytes_) + " of payloads and this one is " + mib(bytes) +
           " (--max-queue-mb " + std::to_string(limits_.max_bytes >> 20) + ")";
  }
  if (own_bytes + bytes > limits_.max_client_bytes) {
    return "this connection already has " + mib(own_bytes) +
           " of payloads waiting and this one is " + mib(bytes) + " (--max-client-queue-mb " +
           std::to_string(limits_.max_client_bytes >> 20) + ")";
  }
  return "";
}

JobQueue::Key JobQueue::push(PoolJob job, int64_t priority) {
  const ClientId id = job.client;
  Client& c = clients_[id];
  // A connection that had nothing waiting starts at the current turn, not where it stopped.
  if (c.jobs.empty()) c.next_stamp = std::max(c.next_stamp, last_stamp_);
  job.key = Key{-priority, c.next_stamp++, next_seq_++};
  return insert(c, std::move(job));
}

JobQueue::Key JobQueue::put_back(PoolJob job) {
  return insert(clients_[job.client], std::move(job));
}

JobQueue::Key JobQueue::insert(Client& c, PoolJob job) {
  const ClientId id = job.client;
  const Key key = job.key;
  const std::size_t bytes = job.payload.bytes.size();
  unlist(id, c);
  c.jobs.emplace(key, std::move(job));
  c.bytes += bytes;
  list(id, c);
  ++size_;
  bytes_ += bytes;
  return key;
}

std::optional<int64_t> JobQueue::top_priority() const {
  if (ready_.empty()) return std::nullopt;
  return -ready_.begin()->first.neg_priority;
}

std::optional<PoolJob> JobQueue::take(ClientId client, const Key& key) {
  const auto c = clients_.find(client);
  if (c == clients_.end()) return std::nullopt;
  const auto it = c->second.jobs.find(key);
  if (it == c->second.jobs.end()) return std::nullopt;
  return remove(client, c->second, it);
}

std::optional<PoolJob> JobQueue::pop(bool ignore_pauses) {
  if (!ready_.empty()) {
    const ClientId id = ready_.begin()->second;
    Client& c = clients_.at(id);
    last_stamp_ = c.jobs.begin()->first.stamp;
    return remove(id, c, c.jobs.begin());
  }
  if (!ignore_pauses) return std::nullopt;
  for (auto& [id, c] : clients_) {
    if (!c.jobs.empty()) return remove(id, c, c.jobs.begin());
  }
  return std::nullopt;
}

std::vector<PoolJob> JobQueue::take_client(ClientId client) {
  std::vector<PoolJob> jobs;
  const auto c = clients_.find(client);
  if (c == clients_.end()) return jobs;
  unlist(client, c->second);
  for (auto& [key, job] : c->second.jobs) jobs.push_back(std::move(job));
  size_ -= c->second.jobs.size();
  bytes_ -= c->second.bytes;
  clients_.erase(c);
  return jobs;
}

std::vector<PoolJob> JobQueue::take_all() {
  std::vector<PoolJob> jobs;
  while (!clients_.empty()) {
    std::vector<PoolJob> more = take_client(clients_.begin()->first);
    std::move(more.begin(), more.end(), std::back_inserter(jobs));
  }
  return jobs;
}

void JobQueue::set_paused(ClientId client, bool paused) {
  if (!paused && clients_.count(client) == 0) return;
  Client& c = clients_[client];
  if (c.paused == paused) return;
  unlist(client, c);
  c.paused = paused;
  list(client, c);
  if (!paused && c.jobs.empty()) clients_.erase(client);
}

bool JobQueue::paused(ClientId client) const {
  const auto it = clients_.find(client);
  return it != clients_.end() && it->second.paused;
}

void JobQueue::unlist(ClientId id, const Client& c) {
  if (!c.jobs.empty()) ready_.erase({c.jobs.begin()->first, id});
}

void JobQueue::list(ClientId id, const Client& c) {
  if (!c.jobs.empty() && !c.paused) ready_.insert({c.jobs.begin()->first, id});
}

PoolJob JobQueue::remove(ClientId id, Client& c, std::map<Key, PoolJob>::iterator it) {
  unlist(id, c);
  PoolJob job = std::move(it->second);
  c.jobs.erase(it);
  const std::size_t bytes = job.payload.bytes.size();
  c.bytes -= bytes;
  --size_;
  bytes_ -= bytes;
  if (!c.jobs.empty()) {
    list(id, c);
  } else if (!c.paused) {
    clients_.erase(id);  // when it has jobs again, it starts at the current turn anyway
  }
  return job;
}

}  // namespace kiln::supervisor
