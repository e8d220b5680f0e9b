// Compiling 200 small generated C files with 2 jobs at a time: `kiln compile-db --workers 2`
// over their compile_commands.json, `make -j2`, and `xargs -P2 cc -c`. Each run starts from no
// object files, and each tool's own start-up counts (kiln's includes starting its pool).
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench/bench.h"

namespace kiln::bench {
namespace {

namespace fs = std::filesystem;

// A translation unit with some work in it: a few functions the optimizer has to look at.
std::string source(int i) {
  std::string s = "#include <stdint.h>\n#include <string.h>\n";
  for (int f = 0; f < 6; ++f) {
    const std::string name = "f" + std::to_string(i) + "_" + std::to_string(f);
    s += "uint64_t " + name +
         "(const char* p, uint64_t n) {\n  uint64_t h = " + std::to_string(i * 31 + f) +
         ";\n  for (uint64_t k = 0; k < n; ++k) h = (h ^ (uint8_t)p[k]) * 1099511628211u;\n"
         "  return h + strlen(p);\n}\n";
  }
  return s;
}

void generate(const fs::path& dir, int files) {
  std::ofstream cdb(dir / "compile_commands.json");
  cdb << "[\n";
  for (int i = 0; i < files; ++i) {
    const std::string name = "unit" + std::to_string(i) + ".c";
    std::ofstream(dir / name) << source(i);
    cdb << (i ? ",\n" : "") << R"(  {"directory": ")" << dir.string()
        << R"(", "arguments": ["cc", "-O2", "-c", ")" << name << R"("], "file": ")" << name
        << "\"}";
  }
  cdb << "\n]\n";
  std::ofstream(dir / "Makefile") << "OBJS := $(patsubst %.c,%.o,$(wildcard *.c))\n"
                                     "all: $(OBJS)\n"
                                     "%.o: %.c\n\tcc -O2 -c $<\n";
}

void remove_objects(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".o") fs::remove(e.path());
  }
}

}  // namespace
}  // namespace kiln::bench

int main(int argc, char** argv) {
  using namespace kiln::bench;
  const Options o = parse_options(argc, argv, "compile generated C files: Kiln, make, xargs");
  const int files = o.quick ? 20 : 200;
  char tmpl[] = "/tmp/kiln-compile-bench.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) die("mkdtemp failed");
  const fs::path dir = tmpl;
  generate(dir, files);
  const std::string kiln = kiln::beside_self("kiln");
  const std::vector<std::string> kiln_cmd = {kiln, "compile-db", "--workers", "2",
                                             (dir / "compile_commands.json").string()};
  const std::string xargs_cmd = "ls *.c | xargs -P2 -n1 cc -O2 -c";
  std::vector<double> k, m, x;
  for (int round = 0; round < o.rounds; ++round) {
    remove_objects(dir);
    m.push_back(time_command({"make", "-j2", "-s"}, dir.string()));
    remove_objects(dir);
    k.push_back(time_command(kiln_cmd, dir.string()));
    remove_objects(dir);
    x.push_back(time_command({"sh", "-c", xargs_cmd}, dir.string()));
    std::printf("round %d: make -j2 %.0f ms, kiln %.0f ms, xargs %.0f ms\n", round + 1,
                m.back() / 1000, k.back() / 1000, x.back() / 1000);
  }
  fs::remove_all(dir);
  const Summary ks = summarize(k), ms = summarize(m), xs = summarize(x);
  const std::string name = "compile " + std::to_string(files) + " small C files, 2 at a time";
  row(o.figure(name), show_ms(ks), "make -j2 " + show_ms(ms), show_ratio(ks.median / ms.median),
      "<= 1.03x make -j2", ks.median / ms.median <= 1.03);
  row(o.figure(name + ", against xargs -P2"), show_ms(ks), "xargs -P2 cc -c " + show_ms(xs),
      show_ratio(ks.median / xs.median), "-", std::nullopt);
  return 0;
}
