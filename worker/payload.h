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
  // proto::kMaxPayloadObjects values. Its strings refer into `raw`, which must outlive it.
  static Expected<Payload> parse(std::string_view kind, const proto::RawObject& raw);

  // The value of a field the job requires: a failure that names the field ("selftest.ms:
  // expected uint, got str") when it is missing or of another type.
  Expected<std::string> str(const char* key) const;
  Expected<uint64_t> uint(const char* key) const;
  Expected<int64_t> int64(const char* key) const;

 private:
  Payload() = default;
  // The field `key`, or a failure saying it is missing.
  Expected<const msgpack::object*> find(const char* key) const;
  Failure invalid(const char* key, const std::string& what) const;

  std::string kind_;
  msgpack::object_handle handle_;
};

}  // namespace kiln::worker
