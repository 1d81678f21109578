// RPC requests: fuzzed request bytes into every method of a real
// FederationService (server/grpc_service.h), served in-process by gRPC with
// a ClientManager, a ModelStore holding a tiny model as version 0 (signed),
// and a ServingCatalog serving it as serving version 1. Calls
// go through grpc::GenericStub, so the bytes reach the server exactly as a
// hostile device would send them.
//
// Each run registers the client "fuzz-client" with an open task of the kind
// the method answers (a fit task, with aux tensors and secure aggregation by
// flag, an evaluate task or a secure-aggregation task), so the handlers go
// past the client and task checks. Task IDs are random; the placeholder
// kTaskPlaceholder in the request bytes is replaced by the open task's ID
// (same length, so the protobuf framing stays valid).
//
// Properties: nothing crashes or hangs; a task is completed at most once; an
// accepted upload reached the round's handler.
//
// Input: byte 0 picks the method (Join, Poll, DownloadModel, DownloadAux,
// SubmitFit, SubmitEvaluate, SubmitSecAgg, Leave, ReportServing), byte 1
// holds flags
// (bit 0: the fit task is securely aggregated; bit 1: it carries aux
// tensors; bit 2: do not register the client); then framed parts
// (fuzz_support.h): one serialized request, or several SubmitFitRequests.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <ATen/ATen.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/chunking.h"
#include "common/parameters.h"
#include "fuzz/fuzz_support.h"
#include "server/client_manager.h"
#include "server/grpc_client_proxy.h"
#include "server/grpc_service.h"
#include "server/model_store.h"
#include "server/serving_catalog.h"

namespace shoal::fuzz {
namespace {

constexpr char kClientId[] = "fuzz-client";
// A fit task's ID is "fit-r1-1-" and 16 hex digits for a fresh proxy; the
// other kinds swap the prefix. The placeholder has the digits as '#'.
constexpr char kPlaceholderDigits[] = "################";

const char* const kMethods[] = {
    "/shoal.v1.Federation/Join",          "/shoal.v1.Federation/Poll",
    "/shoal.v1.Federation/DownloadModel", "/shoal.v1.Federation/DownloadAux",
    "/shoal.v1.Federation/SubmitFit",     "/shoal.v1.Federation/SubmitEvaluate",
    "/shoal.v1.Federation/SubmitSecAgg",  "/shoal.v1.Federation/Leave",
    "/shoal.v1.Federation/ReportServing"};
enum Method { kJoin, kPoll, kDownloadModel, kDownloadAux, kSubmitFit, kSubmitEvaluate,
              kSubmitSecAgg, kLeave, kReportServing, kNumMethods };

Parameters TinyModel() {
  Parameters p;
  p.Add("w", at::arange(6, at::kFloat).reshape({2, 3}));
  p.Add("b", at::zeros({3}, at::kFloat));
  return p;
}

struct Fixture {
  std::unique_ptr<ModelStore> store;
  std::unique_ptr<ServingCatalog> serving;
  ClientManager clients;
  std::unique_ptr<FederationService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<grpc::GenericStub> stub;
  std::shared_ptr<const Parameters> global;
  std::shared_ptr<const Parameters> aux;

  Fixture() {
    QuietLogs();
    absl::StatusOr<ModelSigningKeyPem> keys = GenerateModelSigningKey();
    Check(keys.ok(), "cannot make a signing key");
    std::shared_ptr<const ModelSigner> signer = *ModelSigner::FromPem(keys->private_pem);
    std::shared_ptr<const ModelVerifier> verifier = *ModelVerifier::FromPem(keys->public_pem);
    absl::StatusOr<std::unique_ptr<ModelStore>> opened =
        ModelStore::Open(ScratchDir() + "/models", "cnn", signer);
    Check(opened.ok(), "cannot open the model store");
    store = *std::move(opened);
    global = std::make_shared<const Parameters>(TinyModel());
    Parameters a;
    a.Add("c", at::ones({3}, at::kFloat));
    aux = std::make_shared<const Parameters>(std::move(a));
    Check(store->Save(0, *global, {}).ok(), "cannot save the model");
    absl::StatusOr<std::unique_ptr<ServingCatalog>> catalog =
        ServingCatalog::Open({ScratchDir() + "/serving", signer, verifier, 2});
    Check(catalog.ok(), "cannot open the serving catalog");
    serving = *std::move(catalog);
    Check(serving->Promote("fuzz", ScratchDir() + "/models", 0).ok(), "cannot promote");
    FederationServiceOptions options;
    options.max_poll_wait = absl::Milliseconds(2);  // Poll must not block the fuzzer
    options.run_id = "fuzz";
    options.serving = serving.get();
    service = std::make_unique<FederationService>(options, &clients, store.get());
    grpc::ServerBuilder builder;  // no listening port: in-process only
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    Check(server != nullptr, "cannot start the in-process server");
    stub = std::make_unique<grpc::GenericStub>(server->InProcessChannel(grpc::ChannelArguments()));
  }
};

Fixture& TheFixture() {
  static Fixture* fixture = new Fixture();  // never destroyed: gRPC threads outlive main
  return *fixture;
}

// Call sends `requests` on `method` as one streaming call (a unary method
// sees its single request) and returns the status; the responses are read
// and dropped.
grpc::Status Call(grpc::GenericStub& stub, const char* method,
                  const std::vector<std::string>& requests) {
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&ctx, method, &cq);
  void* tag;
  bool ok = false;
  auto wait = [&]() {
    Check(cq.Next(&tag, &ok), "the completion queue shut down early");
    return ok;
  };
  call->StartCall(nullptr);
  if (wait()) {
    for (const std::string& request : requests) {
      grpc::Slice slice(request);
      grpc::ByteBuffer buffer(&slice, 1);
      call->Write(buffer, nullptr);
      if (!wait()) break;
    }
    call->WritesDone(nullptr);
    wait();
    grpc::ByteBuffer response;
    for (int i = 0; i < 1000; ++i) {
      call->Read(&response, nullptr);
      if (!wait()) break;
    }
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  wait();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

// PostTask gives `proxy` an open task for `method` and returns its ID.
std::string PostTask(Fixture& f, GrpcClientProxy& proxy, int method, uint8_t flags,
                     std::atomic<int>* completions) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  if (method == kSubmitEvaluate) {
    EvaluateIns ins;
    ins.round = 1;
    proxy.Evaluate(ins, deadline, [completions](absl::StatusOr<EvaluateRes> res) {
      completions->fetch_add(1);
      return res.status();
    });
  } else if (method == kSubmitSecAgg) {
    v1::SecAggServerMessage message;
    message.set_session_id("fuzz-session");
    message.mutable_unmask()->add_survivors(2);
    proxy.SecAgg(message, 1, deadline,
                 [completions](absl::StatusOr<v1::SecAggClientMessage> res) {
                   completions->fetch_add(1);
                   return res.status();
                 });
  } else {
    FitIns ins;
    ins.round = 1;
    ins.parameters = f.global;
    if (flags & 2) ins.aux = f.aux;
    if (flags & 1) ins.secagg = std::make_shared<const v1::SecAggServerMessage>();
    std::shared_ptr<const Parameters> global = f.global;
    proxy.Fit(ins, deadline, [completions, global](absl::StatusOr<FitRes> res) {
      completions->fetch_add(1);
      if (!res.ok()) return res.status();
      // What the Coordinator checks before folding an update in.
      if (res->secagg.has_value()) return absl::OkStatus();
      absl::Status status = global->CheckCompatible(res->update);
      if (status.ok()) status = res->update.CheckFinite();
      return status;
    });
  }
  return proxy.NextTask(absl::ZeroDuration()).task_id();
}

// Placeholder is `task_id` with its random digits as '#'.
std::string Placeholder(const std::string& task_id) {
  return task_id.size() < 16 ? task_id
                             : task_id.substr(0, task_id.size() - 16) + kPlaceholderDigits;
}

std::vector<std::string> Seeds() {
  const std::string fit_id = absl::StrCat("fit-r1-1-", kPlaceholderDigits);
  std::vector<std::string> seeds;
  auto seed = [&](int method, uint8_t flags, const std::vector<std::string>& parts) {
    std::string s{static_cast<char>(method), static_cast<char>(flags)};
    for (const std::string& p : parts) AppendFramed(&s, p);
    seeds.push_back(s);
  };
  v1::JoinRequest join;
  join.set_client_id("device-7");
  join.set_device("phone");
  seed(kJoin, 4, {join.SerializeAsString()});
  v1::PollRequest poll;
  poll.set_client_id(kClientId);
  seed(kPoll, 0, {poll.SerializeAsString()});
  v1::DownloadModelRequest download;
  download.set_client_id(kClientId);
  download.set_version(-1);
  seed(kDownloadModel, 0, {download.SerializeAsString()});
  download.set_serving(true);
  download.set_version(1);
  seed(kDownloadModel, 0, {download.SerializeAsString()});
  v1::DownloadAuxRequest aux;
  aux.set_client_id(kClientId);
  aux.set_task_id(fit_id);
  seed(kDownloadAux, 2, {aux.SerializeAsString()});

  // A compatible update in three chunks, the header riding with chunk 0.
  auto upload = [&](const std::string& payload, uint8_t flags, int64_t num_examples) {
    ChunkedPayload chunked(payload, 24);
    std::vector<std::string> parts;
    for (uint32_t i = 0; i < chunked.num_chunks(); ++i) {
      v1::SubmitFitRequest request;
      if (i == 0) {
        v1::FitResultHeader* header = request.mutable_header();
        header->set_client_id(kClientId);
        header->set_task_id(fit_id);
        header->set_num_examples(num_examples);
        if (num_examples > 0) (*header->mutable_metrics())["train_loss"].set_double_value(0.5);
      }
      chunked.FillChunk(i, request.mutable_chunk());
      parts.push_back(request.SerializeAsString());
    }
    seed(kSubmitFit, flags, parts);
  };
  Parameters update = TinyModel();
  Parameters aux_update;
  aux_update.Add("c", at::zeros({3}, at::kFloat));
  upload(SerializeUpdate(update, Parameters()), 0, 10);
  upload(SerializeUpdate(update, aux_update), 2, 10);
  v1::UpdateProto masked;
  masked.mutable_secagg()->set_session_id("fuzz-session");
  masked.mutable_secagg()->mutable_masked_input()->set_packed(std::string(10, '\1'));
  upload(masked.SerializeAsString(), 1, 0);
  v1::SubmitFitRequest failed;
  failed.mutable_header()->set_client_id(kClientId);
  failed.mutable_header()->set_task_id(fit_id);
  failed.mutable_header()->set_error("out of memory");
  seed(kSubmitFit, 0, {failed.SerializeAsString()});

  v1::EvaluateResult evaluate;
  evaluate.set_client_id(kClientId);
  evaluate.set_task_id(absl::StrCat("eval-r1-1-", kPlaceholderDigits));
  evaluate.set_num_examples(100);
  evaluate.set_loss(0.25);
  (*evaluate.mutable_metrics())["accuracy"].set_double_value(0.9);
  (*evaluate.mutable_metrics())["count"].set_int_value(100);
  seed(kSubmitEvaluate, 0, {evaluate.SerializeAsString()});
  v1::SecAggSubmission secagg;
  secagg.set_client_id(kClientId);
  secagg.set_task_id(absl::StrCat("secagg-r1-1-", kPlaceholderDigits));
  secagg.mutable_message()->set_session_id("fuzz-session");
  secagg.mutable_message()->set_client_index(1);
  secagg.mutable_message()->mutable_unmask();
  seed(kSubmitSecAgg, 0, {secagg.SerializeAsString()});
  v1::LeaveRequest leave;
  leave.set_client_id(kClientId);
  seed(kLeave, 0, {leave.SerializeAsString()});
  v1::ServingReport report;
  report.set_client_id(kClientId);
  report.set_serving_version(1);
  report.set_offered_version(2);
  report.set_reason("accuracy 0.5 against 0.9 served now");
  report.set_metric("accuracy");
  report.set_offered_value(0.5);
  report.set_current_value(0.9);
  seed(kReportServing, 0, {report.SerializeAsString()});
  return seeds;
}

}  // namespace
}  // namespace shoal::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  shoal::fuzz::WriteSeedsIfAsked(shoal::fuzz::Seeds);
  shoal::fuzz::TheFixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal;
  using namespace shoal::fuzz;
  Fixture& f = TheFixture();
  const absl::Time entered = absl::Now();
  FramedReader in(data, size);
  const int method = in.Byte() % kNumMethods;
  const uint8_t flags = in.Byte();

  std::atomic<int> completions{0};
  std::string task_id;
  if (!(flags & 4)) {
    auto proxy = std::make_shared<GrpcClientProxy>(kClientId);
    f.clients.Register(proxy);
    task_id = PostTask(f, *proxy, method, flags, &completions);
  }
  std::vector<std::string> requests;
  while (!in.done() && requests.size() < 64) {
    std::string part = in.Part();
    if (!task_id.empty()) part = absl::StrReplaceAll(part, {{Placeholder(task_id), task_id}});
    requests.push_back(std::move(part));
    if (method != kSubmitFit) break;  // unary methods take one request
  }
  if (requests.empty()) requests.emplace_back();

  const absl::Time start = absl::Now();
  const grpc::Status status = Call(*f.stub, kMethods[method], requests);
  static const bool verbose = std::getenv("SHOAL_FUZZ_VERBOSE") != nullptr;
  if (verbose) {  // to check that the seeds reach the handlers' depths
    std::fprintf(stderr, "%s -> %d %s (%s)\n", kMethods[method], status.error_code(),
                 status.error_message().c_str(),
                 absl::FormatDuration(absl::Now() - start).c_str());
  }
  Check(completions.load() <= 1, "a task was completed more than once");
  if (status.ok() && (method == kSubmitFit || method == kSubmitEvaluate ||
                      method == kSubmitSecAgg)) {
    Check(completions.load() == 1, "an accepted upload never reached the round");
  }
  // Forget every client, including those the fuzzer made Join, so memory
  // stays flat over millions of runs.
  for (const std::string& id : f.clients.LiveClientIds()) f.clients.Unregister(id);
  f.clients.Unregister(kClientId);
  if (verbose) {
    std::fprintf(stderr, "  whole input: %s\n",
                 absl::FormatDuration(absl::Now() - entered).c_str());
  }
  return 0;
}
