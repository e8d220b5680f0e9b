// The distcc hosts of a pool (kiln-supervisor --distcc HOSTS): parsing distcc's own DISTCC_HOSTS
// syntax, each host's slots, its state (up, or backed off after a failure: why and since when),
// and the jobs it ran. The pool's slots past its local workers are the hosts' slots, in the order
// given, `limit` per host; a job placed on one runs the distcc client with that host alone
// (docs/design.md "distcc hosts"). No clock of its own: the pool passes its time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/result.h"

namespace kiln::supervisor {

// A host's backoff after a failure: 1 s, doubling with each failure in a row, at most 60 s.
inline constexpr uint64_t kHostBackoffFirstUs = 1'000'000;
inline constexpr uint64_t kHostBackoffMaxUs = 60'000'000;
// distcc's own default limit for a host given without /LIMIT.
inline constexpr unsigned kHostDefaultLimit = 4;
// At most this many hosts (a job keeps the hosts that failed it in one 64-bit mask).
inline constexpr std::size_t kMaxHosts = 64;
inline constexpr unsigned kMaxHostLimit = 256;

struct HostSpec {
  std::string spec;  // as given: what DISTCC_HOSTS is set to for a job on this host
  std::string name;  // host[:port] or user@host, for people
  unsigned limit = kHostDefaultLimit;
  bool operator==(const HostSpec&) const = default;
};

// Parses DISTCC_HOSTS syntax: whitespace-separated `HOST[:PORT][/LIMIT][,OPTIONS]` and
// `[USER]@HOST[/LIMIT][:COMMAND][,OPTIONS]`. Only hosts the user named: `localhost` (Kiln's own
// workers are the local slots), `--localslots*`, `--randomize` and `+zeroconf` are refused.
Expected<std::vector<HostSpec>> parse_hosts(const std::string& text);

class Hosts {
 public:
  Hosts() = default;
  // `first_slot`: the pool slot of the first host's first slot.
  Hosts(std::vector<HostSpec> hosts, std::size_t first_slot);

  std::size_t size() const { return hosts_.size(); }
  std::size_t slots() const { return slot_host_.size(); }
  // The host whose slot `slot` is, if it is one.
  std::optional<std::size_t> host_of(std::size_t slot) const;
  const HostSpec& spec(std::size_t host) const { return hosts_[host].spec; }
  // Whether a job may be placed on `host` now (up, or its backoff is over: a retry).
  bool usable(std::size_t host, uint64_t now_us) const;

  // A job it ran ended: compiled (or the compiler's error, which is no fault of the host).
  void succeeded(std::size_t host);
  // It failed a job (distcc's exit status and words): backed off, the reason kept.
  void failed(std::size_t host, const std::string& why, uint64_t now_us);

  // For stats: each host's slots, jobs, state and reason (`running` is the pool's to fill).
  std::vector<proto::HostInfo> info(uint64_t now_us) const;

 private:
  struct Host {
    HostSpec spec;
    uint64_t jobs = 0, failures = 0;
    int failures_in_row = 0;
    uint64_t backoff_since = 0, backoff_until = 0;  // 0: up
    std::string reason;                             // the last failure
  };
  std::vector<Host> hosts_;
  std::vector<std::size_t> slot_host_;  // host of each host slot
  std::size_t first_slot_ = 0;
};

}  // namespace kiln::supervisor
