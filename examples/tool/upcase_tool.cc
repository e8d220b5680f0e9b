// A warm tool in a few lines (docs/protocol.md "Tool link"): jobs of its kind take a string and
// answer it in capitals, with how many jobs this process has served, which shows that it stays
// warm between jobs. Run it with
//
//   kiln-supervisor --tool upcase=/path/to/kiln-upcase-tool ...
//   kiln run --tool upcase=build/bin/kiln-upcase-tool --kind upcase '"hello"'
#include <cctype>
#include <string>

#include "client/tool.h"

struct Answer {
  std::string text;
  long served;
  MSGPACK_DEFINE_MAP(text, served);
};

int main() {
  long served = 0;  // warm state: kept from one job to the next
  return kiln::tool::serve([&](const kiln::tool::Job& job) {
    const msgpack::object_handle payload = job.unpack();
    if (payload->type != msgpack::type::STR) return kiln::tool::Reply::bad_payload("expected str");
    std::string text = payload->as<std::string>();
    for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return kiln::tool::Reply::of(Answer{text, ++served});
  });
}
