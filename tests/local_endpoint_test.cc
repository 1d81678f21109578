// The device's local prediction endpoint (client/local_endpoint.h), over a
// real Unix socket and loopback TCP: answers with the serving version,
// refuses what it must, never listens off the device, and keeps answering
// through hot swaps.
#include "client/local_endpoint.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

#include "client/inference.h"
#include "common/parameters.h"
#include "shoal/v1/shoal.grpc.pb.h"
#include "tests/testing.h"

namespace shoal::client {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Model> Make(uint64_t seed) {
  return *CreateModel(*ParseModelSpec("2nn-1x28x28-10"), seed);
}

ModelRecord Record(int64_t version) {
  ModelRecord r;
  r.version = version;
  return r;
}

std::unique_ptr<v1::LocalPredict::Stub> Connect(const std::string& target) {
  return v1::LocalPredict::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

// Ask sends float32 `inputs` and returns the status and the response.
grpc::Status Ask(v1::LocalPredict::Stub& stub, const at::Tensor& inputs,
                 v1::PredictResponse* response) {
  v1::PredictRequest request;
  TensorToProto("inputs", inputs, request.mutable_inputs());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return stub.Predict(&ctx, request, response);
}

TEST(LocalEndpointTest, AnswersOverAUnixSocketWithTheServingVersion) {
  testing::TempDir dir;
  ServingModel serving;
  const std::string address = "unix:" + dir.File("predict.sock");
  absl::StatusOr<std::unique_ptr<LocalEndpoint>> endpoint =
      LocalEndpoint::Start({address}, &serving);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  auto stub = Connect(address);
  const at::Tensor x = at::rand({3, 1, 28, 28});
  v1::PredictResponse response;
  // Nothing served yet.
  EXPECT_EQ(Ask(*stub, x, &response).error_code(), grpc::StatusCode::UNAVAILABLE);

  std::unique_ptr<Model> reference = Make(7);
  const at::Tensor expected = *Predict(*reference, x);
  ASSERT_TRUE(serving.Install(Make(7), Record(4)).ok());
  grpc::Status s = Ask(*stub, x, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.serving_version(), 4);
  absl::StatusOr<at::Tensor> outputs = TensorFromProto(response.outputs());
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_TRUE(at::equal(*outputs, expected));
}

TEST(LocalEndpointTest, RefusesBadInputsAndListensOnlyOnTheDevice) {
  ServingModel serving;
  ASSERT_TRUE(serving.Install(Make(1), Record(1)).ok());
  LocalEndpointOptions options{"127.0.0.1:0"};
  options.max_rows = 8;
  absl::StatusOr<std::unique_ptr<LocalEndpoint>> endpoint = LocalEndpoint::Start(options, &serving);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_GT((*endpoint)->port(), 0);
  auto stub = Connect("127.0.0.1:" + std::to_string((*endpoint)->port()));
  v1::PredictResponse response;
  auto refused = [&](const at::Tensor& x, const std::string& why) {
    grpc::Status s = Ask(*stub, x, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << why;
    EXPECT_THAT(s.error_message(), HasSubstr(why));
  };
  refused(at::zeros({2, 1, 28, 28}, at::kDouble), "float32");
  refused(at::zeros({9, 1, 28, 28}), "1 <= N <= 8");
  refused(at::zeros({0, 1, 28, 28}), "1 <= N <= 8");
  refused(at::zeros({2, 3, 5}), "[2, 3, 5]");
  // A tensor whose bytes disagree with its shape.
  v1::PredictRequest bad;
  TensorToProto("inputs", at::zeros({2, 1, 28, 28}), bad.mutable_inputs());
  bad.mutable_inputs()->mutable_data()->resize(10);
  grpc::ClientContext ctx;
  EXPECT_EQ(stub->Predict(&ctx, bad, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A request over the size limit never reaches the model.
  LocalEndpointOptions small{"127.0.0.1:0"};
  small.max_request_bytes = 4096;
  auto tight = LocalEndpoint::Start(small, &serving);
  ASSERT_TRUE(tight.ok()) << tight.status();
  auto tight_stub = Connect("127.0.0.1:" + std::to_string((*tight)->port()));
  EXPECT_EQ(Ask(*tight_stub, at::zeros({4, 1, 28, 28}), &response).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // The endpoint still answers after all of that.
  EXPECT_TRUE(Ask(*stub, at::zeros({2, 1, 28, 28}), &response).ok());

  for (const std::string& address : {"0.0.0.0:0", "[::]:0", "192.168.1.5:7000", "example.com:1",
                                     "unix:", "127.0.0.1:99999"}) {
    absl::StatusOr<std::unique_ptr<LocalEndpoint>> off = LocalEndpoint::Start({address}, &serving);
    EXPECT_EQ(off.status().code(), absl::StatusCode::kInvalidArgument) << address;
  }
  EXPECT_EQ(LocalEndpoint::Start({"unix:/nonexistent-folder/x.sock"}, &serving).status().code(),
            absl::StatusCode::kUnavailable);
}

// Callers in another thread keep getting answers while versions 2 and 3
// are swapped in; the version answering moves forward and never fails.
TEST(LocalEndpointTest, KeepsAnsweringThroughHotSwaps) {
  testing::TempDir dir;
  ServingModel serving;
  ASSERT_TRUE(serving.Install(Make(1), Record(1)).ok());
  const std::string address = "unix:" + dir.File("p.sock");
  auto endpoint = LocalEndpoint::Start({address}, &serving);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  std::atomic<bool> done{false};
  std::atomic<int64_t> failed{0}, backwards{0}, answered{0};
  std::thread caller([&] {
    auto stub = Connect(address);
    int64_t last = 0;
    while (!done.load()) {
      v1::PredictResponse response;
      if (!Ask(*stub, at::rand({2, 1, 28, 28}), &response).ok()) {
        ++failed;
        continue;
      }
      if (response.serving_version() < last) ++backwards;
      last = response.serving_version();
      ++answered;
    }
  });
  for (int64_t v = 2; v <= 3; ++v) {
    const int64_t before = answered.load();
    for (int i = 0; i < 5000 && answered.load() < before + 10; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(serving.Install(Make(static_cast<uint64_t>(v)), Record(v)).ok());
  }
  const int64_t before = answered.load();
  for (int i = 0; i < 5000 && answered.load() < before + 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  done = true;
  caller.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(backwards.load(), 0);
  EXPECT_GE(answered.load(), 30);
}

}  // namespace
}  // namespace shoal::client
