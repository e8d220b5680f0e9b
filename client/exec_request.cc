#include "client/exec_request.h"

namespace kiln::client {

proto::RawObject exec_payload(const ExecRequest& r) {
  proto::ExecRequest m;
  m.argv = r.argv;
  m.cwd = r.cwd;
  if (!r.env.empty()) m.env = r.env;
  if (r.clear_env) m.clear_env = true;
  if (r.stdin_data) m.stdin_data = proto::Bytes{*r.stdin_data};
  m.umask = r.umask;
  m.nice = r.nice;
  if (!r.rlimits.empty()) m.rlimits = r.rlimits;
  return proto::encode_exec_request(m);
}

}  // namespace kiln::client
