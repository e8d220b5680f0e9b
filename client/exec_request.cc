#include "client/exec_request.h"

#include <msgpack.hpp>

namespace kiln::client {

proto::RawObject exec_payload(const ExecRequest& r) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  const uint32_t fields = 1 + (r.cwd ? 1 : 0) + (r.env.empty() ? 0 : 1) + (r.clear_env ? 1 : 0) +
                          (r.stdin_data ? 1 : 0) + (r.umask ? 1 : 0) + (r.nice ? 1 : 0) +
                          (r.rlimits.empty() ? 0 : 1);
  pk.pack_map(fields);
  pk.pack("argv");
  pk.pack(r.argv);
  if (r.cwd) {
    pk.pack("cwd");
    pk.pack(*r.cwd);
  }
  if (!r.env.empty()) {
    pk.pack("env");
    pk.pack_map(static_cast<uint32_t>(r.env.size()));
    for (const auto& [k, v] : r.env) {
      pk.pack(k);
      pk.pack(v);
    }
  }
  if (r.clear_env) {
    pk.pack("clear_env");
    pk.pack(true);
  }
  if (r.stdin_data) {
    pk.pack("stdin");
    pk.pack_bin(static_cast<uint32_t>(r.stdin_data->size()));
    pk.pack_bin_body(r.stdin_data->data(), static_cast<uint32_t>(r.stdin_data->size()));
  }
  if (r.umask) {
    pk.pack("umask");
    pk.pack_uint32(*r.umask);
  }
  if (r.nice) {
    pk.pack("nice");
    pk.pack_int32(*r.nice);
  }
  if (!r.rlimits.empty()) {
    pk.pack("rlimits");
    pk.pack_map(static_cast<uint32_t>(r.rlimits.size()));
    for (const auto& [name, limit] : r.rlimits) {
      pk.pack(name);
      pk.pack_array(2);
      pk.pack_uint64(limit.first);
      pk.pack_uint64(limit.second);
    }
  }
  return proto::RawObject{std::string(buf.data(), buf.size())};
}

}  // namespace kiln::client
