// Reading a job's payload (a msgpack map) into typed fields, with bad_payload messages that name
// the field ("selftest.ms: expected uint, got str"). The exec job's payload has its own type
// (proto::ExecRequest); this serves selftest.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "common/protocol.h"
#include "common/result.h"

namespace kiln::worker {

class Payload {
 public:
  // Unpacks the payload of a job of `kind`; fails unless it is a map of at most
  // proto::kMaxPayloadObjects values.
  static Expected<Payload> parse(std::string_view kind, const proto::RawObject& raw);

  // Each returns false after recording the first problem in error(). An absent key leaves `out`
  // as it is and succeeds unless `required`.
  bool get(const char* key, std::string& out, bool required = false);
  bool get(const char* key, uint64_t& out, bool required = false);
  bool get(const char* key, int64_t& out, bool required = false);
  const std::string& error() const { return error_; }

 private:
  Payload() = default;
  const msgpack::object* find(const char* key) const;
  // Records a problem with a field; returns false.
  bool invalid(const char* key, const std::string& what);
  // The value of `key` if present and of `type`; records an error otherwise.
  const msgpack::object* typed(const char* key, msgpack::type::object_type type,
                               const char* expected, bool required, bool& ok);

  std::string kind_;
  msgpack::object_handle handle_;
  std::string error_;
};

}  // namespace kiln::worker
