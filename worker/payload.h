// Reading a job's payload (a msgpack map) into typed fields, with bad_payload messages that name
// the field ("exec.argv: expected array of str, got str").
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/protocol.h"
#include "common/result.h"

namespace kiln::worker {

// The most msgpack values (every element and key, at any depth) a payload may hold: 24 MB once
// unpacked. An exec job with 100,000 arguments and as many variables holds about 300,000.
inline constexpr uint64_t kMaxPayloadObjects = 1'000'000;

class Payload {
 public:
  // Unpacks the payload of a job of `kind`; fails unless it is a map of at most
  // kMaxPayloadObjects values.
  static Expected<Payload> parse(std::string_view kind, const proto::RawObject& raw);

  // Each returns false after recording the first problem in error(). An absent key leaves `out`
  // as it is and succeeds unless `required`.
  bool get(const char* key, std::string& out, bool required = false);
  bool get(const char* key, uint64_t& out, bool required = false);
  bool get(const char* key, int64_t& out, bool required = false);
  bool get(const char* key, bool& out, bool required = false);
  bool get(const char* key, std::vector<std::string>& out, bool required = false);
  bool get(const char* key, std::vector<std::pair<std::string, std::string>>& out,
           bool required = false);
  // A map of str to [uint, uint] (`rlimits`: name -> [soft, hard]).
  bool get(const char* key, std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>>& out,
           bool required = false);
  bool get_bin(const char* key, std::string& out, bool required = false);
  bool has(const char* key) const { return find(key) != nullptr; }

  // Records a problem with a field found by the caller ("must not be empty").
  bool invalid(const char* key, const std::string& what);
  const std::string& error() const { return error_; }

 private:
  Payload() = default;
  const msgpack::object* find(const char* key) const;
  // The value of `key` if present and of `type`; records an error otherwise.
  const msgpack::object* typed(const char* key, msgpack::type::object_type type,
                               const char* expected, bool required, bool& ok);

  std::string kind_;
  msgpack::object_handle handle_;
  std::string error_;
};

}  // namespace kiln::worker
