#include <gtest/gtest.h>

#include "supervisor/histogram.h"

namespace kiln::supervisor {
namespace {

TEST(Histogram, EmptyIsZero) {
  Histogram h;
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 1; v <= 10; ++v) h.record(v);
  EXPECT_EQ(h.percentile(50), 5u);
  EXPECT_EQ(h.percentile(100), 10u);
  EXPECT_EQ(h.max(), 10u);
}

TEST(Histogram, PercentilesAreWithinOneSixteenth) {
  Histogram h;
  for (uint64_t v = 1; v <= 100000; ++v) h.record(v);
  for (double p : {50.0, 95.0, 99.0}) {
    const double truth = p / 100.0 * 100000;
    const double got = static_cast<double>(h.percentile(p));
    EXPECT_GE(got, truth) << p;
    EXPECT_LE(got, truth * (1 + 1.0 / 16)) << p;
  }
  EXPECT_EQ(h.max(), 100000u);
}

TEST(Histogram, HandlesTheLargestValues) {
  Histogram h;
  h.record(UINT64_MAX);
  EXPECT_EQ(h.percentile(50), UINT64_MAX);
}

}  // namespace
}  // namespace kiln::supervisor
