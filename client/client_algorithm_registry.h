// ClientAlgorithmRegistry: client halves of strategies chosen by name. The
// server names them in FitConfig.client_algorithms; a client creates each
// round's ClientAlgorithm from its registered factory and refuses a name it
// does not have. The built-ins ("fedprox", "qfedavg", "scaffold",
// "differential_privacy"; common/client_algorithms.h) are registered
// already; register your own before the client's first round.
//
// Example, in an application built against the installed package:
//   class L2ToZero : public shoal::client::ClientAlgorithm {
//    public:
//     explicit L2ToZero(double lambda) : lambda_(lambda) {}
//     at::Tensor LossTerm(const shoal::client::TrainingStep& step) override {
//       at::Tensor sum = at::zeros({});
//       for (const at::Tensor& w : step.trainable) sum = sum + w.pow(2).sum();
//       return (lambda_ / 2) * sum;
//     }
//    private:
//     double lambda_;
//   };
//   absl::Status s = shoal::client::RegisterClientAlgorithm(
//       "l2_to_zero", [](shoal::client::ClientAlgorithmParams& p)
//           -> absl::StatusOr<std::unique_ptr<shoal::client::ClientAlgorithm>> {
//         double lambda = 0.01;
//         SHOAL_RETURN_IF_ERROR(p.Number("lambda", 0, 1e3, &lambda));
//         return std::make_unique<L2ToZero>(lambda);
//       });
#ifndef SHOAL_CLIENT_CLIENT_ALGORITHM_REGISTRY_H_
#define SHOAL_CLIENT_CLIENT_ALGORITHM_REGISTRY_H_

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client_algorithm.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal::client {

// ClientAlgorithmParams reads the params of one FitConfig.client_algorithms
// entry, for a factory to turn into typed options. Messages name the
// algorithm and the param. Not thread-safe.
class ClientAlgorithmParams {
 public:
  explicit ClientAlgorithmParams(const v1::ClientAlgorithmConfig& config)
      : config_(config) {}

  const std::string& algorithm() const { return config_.name(); }
  bool Has(absl::string_view key) const;

  // Number reads `key`, an int or double in [lo, hi] ((lo, hi] with
  // `lo_open`), into *out; absent leaves *out as it is. InvalidArgument when
  // it is of another kind, not finite or out of range.
  absl::Status Number(absl::string_view key, double lo, double hi, double* out,
                      bool lo_open = false);

  // Finish returns InvalidArgument naming a param nothing read, listing the
  // ones read: a misspelt param must not be ignored silently.
  absl::Status Finish() const;

 private:
  const v1::ClientAlgorithmConfig& config_;
  std::set<std::string> read_;
};

// ClientAlgorithmFactory builds one round's instance from its params,
// refusing bad values with InvalidArgument. Unknown params are refused after
// it returns (ClientAlgorithmParams::Finish).
using ClientAlgorithmFactory =
    std::function<absl::StatusOr<std::unique_ptr<ClientAlgorithm>>(ClientAlgorithmParams& params)>;

// RegisterClientAlgorithm adds a factory under `name`, the name of the
// strategy whose client half it is. AlreadyExists if taken. Thread-safe.
absl::Status RegisterClientAlgorithm(const std::string& name, ClientAlgorithmFactory factory);

// CreateClientAlgorithm builds the algorithm `config` names. InvalidArgument
// listing the registered names when the name is unknown (the server asked
// for a client half this client was not built with), or for bad params.
absl::StatusOr<std::unique_ptr<ClientAlgorithm>> CreateClientAlgorithm(
    const v1::ClientAlgorithmConfig& config);

// RegisteredClientAlgorithms lists the names, sorted.
std::vector<std::string> RegisteredClientAlgorithms();

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_CLIENT_ALGORITHM_REGISTRY_H_
