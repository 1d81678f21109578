// RdpAccountant: the privacy spent by differentially private federated
// averaging (DP-FedAvg; McMahan, Ramage, Talwar, Zhang, "Learning
// Differentially Private Recurrent Language Models", ICLR 2018), tracked in
// Renyi differential privacy (RDP) and reported as (epsilon, delta)-DP.
//
// The mechanism, one round = one step: every client of the population joins
// the round independently with probability q (Poisson sampling, q = expected
// cohort / population); each joining client's update is clipped to L2 norm
// C; the server adds Gaussian noise N(0, (z C)^2 I) to the sum of the clipped
// updates. z is the noise multiplier. Dividing the noisy sum by a fixed
// number (McMahan et al.'s expected cohort size) is post-processing and
// costs nothing; dividing by the number of clients that actually reported
// is not covered.
//
// Neighbouring relation: add or remove one client with all of its data, so
// the guarantee is user-level (client-level) DP under add/remove-one
// adjacency, and holds for the models of every round, not just the last.
// A fixed-size cohort drawn without replacement is a different mechanism
// (replace-one adjacency) that this class does not account for.
//
// Sources:
//  - Mironov, "Renyi Differential Privacy", CSF 2017 (arXiv:1702.07476):
//    RDP at a fixed order adds up over rounds.
//  - Mironov, Talwar, Zhang, "Renyi Differential Privacy of the Sampled
//    Gaussian Mechanism", 2019 (arXiv:1908.10530), Section 3.3: RDP of one
//    step, log(A_alpha) / (alpha - 1), for integer alpha by the binomial
//    expansion and for fractional alpha by two series split at
//    z0 = z^2 log(1/q - 1) + 1/2 (as TF Privacy's _compute_log_a_frac).
//  - The conversion to (epsilon, delta): Canonne, Kamath, Steinke, "The
//    Discrete Gaussian for Differential Privacy", 2020 (arXiv:2004.00010),
//    Proposition 12, also Balle, Barthe, Gaboardi, Hsu, Sato, AISTATS 2020
//    (arXiv:1905.09982), Theorem 21:
//      epsilon = min over orders alpha of rdp(alpha) + log1p(-1/alpha)
//                - (log(delta) + log(alpha)) / (alpha - 1),
//    never below 0, and 0 at an order whose rdp is so small that
//    sqrt(1 - exp(-rdp)) <= delta (total variation bounded through the KL
//    divergence, which RDP bounds at every order). This is what TF Privacy's
//    compute_epsilon does; it is tighter than Mironov 2017's
//    rdp - log(delta) / (alpha - 1), which older published figures use.
// Epsilon is an upper bound; a coarse grid of orders only loosens it.
//
// Example, for a DP wrapper that stops before a round would pass a budget:
//   RdpAccountant accountant;  // TF Privacy's orders
//   SHOAL_ASSIGN_OR_RETURN(RdpAccountant::Guarantee next,
//                          accountant.EpsilonAfter(z, q, 1, 1e-5));
//   if (next.epsilon > target_epsilon) return StopRun();
//   ... run the round ...
//   SHOAL_RETURN_IF_ERROR(accountant.AddSubsampledGaussian(z, q));
#ifndef SHOAL_STRATEGIES_PRIVACY_ACCOUNTANT_H_
#define SHOAL_STRATEGIES_PRIVACY_ACCOUNTANT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal {

// RdpAccountant composes subsampled Gaussian mechanisms in Renyi DP over a
// fixed set of orders and converts to (epsilon, delta)-DP. It is a value
// (copyable); not thread-safe: a const method may run concurrently only with
// other const methods.
class RdpAccountant {
 public:
  // DefaultOrders returns TF Privacy's orders (compute_dp_sgd_privacy_lib):
  // 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, 5, 6, ..., 63, 128, 256,
  // 512.
  static std::vector<double> DefaultOrders();

  RdpAccountant();  // DefaultOrders()
  // Each order must be finite and > 1. If one is not (or `orders` is
  // empty), every method that returns a status returns InvalidArgument
  // naming it, and nothing is composed.
  explicit RdpAccountant(std::vector<double> orders);

  // AddSubsampledGaussian composes `steps` rounds of the Poisson-subsampled
  // Gaussian mechanism with noise multiplier z = `noise_multiplier` (finite,
  // > 0) and sampling rate q = `sampling_rate` in (0, 1]; `steps` >= 0.
  // Returns InvalidArgument naming a bad argument, and then composes nothing.
  absl::Status AddSubsampledGaussian(double noise_multiplier,
                                     double sampling_rate, int64_t steps = 1);

  // Guarantee: the accountant's mechanisms are (epsilon, delta)-DP; `order`
  // is the RDP order that gave the smallest epsilon (NaN when epsilon is
  // infinite, that is when every order's RDP is).
  struct Guarantee {
    double epsilon;
    double delta;
    double order;
  };

  // GetEpsilon returns epsilon for `delta` in (0, 1) after what was composed
  // (0 before anything was). Returns InvalidArgument for a bad delta.
  absl::StatusOr<Guarantee> GetEpsilon(double delta) const;

  // EpsilonAfter returns what GetEpsilon(delta) would return after
  // AddSubsampledGaussian(noise_multiplier, sampling_rate, steps), without
  // composing anything. Same arguments and errors as those two.
  absl::StatusOr<Guarantee> EpsilonAfter(double noise_multiplier,
                                         double sampling_rate, int64_t steps,
                                         double delta) const;

  const std::vector<double>& orders() const { return orders_; }
  // rdp()[i] is the RDP composed so far at orders()[i] (possibly +infinity),
  // what a checkpoint saves.
  const std::vector<double>& rdp() const { return rdp_; }

  // Restore replaces the composed RDP with `rdp` (from rdp() of an
  // accountant with the same orders): one value per order, each >= 0 or
  // +infinity. Returns InvalidArgument, changing nothing, otherwise.
  absl::Status Restore(std::vector<double> rdp);

 private:
  // StepRdp returns `steps` times one step's RDP at every order, after
  // checking the arguments.
  absl::StatusOr<std::vector<double>> StepRdp(double noise_multiplier,
                                              double sampling_rate,
                                              int64_t steps) const;

  std::vector<double> orders_;
  std::vector<double> rdp_;     // same size as orders_, >= 0 or +inf
  absl::Status orders_status_;  // why orders_ are unusable, if they are
};

// SubsampledGaussianRdp returns the RDP at order `alpha` > 1 of one step of
// the Poisson-subsampled Gaussian mechanism with sampling rate `q` in (0, 1]
// and noise multiplier `noise_multiplier` > 0 (Mironov, Talwar, Zhang 2019):
// exactly alpha / (2 z^2) for q = 1; otherwise log(A_alpha) / (alpha - 1),
// computed in log space, so large orders and small z give large finite
// values rather than overflow. +infinity for alpha = +infinity, or where the
// fractional-order series fails numerically (an order with infinite RDP only
// drops out of the minimum over orders). NaN for arguments out of range.
//
// Example: SubsampledGaussianRdp(1.0, 2.0, 8.0) == 1.0.
double SubsampledGaussianRdp(double q, double noise_multiplier, double alpha);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_PRIVACY_ACCOUNTANT_H_
