#include "client/serving_model.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/inference.h"
#include "common/status.h"

namespace shoal::client {

ServingModel::ServingModel(int64_t batch_size) : batch_size_(batch_size < 1 ? 1 : batch_size) {}

absl::Status ServingModel::Install(std::unique_ptr<Model> model, ModelRecord record) {
  if (model == nullptr) return absl::InvalidArgumentError("ServingModel::Install: no model");
  try {
    model->SetTraining(false);  // once, before any thread can run it
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot put serving version ", record.version,
                                            " in eval mode: ", e.what()));
  }
  auto next = std::make_shared<const Version>(Version{std::move(model), std::move(record)});
  std::shared_ptr<const Version> previous;  // released outside the lock
  {
    absl::MutexLock lock(&mu_);
    previous = std::exchange(serving_, std::move(next));
    ++installs_;
  }
  return absl::OkStatus();
}

absl::StatusOr<Served> ServingModel::Predict(const at::Tensor& inputs) const {
  std::shared_ptr<const Version> serving;
  {
    absl::MutexLock lock(&mu_);
    serving = serving_;
  }
  if (serving == nullptr) {
    return absl::UnavailableError("no serving model yet: none was installed or kept on disk");
  }
  SHOAL_ASSIGN_OR_RETURN(at::Tensor outputs,
                         ForwardInBatches(*serving->model, inputs, batch_size_));
  return Served{std::move(outputs), serving->record.version};
}

std::optional<ModelRecord> ServingModel::current() const {
  absl::MutexLock lock(&mu_);
  if (serving_ == nullptr) return std::nullopt;
  return serving_->record;
}

int64_t ServingModel::installs() const {
  absl::MutexLock lock(&mu_);
  return installs_;
}

}  // namespace shoal::client
