#include "simulation/population.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing.h"

namespace shoal::simulation {
namespace {

using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

Population MustCreate(const PopulationOptions& options) {
  absl::StatusOr<Population> population = Population::Create(options);
  EXPECT_TRUE(population.ok()) << population.status();
  return *std::move(population);
}

PopulationOptions Synthetic(uint64_t num_clients, uint64_t seed) {
  PopulationOptions options;
  options.num_clients = num_clients;
  options.seed = seed;
  return options;
}

std::string WriteTrace(const testing::TempDir& dir, const std::string& name,
                       const std::string& contents) {
  const std::string path = dir.File(name);
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

double Median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2,
                   values.end());
  return values[values.size() / 2];
}

// ---------------------------------------------------------------- options

TEST(PopulationOptionsTest, DefaultsAreValidAndGiveAlwaysAvailableClients) {
  Population population = MustCreate(PopulationOptions());
  EXPECT_EQ(population.size(), 100u);
  EXPECT_EQ(population.Speed(0), 100);
  EXPECT_EQ(population.Speed(99), 100);
  EXPECT_TRUE(population.IsAvailable(42, 1e9, 7));
  EXPECT_EQ(population.OnlineUntil(42, 10), kInf);
  EXPECT_EQ(population.MemoryBytes(), 0u);
}

TEST(PopulationOptionsTest, ValidateNamesTheBadField) {
  struct Case {
    const char* what;
    PopulationOptions options;
    const char* field;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, const char* field, auto mutate) {
    PopulationOptions options;
    mutate(options);
    cases.push_back({what, options, field});
  };
  using Kind = AvailabilityOptions::Kind;
  add("probability 0", "availability.probability", [](PopulationOptions& o) {
    o.availability.kind = Kind::kRandom;
    o.availability.probability = 0;
  });
  add("probability > 1", "availability.probability", [](PopulationOptions& o) {
    o.availability.kind = Kind::kRandom;
    o.availability.probability = 1.01;
  });
  add("online_fraction > 1", "availability.online_fraction",
      [](PopulationOptions& o) {
        o.availability.kind = Kind::kDiurnal;
        o.availability.online_fraction = 1.5;
      });
  add("period 0", "availability.period_s", [](PopulationOptions& o) {
    o.availability.kind = Kind::kDiurnal;
    o.availability.period_s = 0;
  });
  add("sigma < 0", "speed.sigma",
      [](PopulationOptions& o) { o.speed = Distribution::LogNormal(100, -1); });
  add("median 0", "speed.median",
      [](PopulationOptions& o) { o.speed = Distribution::LogNormal(0, 1); });
  add("uniform min > max", "speed.max",
      [](PopulationOptions& o) { o.speed = Distribution::Uniform(20, 10); });
  add("uniform min 0", "speed.min",
      [](PopulationOptions& o) { o.speed = Distribution::Uniform(0, 10); });
  add("constant NaN", "speed.value", [](PopulationOptions& o) {
    o.speed = Distribution::Constant(std::nan(""));
  });
  add("no clients", "num_clients",
      [](PopulationOptions& o) { o.num_clients = 0; });
  add("negative period", "trace_period_s", [](PopulationOptions& o) {
    o.trace_path = "x.csv";
    o.trace_period_s = -1;
  });
  add("period without trace", "trace_period_s",
      [](PopulationOptions& o) { o.trace_period_s = 3600; });

  for (const Case& c : cases) {
    absl::Status status = c.options.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.field)) << c.what;
    EXPECT_EQ(Population::Create(c.options).status(), status) << c.what;
  }
}

TEST(PopulationOptionsTest, OnlyTheFieldsOfTheChosenKindAreChecked) {
  PopulationOptions options;
  options.speed.min = -5;                // unused by constant
  options.availability.probability = 0;  // unused by always
  EXPECT_TRUE(options.Validate().ok()) << options.Validate();
}

TEST(PopulationOptionsTest, KindsParseAndPrintBackAndBadNamesAreNamed) {
  for (auto kind : {Distribution::Kind::kConstant, Distribution::Kind::kUniform,
                    Distribution::Kind::kLogNormal}) {
    EXPECT_EQ(*ParseDistributionKind(DistributionKindName(kind)), kind);
  }
  for (auto kind :
       {AvailabilityOptions::Kind::kAlways, AvailabilityOptions::Kind::kRandom,
        AvailabilityOptions::Kind::kDiurnal}) {
    EXPECT_EQ(*ParseAvailabilityKind(AvailabilityKindName(kind)), kind);
  }
  absl::StatusOr<Distribution::Kind> bad = ParseDistributionKind("normal");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'normal'"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("lognormal"));
  EXPECT_FALSE(ParseAvailabilityKind("sometimes").ok());
}

// ---------------------------------------------------------------- speeds

TEST(DistributionTest, LogNormalMedianOf100kDrawsIsWithinTwoPercent) {
  const Distribution d = Distribution::LogNormal(100, 0.8);
  Rng rng(7);
  std::vector<double> draws(100000);
  for (double& x : draws) x = d.Draw(rng);
  EXPECT_NEAR(Median(draws), 100, 2);
  // log of the draws has standard deviation sigma.
  double sum = 0, sum_sq = 0;
  for (double x : draws) {
    sum += std::log(x);
    sum_sq += std::log(x) * std::log(x);
  }
  const double mean = sum / draws.size();
  EXPECT_NEAR(std::sqrt(sum_sq / draws.size() - mean * mean), 0.8, 0.01);
}

TEST(DistributionTest, UniformStaysWithinMinAndMaxAndAveragesTheMidpoint) {
  const Distribution d = Distribution::Uniform(10, 30);
  Rng rng(3);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    const double x = d.Draw(rng);
    ASSERT_GE(x, 10);
    ASSERT_LE(x, 30);
    sum += x;
  }
  EXPECT_NEAR(sum / 100000, 20, 0.1);  // sd of the mean: 5.77 / 316 = 0.018
}

TEST(DistributionTest, ExtremeLogNormalDrawsStayFiniteAndPositive) {
  const Distribution d = Distribution::LogNormal(1e-300, 10);
  Rng rng(1);
  for (int i = 0; i < 10000; ++i) {
    const double x = d.Draw(rng);
    ASSERT_TRUE(std::isfinite(x) && x > 0) << x;
  }
}

TEST(PopulationTest, SpeedsOfAPopulationFollowTheDistribution) {
  PopulationOptions options = Synthetic(100000, 5);
  options.speed = Distribution::LogNormal(50, 1.0);
  Population population = MustCreate(options);
  std::vector<double> speeds(population.size());
  for (uint64_t c = 0; c < population.size(); ++c) {
    speeds[c] = population.Speed(c);
  }
  EXPECT_NEAR(Median(speeds), 50, 1);
}

// Golden values from an independent Python implementation of SplitMix64 and
// mt19937_64: client 7's stream is mt19937_64(MixSeed(MixSeed(42, 7), 1)).
TEST(PopulationTest, UniformSpeedMatchesTheIndependentlyComputedValue) {
  PopulationOptions options = Synthetic(10, 42);
  options.speed = Distribution::Uniform(10, 30);
  EXPECT_DOUBLE_EQ(MustCreate(options).Speed(7), 29.661044831726791);
}

TEST(PopulationTest, SameSeedGivesSameProfilesAndAnotherSeedDiffers) {
  auto options = [](uint64_t seed) {
    PopulationOptions o = Synthetic(1000, seed);
    o.speed = Distribution::LogNormal(100, 0.5);
    o.availability.kind = AvailabilityOptions::Kind::kRandom;
    o.availability.probability = 0.5;
    return o;
  };
  const Population a = MustCreate(options(11));
  const Population b = MustCreate(options(11));
  const Population c = MustCreate(options(12));
  int same_speed = 0, same_availability = 0;
  for (uint64_t client = 0; client < 1000; ++client) {
    ASSERT_EQ(a.Speed(client), b.Speed(client));
    ASSERT_EQ(a.IsAvailable(client, 0, 3), b.IsAvailable(client, 0, 3));
    same_speed += a.Speed(client) == c.Speed(client);
    same_availability +=
        a.IsAvailable(client, 0, 3) == c.IsAvailable(client, 0, 3);
  }
  EXPECT_EQ(same_speed, 0);
  EXPECT_NEAR(same_availability, 500,
              60);  // independent coins agree half the time
}

TEST(PopulationTest, AMillionClientsCostNoMemoryAndTheLastOneAnswers) {
  PopulationOptions options = Synthetic(1000000, 9);
  options.speed = Distribution::LogNormal(100, 0.8);
  options.availability.kind = AvailabilityOptions::Kind::kDiurnal;
  const Population population = MustCreate(options);
  EXPECT_EQ(population.size(), 1000000u);
  EXPECT_LT(population.MemoryBytes() + sizeof(Population), 1024u);
  const double speed = population.Speed(999999);
  EXPECT_TRUE(std::isfinite(speed) && speed > 0);
  EXPECT_EQ(population.Speed(999999), speed);
  const double until = population.OnlineUntil(999999, 1000);
  EXPECT_EQ(population.IsAvailable(999999, 1000, 1), until > 1000);
  // Past the end: no speed, never available.
  EXPECT_EQ(population.Speed(1000000), 0);
  EXPECT_FALSE(population.IsAvailable(1000000, 1000, 1));
  EXPECT_EQ(population.OnlineUntil(1000000, 1000), 1000);
}

// ---------------------------------------------------------------- availability

TEST(AvailabilityTest,
     RandomAvailabilityMatchesTheProbabilityAndVariesByRound) {
  PopulationOptions options = Synthetic(10000, 21);
  options.availability.kind = AvailabilityOptions::Kind::kRandom;
  options.availability.probability = 0.3;
  const Population population = MustCreate(options);
  int available = 0, changed = 0;
  for (uint64_t client = 0; client < 10000; ++client) {
    for (uint32_t round = 1; round <= 20; ++round) {
      const bool now = population.IsAvailable(client, 60.0 * round, round);
      available += now;
      // Within a round the answer does not depend on time.
      ASSERT_EQ(population.IsAvailable(client, 1e6, round), now);
      if (round > 1)
        changed += now != population.IsAvailable(client, 0, round - 1);
    }
    EXPECT_EQ(population.OnlineUntil(client, 5), kInf);
  }
  // 200,000 draws: standard deviation of the fraction ~0.001.
  EXPECT_NEAR(available / 200000.0, 0.3, 0.005);
  // Independent rounds differ with probability 2 p (1 - p) = 0.42.
  EXPECT_NEAR(changed / 190000.0, 0.42, 0.006);
}

// Golden value: random availability of client 11 (seed 42, p 0.5) in rounds
// 0..9, from UnitOpen(MixSeed(MixSeed(MixSeed(42, 11), 3), round)) in Python.
TEST(AvailabilityTest, RandomRoundsMatchTheIndependentlyComputedValues) {
  PopulationOptions options = Synthetic(20, 42);
  options.availability.kind = AvailabilityOptions::Kind::kRandom;
  options.availability.probability = 0.5;
  const Population population = MustCreate(options);
  const bool expected[10] = {true,  true, true,  false, false,
                             false, true, false, true,  true};
  for (uint32_t round = 0; round < 10; ++round) {
    EXPECT_EQ(population.IsAvailable(11, 0, round), expected[round]) << round;
  }
}

TEST(AvailabilityTest, DiurnalFractionOnlineMatchesOnlineFraction) {
  PopulationOptions options = Synthetic(100000, 4);
  options.availability.kind = AvailabilityOptions::Kind::kDiurnal;
  options.availability.period_s = 86400;
  options.availability.online_fraction = 0.3;
  const Population population = MustCreate(options);
  for (double t : {0.0, 12345.0, 86400.0 * 10 + 7}) {
    int online = 0;
    for (uint64_t client = 0; client < population.size(); ++client) {
      online += population.IsAvailable(client, t, 0);
    }
    EXPECT_NEAR(online / 100000.0, 0.3, 0.006) << t;  // sd 0.0015
  }
}

// Golden value: client 3's phase (seed 42) is 16959.006981883558 s, from
// UnitOpen(MixSeed(MixSeed(42, 3), 2)) * 86400 in Python, so with a quarter
// of a day online it is online in [-phase, 21600 - phase) + k * 86400.
TEST(AvailabilityTest, DiurnalClientIsOnlineForExactlyItsStretch) {
  PopulationOptions options = Synthetic(10, 42);
  options.availability.kind = AvailabilityOptions::Kind::kDiurnal;
  options.availability.period_s = 86400;
  options.availability.online_fraction = 0.25;
  const Population population = MustCreate(options);
  const double end0 = 4640.9930181164418;
  const double start1 = 69440.993018116438;
  const double end1 = 91040.993018116438;

  EXPECT_TRUE(population.IsAvailable(3, 0, 0));
  EXPECT_DOUBLE_EQ(population.OnlineUntil(3, 0), end0);
  EXPECT_DOUBLE_EQ(population.OnlineUntil(3, 4000), end0);
  const double until = population.OnlineUntil(3, 0);
  EXPECT_TRUE(population.IsAvailable(3, std::nextafter(until, 0), 0));
  EXPECT_FALSE(population.IsAvailable(3, until, 0));  // the end is offline
  EXPECT_EQ(population.OnlineUntil(3, until), until);
  EXPECT_FALSE(population.IsAvailable(3, start1 - 0.001, 0));
  EXPECT_EQ(population.OnlineUntil(3, 50000), 50000);
  EXPECT_TRUE(population.IsAvailable(3, start1 + 0.001, 0));
  EXPECT_DOUBLE_EQ(population.OnlineUntil(3, start1 + 0.001), end1);
  // Thirty days later, the same stretch.
  const double month = 30 * 86400.0;
  EXPECT_NEAR(population.OnlineUntil(3, month + 1000), month + end0, 1e-6);
  EXPECT_FALSE(population.IsAvailable(3, population.OnlineUntil(3, month), 0));
}

TEST(AvailabilityTest, DiurnalOnlineFractionOneIsAlwaysOnline) {
  PopulationOptions options = Synthetic(100, 1);
  options.availability.kind = AvailabilityOptions::Kind::kDiurnal;
  options.availability.online_fraction = 1;
  const Population population = MustCreate(options);
  for (uint64_t client = 0; client < 100; ++client) {
    EXPECT_TRUE(population.IsAvailable(client, 5000 * client, 0));
    EXPECT_EQ(population.OnlineUntil(client, 5000 * client), kInf);
  }
}

// ---------------------------------------------------------------- traces

TEST(TraceTest, GoodTraceGivesItsSpeedsAndWindows) {
  testing::TempDir dir;
  PopulationOptions options;
  options.num_clients = 999;  // ignored
  options.trace_path = WriteTrace(dir, "trace.csv",
                                  "# phones, one day\n"
                                  "client,speed,windows\n"
                                  "\n"
                                  "0,50,always\n"
                                  "1,2.5,0-3600 7200-10800\r\n"
                                  "# a comment between rows\n"
                                  "2, 1e3 ,never\n"
                                  "3,10,100-200 200-300   400-500.5\n");
  const Population population = MustCreate(options);
  ASSERT_EQ(population.size(), 4u);
  EXPECT_EQ(population.Speed(0), 50);
  EXPECT_EQ(population.Speed(1), 2.5);
  EXPECT_EQ(population.Speed(2), 1000);
  EXPECT_EQ(population.Speed(3), 10);
  EXPECT_EQ(population.Speed(4), 0);

  EXPECT_TRUE(population.IsAvailable(0, 1e9, 0));
  EXPECT_EQ(population.OnlineUntil(0, 1e9), kInf);

  EXPECT_TRUE(population.IsAvailable(1, 0, 0));
  EXPECT_EQ(population.OnlineUntil(1, 0), 3600);
  EXPECT_EQ(population.OnlineUntil(1, 3599.5), 3600);
  EXPECT_FALSE(population.IsAvailable(1, 3600, 0));
  EXPECT_EQ(population.OnlineUntil(1, 5000), 5000);
  EXPECT_EQ(population.OnlineUntil(1, 7200), 10800);
  EXPECT_FALSE(population.IsAvailable(1, 10800, 0));
  EXPECT_FALSE(population.IsAvailable(1, 86400 + 100, 0));  // no repeat

  EXPECT_FALSE(population.IsAvailable(2, 0, 0));
  EXPECT_EQ(population.OnlineUntil(2, 0), 0);

  EXPECT_FALSE(population.IsAvailable(3, 99, 0));
  EXPECT_EQ(population.OnlineUntil(3, 150), 300);  // touching windows merge
  EXPECT_EQ(population.OnlineUntil(3, 250), 300);
  EXPECT_EQ(population.OnlineUntil(3, 450), 500.5);
  EXPECT_FALSE(population.IsAvailable(3, 350, 0));

  // 4 speeds, 5 offsets, 5 windows (client 3's first two merged).
  EXPECT_EQ(population.MemoryBytes(), 4 * 4 + 5 * 4 + 5 * 16u);
}

TEST(TraceTest, LinkColumnsGiveEachClientsLinksAndOptionsDrawThemOtherwise) {
  testing::TempDir dir;
  PopulationOptions options;
  options.uplink_mbps = Distribution::Constant(7);  // the trace's columns win
  options.trace_path = WriteTrace(dir, "links.csv",
                                  "client,speed,down_mbps,up_mbps,windows\n"
                                  "0,50,100,20,always\n"
                                  "1,5,2.5,0.25,0-3600\n");
  const Population traced = MustCreate(options);
  EXPECT_EQ(traced.DownlinkMbps(0), 100);
  EXPECT_EQ(traced.UplinkMbps(0), 20);
  EXPECT_EQ(traced.DownlinkMbps(1), 2.5);
  EXPECT_EQ(traced.UplinkMbps(1), 0.25);
  EXPECT_EQ(traced.DownlinkMbps(2), 0);
  EXPECT_EQ(traced.Speed(1), 5);
  EXPECT_EQ(traced.OnlineUntil(1, 0), 3600);
  EXPECT_EQ(traced.MemoryBytes(), 3 * 2 * 4 + 3 * 4 + 2 * 16u);

  // Without link columns or options: no link of its own (0).
  PopulationOptions plain;
  plain.num_clients = 10;
  EXPECT_EQ(MustCreate(plain).DownlinkMbps(3), 0);
  // Drawn per client, the same for a seed, independent of the speed draws.
  plain.downlink_mbps = Distribution::LogNormal(10, 1);
  const Population a = MustCreate(plain);
  plain.speed = Distribution::LogNormal(100, 2);
  const Population b = MustCreate(plain);
  EXPECT_EQ(a.DownlinkMbps(3), b.DownlinkMbps(3));
  EXPECT_NE(a.DownlinkMbps(3), a.DownlinkMbps(4));
  EXPECT_EQ(a.UplinkMbps(3), 0);

  plain.uplink_mbps = Distribution::Constant(-1);
  absl::StatusOr<Population> bad = Population::Create(plain);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("uplink_mbps"));
}

TEST(TraceTest, PeriodicTraceRepeatsAndWrapsAcrossThePeriod) {
  testing::TempDir dir;
  PopulationOptions options;
  options.trace_period_s = 86400;
  options.trace_path = WriteTrace(dir, "daily.csv",
                                  "client,speed,windows\n"
                                  "0,1,0-3600 82800-86400\n"
                                  "1,1,always\n"
                                  "2,1,0-86400\n"
                                  "3,1,7200-10800\n");
  const Population population = MustCreate(options);
  const double day = 86400;
  // The evening window runs on into the next morning's.
  EXPECT_EQ(population.OnlineUntil(0, 83000), day + 3600);
  EXPECT_EQ(population.OnlineUntil(0, day + 100), day + 3600);
  EXPECT_EQ(population.OnlineUntil(0, 2 * day + 1000), 2 * day + 3600);
  EXPECT_TRUE(population.IsAvailable(0, 3 * day + 3599, 0));
  EXPECT_FALSE(population.IsAvailable(0, 3 * day + 3600, 0));
  EXPECT_EQ(population.OnlineUntil(0, 3 * day + 50000), 3 * day + 50000);
  EXPECT_EQ(population.OnlineUntil(0, 5 * day - 1), 5 * day + 3600);

  EXPECT_EQ(population.OnlineUntil(1, 10 * day + 5), kInf);
  EXPECT_EQ(population.OnlineUntil(2, 10 * day + 5), kInf);

  EXPECT_FALSE(population.IsAvailable(3, 5 * day + 7199, 0));
  EXPECT_TRUE(population.IsAvailable(3, 5 * day + 7200, 0));
  EXPECT_EQ(population.OnlineUntil(3, 5 * day + 8000), 5 * day + 10800);
  EXPECT_FALSE(population.IsAvailable(3, 5 * day + 10800, 0));
}

TEST(TraceTest, BadTracesAreRefusedNamingFileAndLine) {
  struct Case {
    const char* what;
    std::string rows;  // after a good header on line 1, unless `header`
    int line;
    const char* message;
    bool header = true;
    double period = 0;
  };
  const std::vector<Case> cases = {
      {"wrong header", "client,speed\n0,1,always\n", 1, "header", false},
      {"header-only file", "\n", 0, "no client rows"},
      {"missing field", "0,1\n", 2, "expected 3 fields"},
      {"link columns but 3 fields", "client,speed,down_mbps,up_mbps,windows\n0,1,always\n", 2, "expected 5 fields", false},
      {"zero uplink", "client,speed,down_mbps,up_mbps,windows\n0,1,10,0,always\n", 2, "up_mbps must be a number in (0, 1e6]", false},
      {"link not a number", "client,speed,down_mbps,up_mbps,windows\n0,1,fast,1,always\n", 2, "down_mbps", false},
      {"out-of-order client", "0,1,always\n2,1,always\n", 3, "out of order"},
      {"client not a number", "x,1,always\n", 2, "client 'x'"},
      {"negative speed", "0,-3,always\n", 2, "speed"},
      {"zero speed", "0,1,always\n1,0,always\n", 3, "speed"},
      {"NaN speed", "0,nan,always\n", 2, "speed"},
      {"speed beyond float", "0,1e300,always\n", 2, "float"},
      {"empty windows", "0,1,\n", 2, "windows is empty"},
      {"window without end", "0,1,0-3600 7200\n", 2, "malformed window '7200'"},
      {"window not numbers", "0,1,a-b\n", 2, "malformed window 'a-b'"},
      {"negative start", "0,1,-5-10\n", 2, "starts before 0"},
      {"end before start", "0,1,10-5\n", 2, "does not end after it starts"},
      {"overlapping windows", "0,1,0-100 50-200\n", 2, "overlaps"},
      {"unsorted windows", "0,1,100-200 0-50\n", 2, "overlaps"},
      {"window beyond period", "0,1,always\n1,1,0-4000\n", 3,
       "ends after the trace period", true, 3600},
  };
  testing::TempDir dir;
  int n = 0;
  for (const Case& c : cases) {
    const std::string path =
        WriteTrace(dir, "bad" + std::to_string(n++) + ".csv",
                   (c.header ? "client,speed,windows\n" : "") + c.rows);
    PopulationOptions options;
    options.trace_path = path;
    options.trace_period_s = c.period;
    absl::StatusOr<Population> population = Population::Create(options);
    ASSERT_FALSE(population.ok()) << c.what;
    EXPECT_EQ(population.status().code(), absl::StatusCode::kInvalidArgument)
        << c.what;
    const std::string message(population.status().message());
    const std::string where =
        c.line > 0 ? path + ":" + std::to_string(c.line) + ":" : path + ":";
    EXPECT_THAT(message, HasSubstr(where)) << c.what;
    EXPECT_THAT(message, HasSubstr(c.message)) << c.what;
  }
}

TEST(TraceTest, MissingTraceIsNotFound) {
  testing::TempDir dir;
  PopulationOptions options;
  options.trace_path = dir.File("absent.csv");
  absl::StatusOr<Population> population = Population::Create(options);
  EXPECT_EQ(population.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(population.status().message()),
              HasSubstr("absent.csv"));
}

TEST(TraceTest, AMillionRowTraceFitsInTensOfMegabytes) {
  testing::TempDir dir;
  std::string text = "client,speed,windows\n";
  for (int i = 0; i < 1000000; ++i) {
    text += std::to_string(i) + "," + std::to_string(1 + i % 97) +
            (i % 2 ? ",0-3600 7200-10800\n" : ",always\n");
  }
  PopulationOptions options;
  options.trace_path = WriteTrace(dir, "million.csv", text);
  const Population population = MustCreate(options);
  ASSERT_EQ(population.size(), 1000000u);
  EXPECT_EQ(population.Speed(999999), 1 + 999999 % 97);
  EXPECT_EQ(population.OnlineUntil(999999, 100), 3600);
  EXPECT_EQ(population.OnlineUntil(999998, 100), kInf);
  // 4 + 4 bytes per client and 16 per window: 1.5 windows per client.
  EXPECT_LT(population.MemoryBytes(), 40u << 20);
}

}  // namespace
}  // namespace shoal::simulation
