#include "bench/load_client.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/chunking.h"
#include "common/grpc_status.h"
#include "common/metrics.h"
#include "common/sha256.h"
#include "common/status.h"
#include "common/tls.h"
#include "common/types.h"

namespace shoal::bench {
namespace {

// The largest model a load client accepts (the 2NN is 0.8 MB).
constexpr uint64_t kMaxModelBytes = uint64_t{64} << 20;

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

// Percentile by nearest rank over sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank =
      static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

void LoadRecorder::Latency(const std::string& rpc, absl::Duration d) {
  absl::MutexLock lock(&mu_);
  latencies_ms_[rpc].push_back(absl::ToDoubleMilliseconds(d));
}

void LoadRecorder::Error(const std::string& rpc, const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  ++errors_[absl::StrCat(
      rpc, " ", absl::StatusCodeToString(FromGrpcStatus(status).code()))];
}

void LoadRecorder::FitTaskReceived(uint32_t round) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  RoundSpan& span = rounds_[round];
  span.first_task = std::min(span.first_task, now);
  span.last_task = std::max(span.last_task, now);
  ++span.tasks;
}

void LoadRecorder::FitSubmitted(uint32_t round) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  RoundSpan& span = rounds_[round];
  span.last_submit = std::max(span.last_submit, now);
  ++span.submits;
}

std::map<std::string, LatencySummary> LoadRecorder::Latencies() const {
  std::map<std::string, std::vector<double>> copy;
  {
    absl::MutexLock lock(&mu_);
    copy = latencies_ms_;
  }
  std::map<std::string, LatencySummary> out;
  for (auto& [rpc, values] : copy) {
    std::sort(values.begin(), values.end());
    LatencySummary& s = out[rpc];
    s.count = static_cast<int64_t>(values.size());
    s.p50 = Percentile(values, 0.50);
    s.p90 = Percentile(values, 0.90);
    s.p99 = Percentile(values, 0.99);
    s.max = values.empty() ? 0 : values.back();
  }
  return out;
}

std::map<std::string, int64_t> LoadRecorder::Errors() const {
  absl::MutexLock lock(&mu_);
  return errors_;
}

std::map<uint32_t, RoundSpan> LoadRecorder::Rounds() const {
  absl::MutexLock lock(&mu_);
  return rounds_;
}

int LoadRecorder::RoundsCompleted(int64_t clients) const {
  absl::MutexLock lock(&mu_);
  int done = 0;
  for (const auto& [round, span] : rounds_)
    done += span.submits >= clients ? 1 : 0;
  return done;
}

LoadClient::LoadClient(LoadClientOptions options, LoadRecorder* recorder,
                       const std::atomic<bool>* stop)
    : options_(std::move(options)), recorder_(recorder), stop_(stop) {}

std::unique_ptr<grpc::ClientContext> LoadClient::Context(
    absl::Duration timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

absl::Status LoadClient::Finish(const std::string& rpc, absl::Time start,
                                const grpc::Status& s) {
  if (s.ok()) {
    recorder_->Latency(rpc, absl::Now() - start);
    return absl::OkStatus();
  }
  recorder_->Error(rpc, s);
  return Annotate(FromGrpcStatus(s), rpc);
}

absl::Status LoadClient::Connect() {
  grpc::ChannelArguments args = DeviceChannelArguments();
  // Identical channels would otherwise share one subchannel, and so one TCP
  // connection: a thousand devices must be a thousand connections.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  channel_ = grpc::CreateCustomChannel(options_.server_address,
                                       options_.credentials, args);
  stub_ = v1::Federation::NewStub(channel_);
  const absl::Time start = absl::Now();
  // TCP connect, TLS handshake (client certificate included) and the HTTP/2
  // preface, before any RPC.
  if (!channel_->WaitForConnected(
          absl::ToChronoTime(start + options_.connect_timeout))) {
    recorder_->Error("Connect",
                     grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""));
    return absl::DeadlineExceededError(
        absl::StrCat("client '", options_.client_id, "' could not connect to ",
                     options_.server_address, " in ",
                     absl::FormatDuration(options_.connect_timeout)));
  }
  recorder_->Latency("Connect", absl::Now() - start);
  ++recorder_->connected;
  return absl::OkStatus();
}

absl::Status LoadClient::Join() {
  for (;;) {
    v1::JoinRequest req;
    req.set_client_id(options_.client_id);
    req.set_device("load_bench");
    v1::JoinResponse resp;
    auto ctx = Context(options_.rpc_timeout);
    const absl::Time start = absl::Now();
    const grpc::Status s = stub_->Join(ctx.get(), req, &resp);
    absl::Status joined = Finish("Join", start, s);
    if (joined.ok()) {
      poll_wait_ = absl::Milliseconds(resp.poll_interval_ms());
      return absl::OkStatus();
    }
    if (stop_->load() || !IsTransient(s.error_code())) return joined;
    absl::SleepFor(absl::Seconds(1));
  }
}

absl::Status LoadClient::Run() {
  SHOAL_RETURN_IF_ERROR(Connect());
  SHOAL_RETURN_IF_ERROR(Join());
  ++recorder_->joined;
  while (!stop_->load()) {
    v1::PollRequest req;
    req.set_client_id(options_.client_id);
    v1::Task task;
    auto ctx = Context(poll_wait_ + absl::Seconds(10));
    const absl::Time start = absl::Now();
    grpc::Status s = stub_->Poll(ctx.get(), req, &task);
    const absl::Duration took = absl::Now() - start;
    if (!s.ok()) {
      recorder_->Error("Poll", s);
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        SHOAL_RETURN_IF_ERROR(Join());
        continue;
      }
      if (!IsTransient(s.error_code()))
        return Annotate(FromGrpcStatus(s), "Poll");
      absl::SleepFor(absl::Seconds(1));
      continue;
    }
    // A Poll that ends in "wait" sat out the server's long-poll by design;
    // only those that brought a task say how fast the server hands work out.
    if (task.has_wait()) {
      recorder_->Latency("Poll (wait)", took);
      absl::SleepFor(absl::Milliseconds(task.wait().retry_after_ms()));
      continue;
    }
    recorder_->Latency(task.has_fit()        ? "Poll (fit)"
                       : task.has_evaluate() ? "Poll (evaluate)"
                       : task.has_shutdown() ? "Poll (shutdown)"
                                             : "Poll (other)",
                       took);
    if (task.has_shutdown()) return Leave(task);
    absl::Status served = task.has_fit() ? ServeFit(task)
                          : task.has_evaluate()
                              ? ServeEvaluate(task)
                              : absl::UnimplementedError(absl::StrCat(
                                    "task '", task.task_id(),
                                    "' is of a kind load clients "
                                    "do not serve (secure aggregation?)"));
    // The error is recorded; the server's round deadline deals with the
    // missing answer, as it would for a real device.
    (void)served;
  }
  return absl::CancelledError("stopped");
}

absl::Status LoadClient::EnsureModel(const v1::ModelVersion& version) {
  if (version.version() == model_version_ &&
      (version.sha256().empty() || version.sha256() == model_sha256_)) {
    return absl::OkStatus();
  }
  v1::DownloadModelRequest req;
  req.set_client_id(options_.client_id);
  req.set_version(version.version());
  auto ctx = Context(options_.rpc_timeout);
  const absl::Time start = absl::Now();
  std::unique_ptr<grpc::ClientReader<v1::Chunk>> reader =
      stub_->DownloadModel(ctx.get(), req);
  ChunkAssembler assembler(kMaxModelBytes);
  v1::Chunk chunk;
  absl::Status added = absl::OkStatus();
  while (added.ok() && reader->Read(&chunk)) added = assembler.Add(chunk);
  if (!added.ok()) ctx->TryCancel();
  grpc::Status s = reader->Finish();
  if (!added.ok()) {
    recorder_->Error("DownloadModel",
                     grpc::Status(grpc::StatusCode::DATA_LOSS, ""));
    return added;
  }
  SHOAL_RETURN_IF_ERROR(Finish("DownloadModel", start, s));
  SHOAL_ASSIGN_OR_RETURN(std::string payload, assembler.Finish());
  const std::string digest = Sha256(payload);
  if (!version.sha256().empty() && digest != version.sha256()) {
    recorder_->Error("DownloadModel",
                     grpc::Status(grpc::StatusCode::DATA_LOSS, ""));
    return absl::DataLossError(
        absl::StrCat("model version ", version.version(),
                     " does not match the task's SHA-256"));
  }
  if (options_.model_verifier != nullptr) {
    // The load benchmark runs built-in models, which have no code to fetch:
    // the spec (and an empty code digest) is all the signature covers there.
    absl::Status signed_ok = options_.model_verifier->Verify(
        SignedModel{version.version(), digest, version.model_spec(), version.code_sha256()},
        version.signature());
    if (!signed_ok.ok()) {
      recorder_->Error("DownloadModel", grpc::Status(grpc::StatusCode::PERMISSION_DENIED, ""));
      return signed_ok;
    }
  }
  SHOAL_ASSIGN_OR_RETURN(model_, ParseParameters(payload));
  model_version_ = version.version();
  model_sha256_ = digest;
  return absl::OkStatus();
}

absl::Status LoadClient::ServeFit(const v1::Task& task) {
  const v1::FitTask& fit = task.fit();
  recorder_->FitTaskReceived(fit.round());
  SHOAL_RETURN_IF_ERROR(EnsureModel(fit.model()));
  // No training: the device "trains" to the global model plus a small
  // perturbation, and the wire carries the difference (trained weights minus
  // global), which is that perturbation. Deterministic per client and round.
  const double delta =
      1e-3 * (((options_.index * 7 + fit.round()) % 11) - 5) / 5.0;
  Parameters update;
  for (size_t i = 0; i < model_.size(); ++i) {
    const at::Tensor& t = model_.tensor(i);
    update.Add(model_.name(i), t.is_floating_point() ? at::full_like(t, delta)
                                                     : at::zeros_like(t));
  }
  v1::FitResultHeader header;
  header.set_client_id(options_.client_id);
  header.set_task_id(task.task_id());
  header.set_num_examples(options_.num_examples);
  MetricsToProto({{kTrainLossMetric,
                   2.0 / (fit.round() + 1) + 1e-3 * (options_.index % 10)}},
                 header.mutable_metrics());
  const ChunkedPayload payload(SerializeUpdate(update, Parameters()));

  auto ctx = Context(options_.rpc_timeout);
  const absl::Time start = absl::Now();
  v1::SubmitResponse resp;
  std::unique_ptr<grpc::ClientWriter<v1::SubmitFitRequest>> writer =
      stub_->SubmitFit(ctx.get(), &resp);
  v1::SubmitFitRequest msg;
  for (uint32_t i = 0; i < payload.num_chunks(); ++i) {
    msg.Clear();
    if (i == 0) *msg.mutable_header() = header;
    payload.FillChunk(i, msg.mutable_chunk());
    if (!writer->Write(msg))
      break;  // the server ended the call; Finish says why
  }
  writer->WritesDone();
  SHOAL_RETURN_IF_ERROR(Finish("SubmitFit", start, writer->Finish()));
  recorder_->FitSubmitted(fit.round());
  return absl::OkStatus();
}

absl::Status LoadClient::ServeEvaluate(const v1::Task& task) {
  SHOAL_RETURN_IF_ERROR(EnsureModel(task.evaluate().model()));
  v1::EvaluateResult out;
  out.set_client_id(options_.client_id);
  out.set_task_id(task.task_id());
  out.set_num_examples(options_.num_examples);
  out.set_loss(1.0);
  MetricsToProto({{"accuracy", 0.5}}, out.mutable_metrics());
  auto ctx = Context(options_.rpc_timeout);
  const absl::Time start = absl::Now();
  v1::SubmitResponse resp;
  return Finish("SubmitEvaluate", start,
                stub_->SubmitEvaluate(ctx.get(), out, &resp));
}

absl::Status LoadClient::Leave(const v1::Task& shutdown) {
  // As a device does: fetch the final model, then say goodbye.
  absl::Status fetched = EnsureModel(shutdown.shutdown().final_model());
  v1::LeaveRequest req;
  req.set_client_id(options_.client_id);
  v1::LeaveResponse resp;
  auto ctx = Context(options_.rpc_timeout);
  const absl::Time start = absl::Now();
  SHOAL_RETURN_IF_ERROR(
      Finish("Leave", start, stub_->Leave(ctx.get(), req, &resp)));
  SHOAL_RETURN_IF_ERROR(Annotate(fetched, "final model"));
  ++recorder_->finished;
  return absl::OkStatus();
}

}  // namespace shoal::bench
