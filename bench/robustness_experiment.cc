// robustness_experiment: f of n Fashion-MNIST clients poison their updates;
// how far does each strategy's test accuracy fall? (bench/robustness.h)
//
// Usage: robustness_experiment [--clients 11] [--malicious 2] [--rounds 5]
//          [--examples-per-client 800] [--model 2nn] [--batch 32] [--lr 0.05]
//          [--strategies fedavg,fedmedian,fedtrimmedavg,krum,multikrum,bulyan]
//          [--attacks none,sign_flip,noise] [--seed 42]
//          [--data-dir /usr/share/datasets/fashion-mnist]
// An attack is MODE or MODE:SCALE (sign_flip:10, noise:1; client/attack.h).
// Every strategy is also run clean (attack none), and FedAvg clean as the
// reference. Prints a Markdown table: the final test accuracy of each run,
// its drop from the same strategy's clean run, and from clean FedAvg.
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/robustness.h"
#include "client/trainer.h"
#include "common/logging.h"
#include "common/status.h"

namespace shoal::bench {
namespace {

struct Flags {
  RobustnessOptions options;
  std::vector<std::string> strategies = {"fedavg", "fedmedian", "fedtrimmedavg",
                                         "krum",   "multikrum", "bulyan"};
  std::vector<std::string> attacks = {"none", "sign_flip", "noise"};
};

absl::Status BadFlag(const std::string& flag, const std::string& value) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad value '", value, "' for ", flag));
}

template <typename T>
absl::Status ParseNumber(const std::string& flag, const std::string& value,
                         T* out) {
  if constexpr (std::is_floating_point_v<T>) {
    if (!absl::SimpleAtod(value, out)) return BadFlag(flag, value);
  } else {
    if (!absl::SimpleAtoi(value, out)) return BadFlag(flag, value);
  }
  return absl::OkStatus();
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  RobustnessOptions& o = f.options;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
    }
    const std::string v = argv[i + 1];
    absl::Status parsed;
    if (flag == "--clients") {
      parsed = ParseNumber(flag, v, &o.num_clients);
    } else if (flag == "--malicious") {
      parsed = ParseNumber(flag, v, &o.num_malicious);
    } else if (flag == "--rounds") {
      parsed = ParseNumber(flag, v, &o.rounds);
    } else if (flag == "--examples-per-client") {
      parsed = ParseNumber(flag, v, &o.examples_per_client);
    } else if (flag == "--batch") {
      parsed = ParseNumber(flag, v, &o.batch_size);
    } else if (flag == "--lr") {
      parsed = ParseNumber(flag, v, &o.learning_rate);
    } else if (flag == "--seed") {
      parsed = ParseNumber(flag, v, &o.seed);
    } else if (flag == "--model") {
      o.model = v;
    } else if (flag == "--data-dir") {
      o.data_dir = v;
    } else if (flag == "--strategies") {
      f.strategies = absl::StrSplit(v, ',', absl::SkipEmpty());
    } else if (flag == "--attacks") {
      f.attacks = absl::StrSplit(v, ',', absl::SkipEmpty());
    } else {
      parsed = absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag));
    }
    SHOAL_RETURN_IF_ERROR(parsed);
  }
  SHOAL_RETURN_IF_ERROR(o.Validate());
  return f;
}

// ParseAttack reads MODE or MODE:SCALE.
absl::StatusOr<AttackOptions> ParseAttack(const std::string& text,
                                                  uint64_t seed) {
  std::pair<std::string, std::string> parts =
      absl::StrSplit(text, absl::MaxSplits(':', 1));
  std::optional<double> scale;
  if (!parts.second.empty()) {
    double s = 0;
    if (!absl::SimpleAtod(parts.second, &s)) return BadFlag("--attacks", text);
    scale = s;
  }
  return ParseAttackOptions(parts.first, scale, seed);
}

std::string AttackLabel(const AttackOptions& a) {
  if (a.mode == AttackMode::kNone) return "none";
  return absl::StrCat(AttackModeName(a.mode),
                      a.mode == AttackMode::kSignFlip ? " x" : " sd ",
                      a.scale);
}

std::string Points(double delta) {
  return absl::StrFormat("%+.2f", 100 * delta);
}

// Notes says what went wrong in a run beyond its accuracy, if anything.
std::string Notes(const TrialResult& r) {
  if (r.refused == 0 && r.rounds_unchanged == 0) return "";
  return absl::StrCat(r.refused, " results refused (first: ", r.first_refusal,
                      "); ", r.rounds_unchanged,
                      " rounds left the model unchanged");
}

absl::Status Main(int argc, char** argv) {
  SHOAL_ASSIGN_OR_RETURN(Flags flags, ParseFlags(argc, argv));
  const RobustnessOptions& o = flags.options;
  std::vector<AttackOptions> attacks;
  for (const std::string& a : flags.attacks) {
    SHOAL_ASSIGN_OR_RETURN(AttackOptions attack,
                           ParseAttack(a, o.seed));
    attacks.push_back(attack);
  }
  SHOAL_RETURN_IF_ERROR(InitLogging("robustness", "error"));
  client::SetComputeThreads(1);
  const absl::Time start = absl::Now();
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<RobustnessExperiment> experiment,
                         RobustnessExperiment::Create(o));

  std::map<std::string, TrialResult> clean;  // by strategy
  auto run =
      [&](const std::string& strategy,
          const AttackOptions& attack) -> absl::StatusOr<TrialResult> {
    if (attack.mode == AttackMode::kNone && clean.count(strategy)) {
      return clean.at(strategy);
    }
    std::fprintf(stderr, "%-14s %-14s ... ", strategy.c_str(),
                 AttackLabel(attack).c_str());
    std::fflush(stderr);
    SHOAL_ASSIGN_OR_RETURN(TrialResult r, experiment->Run(strategy, attack));
    std::fprintf(stderr, "%6.2f %% in %.1f s\n", 100 * r.final_accuracy(),
                 r.seconds);
    if (attack.mode == AttackMode::kNone) clean[strategy] = r;
    return r;
  };
  const AttackOptions honest;
  SHOAL_ASSIGN_OR_RETURN(TrialResult fedavg_clean, run("fedavg", honest));

  std::printf(
      "%d clients (%d poisoned), %lld examples each, model %s, %u rounds, "
      "E=%u B=%u lr=%g momentum %g, seed %llu\n\n",
      o.num_clients, o.num_malicious,
      static_cast<long long>(o.examples_per_client), o.model.c_str(), o.rounds,
      o.local_epochs, o.batch_size, o.learning_rate, o.momentum,
      static_cast<unsigned long long>(o.seed));
  std::printf(
      "| strategy | attack | test accuracy | vs own clean run (points) | vs "
      "clean FedAvg (points) | notes |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  for (const std::string& strategy : flags.strategies) {
    SHOAL_ASSIGN_OR_RETURN(TrialResult own_clean, run(strategy, honest));
    for (const AttackOptions& attack : attacks) {
      SHOAL_ASSIGN_OR_RETURN(TrialResult r, run(strategy, attack));
      std::printf(
          "| %s | %s | %.2f %% | %s | %s | %s |\n", strategy.c_str(),
          AttackLabel(attack).c_str(), 100 * r.final_accuracy(),
          Points(r.final_accuracy() - own_clean.final_accuracy()).c_str(),
          Points(r.final_accuracy() - fedavg_clean.final_accuracy()).c_str(),
          Notes(r).c_str());
      std::fflush(stdout);
    }
  }
  std::printf("\nClean FedAvg: %.2f %% test accuracy. Wall time %.0f s.\n",
              100 * fedavg_clean.final_accuracy(),
              absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

}  // namespace
}  // namespace shoal::bench

int main(int argc, char** argv) {
  absl::Status status = shoal::bench::Main(argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "robustness_experiment: %s\n",
                 std::string(status.message()).c_str());
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
