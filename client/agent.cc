#include "client/agent.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/chunking.h"
#include "common/files.h"
#include "client/serving_runtime.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/model_delta.h"
#include "common/model_dir.h"
#include "common/sha256.h"
#include "common/status.h"
#include "secagg/wire.h"

namespace shoal::client {
namespace {

// The largest model a client accepts from the server (1 GiB).
constexpr uint64_t kMaxModelBytes = uint64_t{1} << 30;
constexpr int kUploadAttempts = 3;

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::ABORTED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat(s.error_code(), " ", s.error_message());
}

// The server refuses request strings over 1 KiB (kMaxRequestStringBytes in
// server/grpc_service.h); an error reported to it is cut to fit.
constexpr size_t kMaxReportedErrorBytes = 1000;

// ErrorForServer returns `error`'s message cut to kMaxReportedErrorBytes,
// on a UTF-8 character boundary (a proto3 string must be valid UTF-8).
std::string ErrorForServer(const absl::Status& error) {
  absl::string_view m = error.message();
  if (m.size() <= kMaxReportedErrorBytes) return std::string(m);
  size_t cut = kMaxReportedErrorBytes - 3;
  while (cut > 0 && (static_cast<unsigned char>(m[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(m.substr(0, cut), "...");
}

// After this many joins in a row fail the way a TLS/plaintext mismatch
// does, the agent says so (a server that is merely down fails otherwise:
// "Connection refused").
constexpr int kMismatchHintAfter = 3;

// TransportMismatchHint returns what to check when `s` is how a join fails
// with one side on TLS and the other not; empty otherwise. A plaintext
// client's HTTP/2 preface is not a TLS hello, so a TLS server closes the
// socket; a TLS client's hello gets no TLS answer from a plaintext server.
std::string TransportMismatchHint(const grpc::Status& s, bool tls) {
  if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return "";
  const std::string& m = s.error_message();
  auto has = [&m](const char* what) {
    return m.find(what) != std::string::npos;
  };
  if (!tls && (has("Socket closed") || has("Connection reset"))) {
    return "the server closes plaintext connections: it probably requires TLS; "
           "give this "
           "device its bundle with --pki-dir (plaintext only when both sides "
           "pass "
           "--insecure-plaintext)";
  }
  if (tls && (has("andshake") || has("SSL") || has("ssl"))) {
    return "the TLS handshake with the server fails: the server may be running "
           "without TLS "
           "(--insecure-plaintext), or its certificate is not from this "
           "device's CA "
           "(--pki-dir)";
  }
  return "";
}

}  // namespace

Agent::Agent(AgentOptions options, LocalClient* local)
    : options_(std::move(options)), local_(local), rng_(options_.seed) {
  channel_ = grpc::CreateCustomChannel(options_.server_address,
                                       MakeChannelCredentials(options_.tls.get()),
                                       DeviceChannelArguments());
  stub_ = v1::Federation::NewStub(channel_);
  active_code_ = options_.model_code;
  if (!active_code_.torchscript.empty()) active_code_sha256_ = Sha256(active_code_.torchscript);
  if (!options_.state_dir.empty()) {
    // Weights, code and (with a verifier) the signature over both.
    absl::StatusOr<LoadedModelVersion> cached =
        LoadModelVersion(options_.state_dir, kLatestVersion, options_.model_verifier.get());
    if (cached.ok() && !ValidateModelSpec(cached->code.spec).ok()) {
      cached = absl::FailedPreconditionError(
          "it was stored by an older Shoal, whose manifest names a TorchScript file instead of "
          "keeping the code");
    }
    if (cached.ok()) {
      cached_version_ = cached->record.version;
      Count([&](AgentStats& st) { st.model_version = cached_version_; });
      cached_sha256_hex_ = cached->record.sha256_hex;
      cached_code_ = std::move(cached->code);
      cached_code_sha256_ =
          cached_code_.torchscript.empty() ? "" : Sha256(cached_code_.torchscript);
      cached_model_ = std::make_shared<const Parameters>(std::move(cached->params));
      spdlog::info("using cached global model version {} from {}", cached_version_,
                   options_.state_dir);
    } else if (!absl::IsNotFound(cached.status())) {
      // Unverified or corrupt: left on disk; the next verified download
      // replaces it.
      spdlog::warn("not using the cached model: {}", std::string(cached.status().message()));
    }
    // Client algorithms' states and compression residuals, from before a
    // restart. Losing them costs accuracy, not correctness: a damaged file
    // is reported and replaced after the next round.
    absl::StatusOr<ClientAlgorithmState> state = ReadClientState(options_.state_dir);
    if (state.ok()) {
      local_->set_algorithm_state(*std::move(state));
      kept_state_ = true;
    } else if (!absl::IsNotFound(state.status())) {
      spdlog::warn("starting without the state kept between rounds: {}",
                   std::string(state.status().message()));
    }
  }
}

std::unique_ptr<grpc::ClientContext> Agent::Context(absl::Duration timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

absl::Duration Agent::NextBackoff(int attempt) {
  // Exponential with "equal jitter": half the cap, plus up to half again at
  // random, so a fleet that lost the server does not return in lockstep.
  absl::Duration cap = options_.initial_backoff * (int64_t{1} << std::min(attempt, 20));
  cap = std::min(cap, options_.max_backoff);
  const double u = static_cast<double>(rng_() >> 11) / static_cast<double>(1ULL << 53);
  return cap / 2 + cap * (u / 2);
}

void Agent::Backoff(absl::Duration wait) {
  // gRPC moves a connection attempt on only while something polls the
  // channel. Between calls that is its backup poller, every 5 s, so an agent
  // that merely slept through its backoff found a returned link 10-15 s
  // late: the TCP connect, the TLS handshake and the HTTP/2 settings each
  // waited for a tick, and calls failed fast meanwhile. Watching the
  // channel's state polls it.
  for (absl::Time until = absl::Now() + wait; absl::Now() < until && !stop_.load();) {
    const absl::Time step = std::min(until, absl::Now() + absl::Milliseconds(100));
    const grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) {
      absl::SleepFor(step - absl::Now());
    } else {
      channel_->WaitForStateChange(state, absl::ToChronoTime(step));
    }
  }
}

absl::Status Agent::JoinWithBackoff() {
  const absl::Time start = absl::Now();
  int mismatches = 0;  // consecutive failures that look like a TLS mismatch
  std::string hint;
  for (int attempt = 0; !stop_.load(); ++attempt) {
    v1::JoinRequest req;
    req.set_client_id(options_.client_id);
    req.set_device("shoal-agent");
    // What Fit and Evaluate will report as num_examples: the server counts
    // no result for more. An agent built only to join (tests) has no data.
    if (local_ != nullptr) {
      req.set_num_train_examples(local_->train_data().size());
      req.set_num_evaluate_examples(local_->holdout_data().size());
    }
    v1::JoinResponse resp;
    auto ctx = Context(absl::Seconds(5));
    grpc::Status s = stub_->Join(ctx.get(), req, &resp);
    if (s.ok()) {
      poll_wait_ = absl::Milliseconds(resp.poll_interval_ms());
      spdlog::info("joined {} as '{}'{}", options_.server_address, options_.client_id,
                   attempt > 0 ? absl::StrCat(" after ", attempt + 1, " attempts") : "");
      return absl::OkStatus();
    }
    if (!IsTransient(s.error_code())) {
      return Annotate(FromGrpcStatus(s), "join refused");
    }
    const std::string mismatch =
        TransportMismatchHint(s, options_.tls != nullptr);
    mismatches = mismatch.empty() ? 0 : mismatches + 1;
    if (mismatches == kMismatchHintAfter && hint.empty()) {
      hint = mismatch;
      spdlog::warn("cannot join {}: {}", options_.server_address, hint);
    }
    if (options_.give_up_after > absl::ZeroDuration() &&
        absl::Now() - start > options_.give_up_after) {
      return absl::UnavailableError(absl::StrCat(
          "server ", options_.server_address, " unreachable for ",
          absl::FormatDuration(options_.give_up_after), "; last error: ",
          Describe(s), hint.empty() ? "" : absl::StrCat("; ", hint)));
    }
    const absl::Duration wait = NextBackoff(attempt);
    if (attempt == 0 || attempt % 10 == 0) {
      spdlog::info("server {} not reachable yet ({}); retrying in {}",
                   options_.server_address, Describe(s), absl::FormatDuration(wait));
    }
    Backoff(wait);
  }
  return absl::CancelledError("agent stopped");
}

absl::Status Agent::Run() {
  SHOAL_RETURN_IF_ERROR(JoinWithBackoff());
  absl::Time last_contact = absl::Now();
  int failures = 0;
  while (!stop_.load()) {
    v1::PollRequest req;
    req.set_client_id(options_.client_id);
    v1::Task task;
    auto ctx = Context(poll_wait_ + absl::Seconds(10));
    grpc::Status s = stub_->Poll(ctx.get(), req, &task);
    if (!s.ok()) {
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        // The server restarted and no longer knows this client.
        spdlog::info("server forgot this client ({}); joining again", s.error_message());
        SHOAL_RETURN_IF_ERROR(JoinWithBackoff());
        continue;
      }
      if (!IsTransient(s.error_code())) return Annotate(FromGrpcStatus(s), "poll");
      if (failures++ == 0) {
        Count([](AgentStats& st) { ++st.reconnects; });
        spdlog::warn("lost the server ({}); reconnecting", Describe(s));
      }
      if (options_.give_up_after > absl::ZeroDuration() &&
          absl::Now() - last_contact > options_.give_up_after) {
        return absl::UnavailableError(absl::StrCat(
            "server ", options_.server_address, " unreachable for ",
            absl::FormatDuration(options_.give_up_after)));
      }
      Backoff(NextBackoff(failures));
      continue;
    }
    failures = 0;
    last_contact = absl::Now();
    if (task.has_serving()) TakeServing(task.serving());
    if (task.has_shutdown()) {
      const int64_t final_version = task.shutdown().final_model().version();
      absl::Status fetched = EnsureModel(task.shutdown().final_model()).status();
      if (!fetched.ok()) {
        spdlog::warn("could not fetch the final model: {}", std::string(fetched.message()));
      }
      v1::LeaveRequest leave;
      leave.set_client_id(options_.client_id);
      v1::LeaveResponse left;
      auto leave_ctx = Context(absl::Seconds(5));
      stub_->Leave(leave_ctx.get(), leave, &left);
      spdlog::info("server ended the run ({}); final model version {} is in {}",
                   task.shutdown().reason(), final_version,
                   options_.state_dir.empty() ? "memory" : options_.state_dir);
      return absl::OkStatus();
    }
    if (task.has_wait()) {
      if (task.wait().retry_after_ms() > 0) {
        absl::SleepFor(absl::Milliseconds(task.wait().retry_after_ms()));
      }
      continue;
    }
    absl::Status served = ServeTask(task);
    Count([&](AgentStats& st) {
      const bool failed = !served.ok();
      if (task.has_fit()) {
        ++st.fit_tasks;
        st.fit_failed += failed;
      } else if (task.has_secagg()) {
        ++st.secagg_tasks;
        st.secagg_failed += failed;
      } else if (task.has_evaluate()) {
        ++st.evaluate_tasks;
        st.evaluate_failed += failed;
      }
    });
    if (!served.ok()) {
      spdlog::warn("task {} failed: {}", task.task_id(), std::string(served.message()));
    }
  }
  return absl::CancelledError("agent stopped");
}

absl::StatusOr<std::string> Agent::ReadPayload(
    grpc::ClientContext* ctx, std::unique_ptr<grpc::ClientReader<v1::Chunk>> reader,
    uint64_t max_bytes) {
  ChunkAssembler assembler(max_bytes);
  v1::Chunk chunk;
  absl::Status added = absl::OkStatus();
  while (added.ok() && reader->Read(&chunk)) added = assembler.Add(chunk);
  if (!added.ok()) ctx->TryCancel();
  grpc::Status s = reader->Finish();
  SHOAL_RETURN_IF_ERROR(added);
  SHOAL_RETURN_IF_ERROR(FromGrpcStatus(s));
  SHOAL_ASSIGN_OR_RETURN(std::string payload, assembler.Finish());
  Count([&](AgentStats& st) { st.bytes_downloaded += static_cast<int64_t>(payload.size()); });
  return payload;
}

absl::StatusOr<Parameters> Agent::DownloadAux(const std::string& task_id) {
  v1::DownloadAuxRequest req;
  req.set_client_id(options_.client_id);
  req.set_task_id(task_id);
  auto ctx = Context(options_.rpc_timeout);
  SHOAL_ASSIGN_OR_RETURN(
      std::string payload,
      Annotate(ReadPayload(ctx.get(), stub_->DownloadAux(ctx.get(), req), kMaxModelBytes),
               "aux download"));
  return Annotate(ParseParameters(payload), "auxiliary tensors");
}

absl::StatusOr<std::shared_ptr<const Parameters>> Agent::EnsureModel(
    const v1::ModelVersion& wanted) {
  const int64_t version = wanted.version();
  const std::string wanted_sha = HexEncode(wanted.sha256());
  // A server older than signed code names none; this device's own model
  // runs then (and no verifier accepts its signatures).
  const bool names_code = !wanted.model_spec().empty();
  if (cached_model_ != nullptr && cached_version_ == version &&
      (wanted_sha.empty() || wanted_sha == cached_sha256_hex_) &&
      (!names_code ||
       (wanted.model_spec() == cached_code_.spec && wanted.code_sha256() == cached_code_sha256_))) {
    if (names_code) {
      SHOAL_RETURN_IF_ERROR(ActivateCode(cached_code_));
    }
    return cached_model_;
  }
  v1::DownloadModelRequest req;
  req.set_client_id(options_.client_id);
  req.set_version(version);
  // The bytes of the version held (verified against its manifest), so the
  // server may send the change from it instead; told apart from the model
  // by the task's SHA-256, which a delta does not match.
  std::optional<std::string> base;
  if (cached_model_ != nullptr && cached_version_ < version && !wanted_sha.empty() &&
      !options_.state_dir.empty()) {
    absl::StatusOr<ModelRecord> held = ReadModelRecord(options_.state_dir, cached_version_);
    absl::StatusOr<std::string> bytes =
        held.ok() ? ReadModelPayload(options_.state_dir, *held) : held.status();
    if (bytes.ok()) {
      base = *std::move(bytes);
      req.set_delta_from(cached_version_);
    }
  }
  auto ctx = Context(options_.rpc_timeout);
  SHOAL_ASSIGN_OR_RETURN(
      std::string payload,
      Annotate(ReadPayload(ctx.get(), stub_->DownloadModel(ctx.get(), req), kMaxModelBytes),
               "model download"));
  std::string digest = Sha256(payload);
  if (base.has_value() && HexEncode(digest) != wanted_sha) {
    v1::ModelDelta delta;
    if (!delta.ParseFromString(payload) || delta.base_version() != cached_version_) {
      return absl::DataLossError(absl::StrCat("downloaded model version ", version,
                                              " is neither the model the task names nor a "
                                              "delta from version ", cached_version_));
    }
    const size_t sent = payload.size();
    SHOAL_ASSIGN_OR_RETURN(payload,
                           Annotate(DecodeModelDelta(*base, delta.xor_deflate()),
                                    absl::StrCat("model version ", version, "'s delta")));
    digest = Sha256(payload);
    spdlog::info("downloaded model version {} as a delta from version {} ({} of {} bytes)",
                 version, cached_version_, sent, payload.size());
  }
  const std::string got_sha = HexEncode(digest);
  if (!wanted_sha.empty() && got_sha != wanted_sha) {
    return absl::DataLossError(absl::StrCat(
        "downloaded model version ", version, " has SHA-256 ", got_sha,
        " but the task names ", wanted_sha));
  }
  ModelCode code = active_code_;
  if (names_code) {
    SHOAL_ASSIGN_OR_RETURN(code, FetchCode(wanted));
  }
  const std::string code_sha256 = code.torchscript.empty() ? "" : Sha256(code.torchscript);
  if (options_.model_verifier != nullptr) {
    // Over the digests of the bytes held: the task's hashes are only the
    // server's (or an interceptor's) claim. Nothing is parsed, loaded,
    // cached or kept before this passes.
    SHOAL_RETURN_IF_ERROR(Annotate(
        options_.model_verifier->Verify(
            SignedModel{version, digest, wanted.model_spec(), code_sha256}, wanted.signature()),
        "refusing the downloaded model"));
  }
  spdlog::debug("downloaded model version {} ({} bytes)", version, payload.size());
  absl::StatusOr<Parameters> params = ParseParameters(payload);
  if (!params.ok()) return Annotate(params.status(), "downloaded model");
  SHOAL_RETURN_IF_ERROR(ActivateCode(code));
  if (!options_.state_dir.empty()) {
    ModelRecord record;
    record.version = version;
    record.model_spec = code.spec;
    // Kept even when this agent does not verify, so offline inference can.
    record.signature = wanted.signature();
    absl::Status saved = absl::OkStatus();
    if (!code.torchscript.empty()) {
      // The code first: a manifest never names code that is not there.
      absl::StatusOr<std::string> code_hex =
          WriteModelCodeFile(options_.state_dir, code.torchscript);
      if (code_hex.ok()) record.code_sha256_hex = *code_hex;
      saved = code_hex.status();
    }
    if (saved.ok()) saved = WriteModelVersion(options_.state_dir, record, payload).status();
    if (saved.ok()) {
      RemoveModelVersionsBefore(options_.state_dir, version);
    } else {
      // Training can go on; only offline inference loses the newest model.
      spdlog::warn("cannot cache the model: {}", std::string(saved.message()));
    }
  }
  cached_version_ = version;
  Count([&](AgentStats& st) { st.model_version = version; });
  cached_sha256_hex_ = got_sha;
  cached_code_ = std::move(code);
  cached_code_sha256_ = code_sha256;
  cached_model_ = std::make_shared<const Parameters>(*std::move(params));
  return cached_model_;
}

void Agent::TakeServing(const v1::ModelVersion& offer) {
  ServingRuntime* serving = options_.serving;
  const int64_t version = offer.version();
  if (serving == nullptr || version <= serving->version() || version <= serving_judged_) return;
  v1::ServingReport report;
  report.set_client_id(options_.client_id);
  report.set_offered_version(version);
  absl::Status taken = [&]() -> absl::Status {
    v1::DownloadModelRequest req;
    req.set_client_id(options_.client_id);
    req.set_version(version);
    req.set_serving(true);
    auto ctx = Context(options_.rpc_timeout);
    SHOAL_ASSIGN_OR_RETURN(
        std::string payload,
        Annotate(ReadPayload(ctx.get(), stub_->DownloadModel(ctx.get(), req), kMaxModelBytes),
                 "serving version download"));
    if (Sha256(payload) != offer.sha256()) {
      return absl::DataLossError(absl::StrCat(
          "downloaded serving version ", version, " does not have the SHA-256 it was offered with"));
    }
    SHOAL_ASSIGN_OR_RETURN(ModelCode code, FetchCode(offer));
    ModelRecord record;
    record.version = version;
    record.model_spec = offer.model_spec();
    record.code_sha256_hex = offer.code_sha256().empty() ? "" : HexEncode(offer.code_sha256());
    record.signature = offer.signature();
    if (offer.has_serving()) {
      record.serving = ServingOrigin{offer.serving().run(), offer.serving().training_version()};
    }
    // The runtime verifies before anything of it runs.
    SHOAL_ASSIGN_OR_RETURN(OfferOutcome outcome, serving->Offer(record, payload, code));
    report.set_accepted(outcome.installed);
    report.set_reason(outcome.reason.substr(0, 1000));
    if (outcome.verdict) {
      report.set_metric(outcome.verdict->metric);
      report.set_offered_value(outcome.verdict->candidate);
      report.set_current_value(outcome.verdict->current);
    }
    return absl::OkStatus();
  }();
  if (!taken.ok()) {
    if (IsTransient(ToGrpcStatus(taken).error_code()) || absl::IsDataLoss(taken)) {
      spdlog::warn("serving version {}: {}; trying again at the next poll", version,
                   std::string(taken.message()));
      return;
    }
    spdlog::warn("serving version {} refused: {}", version, std::string(taken.message()));
    report.set_accepted(false);
    report.set_reason(std::string(taken.message().substr(0, 1000)));
  }
  serving_judged_ = version;
  report.set_serving_version(serving->version());
  v1::SubmitResponse response;
  auto ctx = Context(absl::Seconds(10));
  grpc::Status sent = stub_->ReportServing(ctx.get(), report, &response);
  if (!sent.ok()) spdlog::warn("could not report the serving version: {}", Describe(sent));
}

absl::StatusOr<ModelCode> Agent::FetchCode(const v1::ModelVersion& wanted) {
  const int64_t version = wanted.version();
  const std::string& sha256 = wanted.code_sha256();
  // A built-in's code ships with Shoal; the signature says whether the
  // server meant this one.
  if (wanted.model_spec() != kTorchScriptModelSpec) return ModelCode{wanted.model_spec(), ""};
  if (sha256.size() != 32) {
    return absl::DataLossError(absl::StrCat("model version ", version,
                                            " names TorchScript code without its 32-byte "
                                            "SHA-256 (got ", sha256.size(), " bytes)"));
  }
  if (sha256 == active_code_sha256_) return active_code_;
  if (sha256 == cached_code_sha256_) return cached_code_;
  if (!options_.state_dir.empty()) {
    absl::StatusOr<std::string> held = ReadModelCodeFile(options_.state_dir, HexEncode(sha256));
    if (held.ok()) return ModelCode{kTorchScriptModelSpec, *std::move(held)};
  }
  if (wanted.code_size_bytes() > kMaxModelCodeBytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("model version ", version, "'s code is ", wanted.code_size_bytes(),
                     " bytes; this device accepts at most ", kMaxModelCodeBytes));
  }
  v1::DownloadModelCodeRequest req;
  req.set_client_id(options_.client_id);
  req.set_sha256(sha256);
  auto ctx = Context(options_.rpc_timeout);
  SHOAL_ASSIGN_OR_RETURN(
      std::string bytes,
      Annotate(ReadPayload(ctx.get(), stub_->DownloadModelCode(ctx.get(), req), kMaxModelCodeBytes),
               "model code download"));
  if (Sha256(bytes) != sha256) {
    return absl::DataLossError(absl::StrCat("downloaded code of model version ", version,
                                            " has SHA-256 ", Sha256Hex(bytes),
                                            " but the task names ", HexEncode(sha256)));
  }
  spdlog::info("downloaded the model's TorchScript code ({} bytes, SHA-256 {})", bytes.size(),
               HexEncode(sha256).substr(0, 16));
  return ModelCode{kTorchScriptModelSpec, std::move(bytes)};
}

absl::Status Agent::ActivateCode(const ModelCode& code) {
  if (code.spec == active_code_.spec && code.torchscript == active_code_.torchscript) {
    return absl::OkStatus();
  }
  const bool configured =
      code.spec == options_.model_code.spec && code.torchscript == options_.model_code.torchscript;
  if (!configured && !code.torchscript.empty() && options_.model_verifier == nullptr) {
    // Without signatures nothing says who sent the code: on a plaintext
    // link anyone on the path could. A device runs unauthenticated
    // TorchScript only when it is the code its own config names.
    return absl::PermissionDeniedError(absl::StrCat(
        "the server sent TorchScript code (SHA-256 ", Sha256Hex(code.torchscript).substr(0, 16),
        ") that is not this device's configured model, and this device does not verify "
        "signatures: refusing to run code it cannot authenticate (configure the same model, "
        "or join with --pki-dir so models are signed)"));
  }
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                         Annotate(CreateModelFromCode(code, options_.seed), "the model's code"));
  const auto describe = [](const ModelCode& c) {
    return c.torchscript.empty()
               ? c.spec
               : absl::StrCat(c.spec, ", code SHA-256 ", Sha256Hex(c.torchscript).substr(0, 16));
  };
  if (!configured) {
    // The server decides what the federation trains; a device's config
    // that names another model is reported, not obeyed.
    spdlog::warn(
        "the server's {}model ({}) is not this device's configured model ({}); "
        "training, evaluating and caching the server's",
        options_.model_verifier != nullptr ? "signed " : "", describe(code),
        describe(options_.model_code));
  }
  local_->ReplaceModel(std::move(model));
  active_code_ = code;
  active_code_sha256_ = code.torchscript.empty() ? "" : Sha256(code.torchscript);
  return absl::OkStatus();
}

absl::Status Agent::UploadFit(const std::string& task_id, const FitRes& res) {
  v1::FitResultHeader header;
  header.set_client_id(options_.client_id);
  header.set_task_id(task_id);
  std::string bytes;
  if (res.secagg.has_value()) {
    // The masked input alone: num_examples travels inside it, and neither
    // it, the update nor the metrics may leave the device in the clear.
    v1::UpdateProto masked;
    *masked.mutable_secagg() = *res.secagg;
    bytes = masked.SerializeAsString();
  } else {
    header.set_num_examples(res.num_examples);
    MetricsToProto(res.metrics, header.mutable_metrics());
    if (res.compressed != nullptr) {
      v1::UpdateProto wire = *res.compressed;
      for (size_t i = 0; i < res.aux.size(); ++i) {
        TensorToProto(res.aux.name(i), res.aux.tensor(i), wire.add_aux());
      }
      bytes = wire.SerializeAsString();
    } else {
      bytes = SerializeUpdate(res.update, res.aux);
    }
  }
  const ChunkedPayload payload(std::move(bytes));
  grpc::Status s;
  for (int attempt = 0; attempt < kUploadAttempts; ++attempt) {
    auto ctx = Context(options_.rpc_timeout);
    v1::SubmitResponse resp;
    std::unique_ptr<grpc::ClientWriter<v1::SubmitFitRequest>> writer =
        stub_->SubmitFit(ctx.get(), &resp);
    v1::SubmitFitRequest msg;
    for (uint32_t i = 0; i < payload.num_chunks(); ++i) {
      msg.Clear();
      if (i == 0) *msg.mutable_header() = header;
      payload.FillChunk(i, msg.mutable_chunk());
      if (!writer->Write(msg)) break;  // the server ended the call; Finish says why
    }
    writer->WritesDone();
    s = writer->Finish();
    if (s.ok()) {
      Count([&](AgentStats& st) {
        st.bytes_uploaded += static_cast<int64_t>(payload.payload().size());
      });
      return absl::OkStatus();
    }
    const bool retry = IsTransient(s.error_code()) ||
                       s.error_code() == grpc::StatusCode::DATA_LOSS;
    if (!retry) break;
    Backoff(NextBackoff(attempt));
  }
  return Annotate(FromGrpcStatus(s), "upload refused");
}

void Agent::ReportFitFailure(const std::string& task_id, const absl::Status& error) {
  v1::SubmitFitRequest msg;
  msg.mutable_header()->set_client_id(options_.client_id);
  msg.mutable_header()->set_task_id(task_id);
  msg.mutable_header()->set_error(ErrorForServer(error));
  if (IsDeclined(error)) {
    Count([](AgentStats& st) { ++st.declined; });
    msg.mutable_header()->set_declined(ErrorForServer(absl::UnknownError(DeclinedReason(error))));
  }
  auto ctx = Context(absl::Seconds(10));
  v1::SubmitResponse resp;
  auto writer = stub_->SubmitFit(ctx.get(), &resp);
  writer->Write(msg);
  writer->WritesDone();
  writer->Finish();
}

absl::Status Agent::ServeFit(const v1::Task& task) {
  const v1::FitTask& fit = task.fit();
  const bool secure = fit.has_secagg();
  std::optional<FitRes> trained;  // for the log line; the masked result hides it
  absl::StatusOr<FitRes> res;
  if (secure && task.task_id() == secagg_task_id_) {
    // Trained and masked already; the upload did not arrive.
    if (secagg_answer_.ok()) {
      res = FitRes{};
      res->secagg = *secagg_answer_;
    } else {
      res = secagg_answer_.status();
    }
  } else {
    // In a securely aggregated round the device was asked at the session's
    // setup (ServeSecAgg): having shared keys, leaving now would cost the
    // others an unmasking.
    if (options_.may_train && !secure) {
      if (absl::Status may = options_.may_train(); !may.ok()) {
        // Not a failure: the device says "not now", before fetching anything.
        const std::string reason(may.message().empty() ? "no reason given" : may.message());
        spdlog::info("round {}: declined to train: {}", fit.round(), reason);
        ReportFitFailure(task.task_id(), DeclinedError(reason));
        return absl::OkStatus();
      }
    }
    absl::StatusOr<std::shared_ptr<const Parameters>> model = EnsureModel(fit.model());
    if (absl::IsPermissionDenied(model.status())) {
      // Tell the server now, so the round does not wait for this client and
      // the operator sees why it dropped out.
      ReportFitFailure(task.task_id(), model.status());
    }
    SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<const Parameters> global, std::move(model));
    std::optional<Parameters> aux;
    if (fit.has_aux()) {
      SHOAL_ASSIGN_OR_RETURN(aux, DownloadAux(task.task_id()));
    }
    res = local_->Fit(*global, fit.config(), fit.round(), aux ? &*aux : nullptr);
    if (res.ok()) trained = *res;
    if (res.ok() && !options_.state_dir.empty() &&
        (!local_->algorithm_state().empty() || kept_state_)) {
      absl::Status saved = WriteClientState(options_.state_dir, local_->algorithm_state());
      if (!saved.ok()) {
        spdlog::warn("cannot keep the state between rounds: {}", std::string(saved.message()));
      }
      kept_state_ = true;
    }
    if (res.ok() && secure) {
      res = secagg_.MaskedResult(fit.secagg(), *res);
      secagg_task_id_ = task.task_id();
      secagg_answer_ = res.ok() ? absl::StatusOr<v1::SecAggClientMessage>(*res->secagg)
                                : res.status();
    }
  }
  if (!res.ok()) {
    // Tell the server at once, so the round does not wait for us.
    ReportFitFailure(task.task_id(), res.status());
    return res.status();
  }
  SHOAL_RETURN_IF_ERROR(UploadFit(task.task_id(), *res));
  Count([&](AgentStats& st) {
    ++st.rounds;
    if (!trained) return;
    st.train_seconds += MetricAsDouble(trained->metrics.at("fit_seconds"));
    st.train_examples += trained->num_examples;
    st.last_train_loss = MetricAsDouble(trained->metrics.at("train_loss"));
  });
  if (trained) {
    std::string compressed;
    if (trained->compressed != nullptr) {
      compressed = absl::StrFormat(" (update compressed in %.3f s)",
                                   MetricAsDouble(trained->metrics.at("compress_seconds")));
    }
    std::string capped;
    if (trained->metrics.count(kStoppedEarlyMetric) > 0) {
      capped = absl::StrCat(" (stopped by the time budget after ",
                            MetricAsDouble(trained->metrics.at(kStepsMetric)), " steps)");
    }
    if (auto batch = trained->metrics.find(kBatchSizeMetric); batch != trained->metrics.end()) {
      absl::StrAppend(&capped, " (batch size ", MetricAsDouble(batch->second),
                      " to fit the memory budget)");
    }
    spdlog::info("round {}: trained on {} examples, loss {:.4f}, in {:.1f} s{}{}", fit.round(),
                 trained->num_examples, MetricAsDouble(trained->metrics.at("train_loss")),
                 MetricAsDouble(trained->metrics.at("fit_seconds")), compressed, capped);
  }
  if (secure) {
    spdlog::info("round {}: answered secure-aggregation stage 'shares' with the masked update{}",
                 fit.round(), trained ? "" : " (sent again)");
  }
  return absl::OkStatus();
}

absl::Status Agent::SubmitSecAgg(const std::string& task_id,
                                 const absl::StatusOr<v1::SecAggClientMessage>& answer) {
  v1::SecAggSubmission req;
  req.set_client_id(options_.client_id);
  req.set_task_id(task_id);
  if (answer.ok()) {
    *req.mutable_message() = *answer;
  } else {
    req.set_error(ErrorForServer(answer.status()));
  }
  grpc::Status s;
  for (int attempt = 0; attempt < kUploadAttempts; ++attempt) {
    auto ctx = Context(options_.rpc_timeout);
    v1::SubmitResponse resp;
    s = stub_->SubmitSecAgg(ctx.get(), req, &resp);
    if (s.ok()) {
      Count([&](AgentStats& st) { st.bytes_uploaded += static_cast<int64_t>(req.ByteSizeLong()); });
      return absl::OkStatus();
    }
    if (!IsTransient(s.error_code())) break;
    Backoff(NextBackoff(attempt));
  }
  return Annotate(FromGrpcStatus(s), "secure-aggregation answer refused");
}

absl::Status Agent::ServeSecAgg(const v1::Task& task) {
  const v1::SecAggTask& secagg = task.secagg();
  const char* stage = secagg::MessageName(secagg.message().stage_case());
  const bool again = task.task_id() == secagg_task_id_;
  if (!again && options_.may_train && secagg.message().has_setup()) {
    // Asked before the session, where leaving costs nobody anything.
    if (absl::Status may = options_.may_train(); !may.ok()) {
      const std::string reason(may.message().empty() ? "no reason given" : may.message());
      spdlog::info("round {}: declined to train: {}", secagg.round(), reason);
      secagg_task_id_ = task.task_id();
      secagg_answer_ = DeclinedError(reason);
      Count([](AgentStats& st) { ++st.declined; });
      SubmitSecAgg(task.task_id(), secagg_answer_).IgnoreError();
      return absl::OkStatus();
    }
  }
  if (!again) {
    secagg_answer_ = secagg_.Handle(secagg.message());
    secagg_task_id_ = task.task_id();
    if (!secagg_answer_.ok()) {
      spdlog::warn("round {}: giving up secure-aggregation stage '{}': {}", secagg.round(),
                   stage, std::string(secagg_answer_.status().message()));
    }
  }
  SHOAL_RETURN_IF_ERROR(SubmitSecAgg(task.task_id(), secagg_answer_));
  if (secagg_answer_.ok()) {
    spdlog::info("round {}: answered secure-aggregation stage '{}'{}", secagg.round(), stage,
                 again ? " (sent again)" : "");
  }
  return secagg_answer_.status();
}

absl::Status Agent::ServeTask(const v1::Task& task) {
  if (task.has_fit()) return ServeFit(task);
  if (task.has_secagg()) return ServeSecAgg(task);
  if (task.has_evaluate()) {
    const v1::EvaluateTask& eval = task.evaluate();
    SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<const Parameters> global,
                           EnsureModel(eval.model()));
    absl::StatusOr<EvaluateRes> res = local_->Evaluate(*global, eval.config());
    v1::EvaluateResult out;
    out.set_client_id(options_.client_id);
    out.set_task_id(task.task_id());
    if (res.ok()) {
      out.set_num_examples(res->num_examples);
      out.set_loss(res->loss);
      MetricsToProto(res->metrics, out.mutable_metrics());
    } else {
      out.set_error(ErrorForServer(res.status()));
    }
    auto ctx = Context(options_.rpc_timeout);
    v1::SubmitResponse resp;
    SHOAL_RETURN_IF_ERROR(FromGrpcStatus(stub_->SubmitEvaluate(ctx.get(), out, &resp)));
    return res.status();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("task '", task.task_id(), "' has no kind this client knows"));
}

}  // namespace shoal::client
