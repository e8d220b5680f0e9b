#include "supervisor/hosts.h"

#include <algorithm>
#include <charconv>
#include <sstream>

#include "common/text.h"

namespace kiln::supervisor {
namespace {

// The /LIMIT of one host spec, if it has one: the digits after the first '/'.
Expected<unsigned> limit_of(const std::string& spec) {
  const std::size_t slash = spec.find('/');
  if (slash == std::string::npos) return kHostDefaultLimit;
  const char* begin = spec.data() + slash + 1;
  const char* end = begin;
  while (end < spec.data() + spec.size() && *end >= '0' && *end <= '9') ++end;
  unsigned limit = 0;
  const auto [ptr, ec] = std::from_chars(begin, end, limit);
  if (begin == end || ec != std::errc() || limit == 0 || limit > kMaxHostLimit) {
    return fail("distcc host \"" + printable(spec, 80) + "\": its /LIMIT must be from 1 to " +
                std::to_string(kMaxHostLimit));
  }
  return limit;
}

// host[:port] or user@host: the spec without its /LIMIT and ,OPTIONS.
std::string name_of(const std::string& spec) {
  std::string name = spec.substr(0, spec.find_first_of("/,"));
  // The old style HOST/LIMIT:PORT keeps its port.
  const std::size_t slash = spec.find('/');
  if (slash != std::string::npos && spec[0] != '@' && spec.find('@') == std::string::npos) {
    const std::size_t colon = spec.find(':', slash);
    if (colon != std::string::npos) {
      name += spec.substr(colon, spec.find(',', colon) - colon);
    }
  }
  return name;
}

}  // namespace

Expected<std::vector<HostSpec>> parse_hosts(const std::string& text) {
  std::vector<HostSpec> hosts;
  std::istringstream in(text);
  std::string spec;
  while (in >> spec) {
    const std::string shown = "distcc host \"" + printable(spec, 80) + "\"";
    if (spec[0] == '-' || spec[0] == '+') {
      return fail(shown +
                  ": Kiln places every job itself and uses only the hosts given, so "
                  "--randomize, --localslots and +zeroconf are not taken");
    }
    const std::string name = name_of(spec);
    if (name.empty() || name == "localhost" || name.rfind("localhost:", 0) == 0 ||
        name.back() == '@') {
      return fail(shown + (name.rfind("localhost", 0) == 0
                               ? ": localhost is no host (Kiln's own workers are the local slots)"
                               : ": no host name"));
    }
    Expected<unsigned> limit = limit_of(spec);
    if (!limit) return fail(limit.error());
    hosts.push_back(HostSpec{spec, name, *limit});
  }
  if (hosts.size() > kMaxHosts) {
    return fail("at most " + std::to_string(kMaxHosts) + " distcc hosts, got " +
                std::to_string(hosts.size()));
  }
  return hosts;
}

Hosts::Hosts(std::vector<HostSpec> hosts, std::size_t first_slot) : first_slot_(first_slot) {
  for (HostSpec& spec : hosts) {
    for (unsigned i = 0; i < spec.limit; ++i) slot_host_.push_back(hosts_.size());
    Host& h = hosts_.emplace_back();
    h.spec = std::move(spec);
  }
}

std::optional<std::size_t> Hosts::host_of(std::size_t slot) const {
  if (slot < first_slot_ || slot - first_slot_ >= slot_host_.size()) return std::nullopt;
  return slot_host_[slot - first_slot_];
}

bool Hosts::usable(std::size_t host, uint64_t now_us) const {
  return now_us >= hosts_[host].backoff_until;
}

void Hosts::succeeded(std::size_t host) {
  Host& h = hosts_[host];
  ++h.jobs;
  h.failures_in_row = 0;
  h.backoff_since = h.backoff_until = 0;
}

void Hosts::failed(std::size_t host, const std::string& why, uint64_t now_us) {
  Host& h = hosts_[host];
  ++h.failures;
  const int doublings = std::min(h.failures_in_row++, 30);
  const uint64_t delay = std::min(kHostBackoffFirstUs << doublings, kHostBackoffMaxUs);
  // The first failure of a run starts the backoff's "since"; more failures keep it.
  if (h.backoff_until == 0) h.backoff_since = now_us;
  h.backoff_until = now_us + delay;
  h.reason = why;
}

std::vector<proto::HostInfo> Hosts::info(uint64_t now_us) const {
  std::vector<proto::HostInfo> out;
  for (const Host& h : hosts_) {
    proto::HostInfo i;
    i.host = h.spec.name;
    i.slots = h.spec.limit;
    i.jobs = h.jobs;
    i.failures = h.failures;
    i.state = h.backoff_until == 0 ? "up" : "backoff";
    if (!h.reason.empty()) i.reason = h.reason;
    if (h.backoff_until != 0) {
      i.since_ms = (now_us - std::min(now_us, h.backoff_since)) / 1000;
      i.retry_in_ms = (h.backoff_until - std::min(h.backoff_until, now_us)) / 1000;
    }
    out.push_back(std::move(i));
  }
  return out;
}

}  // namespace kiln::supervisor
