#include "client/local_endpoint.h"

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "common/net_address.h"
#include "common/parameters.h"
#include "common/status.h"
#include "shoal/v1/shoal.grpc.pb.h"

namespace shoal::client {

absl::Status ValidateLocalAddress(const std::string& address) {
  if (absl::StartsWith(address, "unix:")) {
    const std::string path = address.substr(5);
    if (path.empty() || path.size() > 100) {  // sun_path holds 108 bytes
      return absl::InvalidArgumentError(absl::StrCat(
          "the local endpoint's socket path must have 1-100 characters, got ", path.size()));
    }
    return absl::OkStatus();
  }
  SHOAL_ASSIGN_OR_RETURN(HostPort hp, ParseListenAddress(address));
  if (hp.host != "127.0.0.1" && hp.host != "::1" && hp.host != "localhost") {
    return absl::InvalidArgumentError(absl::StrCat(
        "the local endpoint listens on a Unix socket (unix:PATH) or loopback (127.0.0.1, [::1], "
        "localhost) only, never on '",
        hp.host, "': it has no authentication of its own"));
  }
  return absl::OkStatus();
}

class LocalEndpoint::Service final : public v1::LocalPredict::Service {
 public:
  Service(const ServingModel* serving, int64_t max_rows) : serving_(serving), max_rows_(max_rows) {}

  grpc::Status Predict(grpc::ServerContext*, const v1::PredictRequest* request,
                       v1::PredictResponse* response) override {
    return ToGrpcStatus(Answer(*request, response));
  }

 private:
  absl::Status Answer(const v1::PredictRequest& request, v1::PredictResponse* response) {
    const v1::TensorProto& in = request.inputs();
    if (in.dtype() != v1::DTYPE_FLOAT32) {
      return absl::InvalidArgumentError("the inputs must be float32");
    }
    if (in.shape_size() < 1 || in.shape(0) < 1 || in.shape(0) > max_rows_) {
      return absl::InvalidArgumentError(
          absl::StrCat("the inputs must be [N, ...] with 1 <= N <= ", max_rows_, ", got [",
                       absl::StrJoin(in.shape(), ", "), "]"));
    }
    SHOAL_ASSIGN_OR_RETURN(at::Tensor inputs, TensorFromProto(in));
    SHOAL_ASSIGN_OR_RETURN(Served served, serving_->Predict(inputs));
    TensorToProto("outputs", served.outputs.to(at::kFloat).contiguous(),
                  response->mutable_outputs());
    response->set_serving_version(served.version);
    return absl::OkStatus();
  }

  const ServingModel* serving_;
  const int64_t max_rows_;
};

LocalEndpoint::LocalEndpoint(LocalEndpointOptions options, std::unique_ptr<Service> service)
    : options_(std::move(options)), service_(std::move(service)) {}

LocalEndpoint::~LocalEndpoint() {
  if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  if (absl::StartsWith(options_.address, "unix:")) {
    std::error_code ec;
    std::filesystem::remove(options_.address.substr(5), ec);
  }
}

absl::StatusOr<std::unique_ptr<LocalEndpoint>> LocalEndpoint::Start(LocalEndpointOptions options,
                                                                    const ServingModel* serving) {
  if (serving == nullptr) return absl::InvalidArgumentError("the local endpoint needs a model");
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateLocalAddress(options.address), "local endpoint"));
  if (options.max_request_bytes < 1024 || options.max_rows < 1) {
    return absl::InvalidArgumentError(
        "the local endpoint needs max_request_bytes >= 1024 and max_rows >= 1");
  }
  const bool unix_socket = absl::StartsWith(options.address, "unix:");
  if (unix_socket) {
    // A socket file left by a previous run would make the bind fail.
    std::error_code ec;
    const std::filesystem::path path = options.address.substr(5);
    if (std::filesystem::is_socket(path, ec)) std::filesystem::remove(path, ec);
  }
  auto service = std::make_unique<Service>(serving, options.max_rows);
  std::unique_ptr<LocalEndpoint> endpoint(new LocalEndpoint(options, std::move(service)));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(),
                           unix_socket ? nullptr : &endpoint->port_);
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(endpoint->service_.get());
  endpoint->server_ = builder.BuildAndStart();
  if (endpoint->server_ == nullptr || (!unix_socket && endpoint->port_ == 0)) {
    return absl::UnavailableError(absl::StrCat("the local endpoint cannot listen on '",
                                               options.address,
                                               "' (in use, or a folder that is missing or "
                                               "not writable)"));
  }
  return endpoint;
}

}  // namespace shoal::client
