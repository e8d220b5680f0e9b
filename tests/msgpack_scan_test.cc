#include <gtest/gtest.h>

#include <string>

#include "common/msgpack_scan.h"

namespace kiln::mp {
namespace {

bool skips(const std::string& bytes, std::size_t* end = nullptr, std::string* err = nullptr) {
  std::size_t off = 0;
  const Expected<void> skipped = skip_object(bytes, off, kMaxDepth);
  if (end != nullptr) *end = off;
  if (err != nullptr && !skipped) *err = skipped.error();
  return skipped.ok();
}

TEST(MsgpackScan, SkipsScalarsOfEveryWidth) {
  const std::string cases[] = {
      std::string("\x05", 1),
      std::string("\xff", 1),
      std::string("\xc0", 1),
      std::string("\xc3", 1),
      std::string("\xcc\x01", 2),
      std::string("\xcd\x01\x02", 3),
      std::string("\xce\0\0\0\1", 5),
      std::string("\xcf\0\0\0\0\0\0\0\1", 9),
      std::string("\xd3\0\0\0\0\0\0\0\1", 9),
      std::string("\xca\0\0\0\0", 5),
      std::string("\xa3"
                  "abc",
                  4),
      std::string("\xd9\x02"
                  "ab",
                  4),
      std::string("\xc4\x01\x00", 3),
      std::string("\xd4\x01\x02", 3),
      std::string("\xc7\x01\x05\x00", 4),
  };
  for (const auto& c : cases) {
    std::size_t end = 0;
    EXPECT_TRUE(skips(c, &end)) << testing::PrintToString(c);
    EXPECT_EQ(end, c.size()) << testing::PrintToString(c);
  }
}

TEST(MsgpackScan, StopsAfterOneObject) {
  std::size_t end = 0;
  EXPECT_TRUE(skips(std::string("\x92\x01\x02\xc0", 4), &end));
  EXPECT_EQ(end, 3u);
}

TEST(MsgpackScan, RejectsAnArray32BombWithoutAllocating) {
  std::string err;
  EXPECT_FALSE(skips(std::string("\xdd\xff\xff\xff\xff", 5), nullptr, &err));
  EXPECT_EQ(err, "truncated: container declares more than the body");
}

TEST(MsgpackScan, RejectsAMap32Bomb) {
  EXPECT_FALSE(skips(std::string("\xdf\xff\xff\xff\xff\x01\x02", 7)));
}

TEST(MsgpackScan, RejectsStrLongerThanTheBytes) {
  EXPECT_FALSE(
      skips(std::string("\xdb\x00\x01\x00\x00"
                        "abc",
                        8)));
}

TEST(MsgpackScan, RejectsNeverUsedByte) {
  std::string err;
  EXPECT_FALSE(skips(std::string("\x91\xc1", 2), nullptr, &err));
  EXPECT_EQ(err, "invalid byte 0xc1 at offset 1");
}

TEST(MsgpackScan, BoundsNesting) {
  std::string deep(kMaxDepth, '\x91');
  deep += '\x01';
  EXPECT_TRUE(skips(deep));
  std::string deeper(kMaxDepth + 1, '\x91');
  deeper += '\x01';
  std::string err;
  EXPECT_FALSE(skips(deeper, nullptr, &err));
  EXPECT_EQ(err, "nesting deeper than 64");
  // 100,000 levels fail as fast as 65.
  std::string very_deep(100000, '\x91');
  EXPECT_FALSE(skips(very_deep));
}

TEST(MsgpackScan, ReadsHeaders) {
  Header h;
  ASSERT_TRUE(read_header(std::string("\xcd\x01\x02", 3), 0, h));
  EXPECT_EQ(h.kind, Kind::kUint);
  EXPECT_EQ(h.value, 0x0102u);
  ASSERT_TRUE(read_header(std::string("\xda\x00\x03", 3), 0, h));
  EXPECT_EQ(h.kind, Kind::kStr);
  EXPECT_EQ(h.size, 3u);
  EXPECT_EQ(h.header_len, 3u);
  EXPECT_FALSE(read_header(std::string("\xcd\x01", 2), 0, h));
  EXPECT_STREQ(kind_name(Kind::kBin), "bin");
}

}  // namespace
}  // namespace kiln::mp
