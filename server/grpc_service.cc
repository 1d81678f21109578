#include "server/grpc_service.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/chunking.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/quote.h"
#include "common/metrics.h"
#include "common/net_address.h"
#include "common/pki.h"
#include "common/status.h"
#include "common/update_compression.h"

namespace shoal {

absl::Status ValidateClientId(const std::string& id) { return ValidatePkiClientId(id); }

namespace {

absl::Status CheckStrings(const google::protobuf::Message& message,
                          const std::string& prefix) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string name = absl::StrCat(prefix, field->name());
    const int count =
        field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      if (field->type() == FieldDescriptor::TYPE_STRING) {
        std::string scratch;
        const std::string& value =
            field->is_repeated()
                ? reflection->GetRepeatedStringReference(message, field, i,
                                                         &scratch)
                : reflection->GetStringReference(message, field, &scratch);
        if (value.size() > kMaxRequestStringBytes) {
          return absl::InvalidArgumentError(
              absl::StrCat("request field '", name, "' is ", value.size(),
                           " bytes; the limit is ", kMaxRequestStringBytes));
        }
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const google::protobuf::Message& child =
            field->is_repeated()
                ? reflection->GetRepeatedMessage(message, field, i)
                : reflection->GetMessage(message, field);
        SHOAL_RETURN_IF_ERROR(CheckStrings(child, absl::StrCat(name, ".")));
      }
    }
  }
  return absl::OkStatus();
}

// WhyCannotListen says why gRPC could not listen on `where`, which gRPC
// itself only logs: it binds a socket the same way (no SO_REUSEPORT) and
// reports the error.
std::string WhyCannotListen(const HostPort& where) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(where.port);
  const int resolved =
      ::getaddrinfo(where.host.c_str(), port.c_str(), &hints, &found);
  if (resolved != 0) {
    return absl::StrCat("host '", where.host, "' does not resolve (",
                        ::gai_strerror(resolved), ")");
  }
  std::string why = "unknown reason (see the grpc log lines above)";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const int bound = ::bind(fd, a->ai_addr, a->ai_addrlen);
    const int error = errno;
    ::close(fd);
    if (bound == 0) continue;
    if (error == EADDRINUSE) {
      why = absl::StrCat(
          "address in use: port ", where.port,
          " is taken (another shoal server?); choose another port with "
          "server.address or --address");
      break;
    }
    why = absl::StrCat(
        std::strerror(error),
        (error == EADDRNOTAVAIL ? " (not an address of this machine)" : ""));
  }
  ::freeaddrinfo(found);
  return why;
}

}  // namespace

absl::Status ValidateRequestStrings(const google::protobuf::Message& request) {
  return CheckStrings(request, "");
}

namespace {

grpc::Status StreamPayload(const ChunkedPayload& payload, grpc::ServerWriter<v1::Chunk>* writer) {
  v1::Chunk chunk;
  for (uint32_t i = 0; i < payload.num_chunks(); ++i) {
    payload.FillChunk(i, &chunk);
    if (!writer->Write(chunk)) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "client went away");
    }
  }
  return grpc::Status::OK;
}

// CarriesSecAgg tells whether a serialized UpdateProto sets `secagg`, by
// stepping over its top-level fields without copying them: a plain update is
// then still parsed once, by ParseFitUpload. A malformed payload answers false
// and ParseFitUpload reports it.
bool CarriesSecAgg(const std::string& payload) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(payload.data()), static_cast<int>(payload.size()));
  for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == v1::UpdateProto::kSecaggFieldNumber) {
      return true;
    }
    if (!WireFormatLite::SkipField(&in, tag)) return false;
  }
  return false;
}

// MaskedFitRes reads a securely aggregated fit result. Only the masked input
// may travel: the update, num_examples or metrics in the clear would undo
// the protocol for this client, so they are refused rather than dropped.
absl::StatusOr<FitRes> MaskedFitRes(const v1::FitResultHeader& header,
                                    const std::string& payload) {
  v1::UpdateProto proto;
  if (!proto.ParseFromString(payload)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot parse the fit result: ", payload.size(), " bytes are not a valid UpdateProto"));
  }
  if (proto.tensors_size() > 0 || proto.aux_size() > 0 || proto.compressed_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the fit result carries a masked input (secure aggregation) and also ",
        proto.tensors_size(), " update and ", proto.aux_size(),
        " auxiliary tensors in the clear; a securely aggregated round takes the "
        "masked input alone"));
  }
  if (header.num_examples() != 0 || header.metrics_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a securely aggregated fit result must report num_examples 0 and no metrics "
        "in the clear (got num_examples ", header.num_examples(), " and ",
        header.metrics_size(), " metrics): num_examples travels masked"));
  }
  FitRes res;
  res.secagg = std::move(*proto.mutable_secagg());
  return res;
}

}  // namespace

// PollTimer answers each waiting poll from one thread: at its deadline, or
// at once when its proxy fired it. Answering reads the rollout, the store
// and the proxy under their locks, so it never runs on the thread that
// fired (which may hold any of them: a promotion wakes every device while
// the rollout's lock is held). A poll answered before is gone, or answers
// as a no-op.
class PollTimer {
 public:
  PollTimer() : thread_([this] { Loop(); }) {}
  ~PollTimer() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }
  void Add(absl::Time deadline, std::weak_ptr<PollWaiter> waiter) {
    absl::MutexLock lock(&mu_);
    due_.emplace(deadline, std::move(waiter));
  }
  // Soon answers `waiter` on the timer's thread as soon as it can.
  void Soon(std::weak_ptr<PollWaiter> waiter) { Add(absl::InfinitePast(), std::move(waiter)); }

 private:
  void Loop();

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::multimap<absl::Time, std::weak_ptr<PollWaiter>> due_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

FederationService::FederationService(FederationServiceOptions options,
                                     ClientManager* clients, ModelStore* store)
    : options_(std::move(options)),
      access_([this] {
        AccessControlOptions access = options_.access;
        access.on_revoked = [this, also = access.on_revoked](
                                const std::vector<std::string>& ids) {
          DropRevoked(ids);
          if (also) also(ids);
        };
        return access;
      }()),
      clients_(clients),
      // Not owned: a shared_ptr that deletes nothing.
      store_(std::shared_ptr<ModelStore>(), store),
      run_id_(options_.run_id),
      poll_timer_(std::make_unique<PollTimer>()) {
  if (options_.serving != nullptr) {
    serving_listener_ = options_.serving->Listen([this] { WakeAll(); });
  }
}

FederationService::~FederationService() {
  if (serving_listener_ >= 0) options_.serving->Unlisten(serving_listener_);
}

void FederationService::SetRun(const std::string& run_id, std::shared_ptr<ModelStore> store) {
  absl::MutexLock lock(&run_mu_);
  run_id_ = run_id;
  store_ = std::move(store);
}

std::shared_ptr<ModelStore> FederationService::Store() const {
  absl::MutexLock lock(&run_mu_);
  return store_;
}

void FederationService::WakeAll() {
  for (const std::string& id : clients_->RegisteredIds()) {
    if (auto proxy = std::dynamic_pointer_cast<GrpcClientProxy>(clients_->Find(id))) {
      proxy->Wake();
    }
  }
}

void FederationService::DropRevoked(const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    std::shared_ptr<ClientProxy> proxy = clients_->Find(id);
    if (proxy == nullptr) continue;
    clients_->Unregister(id);
    if (auto grpc_proxy = std::dynamic_pointer_cast<GrpcClientProxy>(proxy)) {
      grpc_proxy->Fail(absl::PermissionDeniedError(absl::StrCat(
          "client '", id, "' was revoked while its task was open")));
    }
    spdlog::warn(
        "client '{}' is revoked: dropped from the registry, its open task "
        "failed",
        id);
  }
}

void FederationService::LogRefusal(absl::string_view what,
                                   const std::string& peer,
                                   const absl::Status& why) {
  int64_t suppressed = 0;
  if (!refusal_log_.Allow(&suppressed)) return;
  spdlog::warn("{} from {} refused: {}{}", std::string(what), peer,
               std::string(why.message()), SuppressedNote(suppressed));
}

absl::StatusOr<AccessControl::Ticket> FederationService::Admit(
    grpc::ServerContextBase* ctx, const google::protobuf::Message& request,
    const std::string& id) {
  absl::Status valid = ValidateRequestStrings(request);
  if (valid.ok()) valid = ValidateClientId(id);
  if (!valid.ok()) {
    LogRefusal("call", ctx->peer(), valid);
    return valid;
  }
  // A revoked client is dropped by DropRevoked, through access_.
  absl::StatusOr<AccessControl::Ticket> ticket =
      access_.Admit(*ctx->auth_context(), id);
  if (!ticket.ok() && !absl::IsResourceExhausted(ticket.status())) {
    LogRefusal("call", ctx->peer(), ticket.status());
  }
  return ticket;
}

absl::StatusOr<std::shared_ptr<GrpcClientProxy>> FederationService::KnownClient(
    const std::string& id) {
  SHOAL_RETURN_IF_ERROR(ValidateClientId(id));
  auto proxy = std::dynamic_pointer_cast<GrpcClientProxy>(clients_->Find(id));
  if (proxy == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("unknown client '", id, "': call Join first"));
  }
  clients_->Heartbeat(id);
  return proxy;
}

grpc::Status FederationService::Join(grpc::ServerContext* ctx,
                                     const v1::JoinRequest* req,
                                     v1::JoinResponse* resp) {
  absl::StatusOr<AccessControl::Ticket> ticket =
      Admit(ctx, *req, req->client_id());
  if (!ticket.ok()) return ToGrpcStatus(ticket.status());
  if (req->num_train_examples() < 0 || req->num_evaluate_examples() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "declared example counts must be >= 0, got num_train_examples ",
        req->num_train_examples(), " and num_evaluate_examples ",
        req->num_evaluate_examples())));
  }
  const DeclaredExamples declared{req->num_train_examples(),
                                  req->num_evaluate_examples()};
  // A known ID keeps its proxy (and any open task): the device restarted or
  // reconnected. A new ID gets a fresh one. Either way the declaration is
  // the latest Join's (a device's data may have changed while it was away).
  if (clients_->Find(req->client_id()) == nullptr) {
    auto proxy =
        std::make_shared<GrpcClientProxy>(req->client_id(), options_.epoch);
    proxy->Declare(declared);
    clients_->Register(std::move(proxy));
    spdlog::info("client '{}' joined from {} ({} registered)", req->client_id(),
                 ctx->peer(), clients_->NumRegistered());
  } else {
    if (auto known = std::dynamic_pointer_cast<GrpcClientProxy>(
            clients_->Find(req->client_id()))) {
      known->Declare(declared);
    }
    clients_->Heartbeat(req->client_id());
    spdlog::info("client '{}' rejoined from {}", req->client_id(), ctx->peer());
  }
  // A revocation that landed between Admit and Register found nothing to
  // drop; without this check the device would stay registered (and be
  // sampled) until its next call.
  if (access_.IsRevoked(req->client_id())) {
    DropRevoked({req->client_id()});
    return ToGrpcStatus(absl::PermissionDeniedError(
        absl::StrCat("client '", req->client_id(), "' is revoked")));
  }
  resp->set_poll_interval_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.max_poll_wait)));
  {
    absl::MutexLock lock(&run_mu_);
    resp->set_run_id(run_id_);
  }
  return grpc::Status::OK;
}

// PendingPoll is one long poll in flight: the reactor gRPC answers through,
// and the waiter the proxy and the timer fire. It is answered exactly once
// (answered_), by whichever comes first: the proxy, the timer, or the
// device going away (OnCancel); after that nothing touches the reactor,
// which gRPC deletes in OnDone.
class FederationService::PendingPoll : public PollWaiter,
                                        public std::enable_shared_from_this<PendingPoll> {
 public:
  class Reactor : public grpc::ServerUnaryReactor {
   public:
    void OnCancel() override {
      if (poll_ != nullptr) poll_->Answer(grpc::Status::CANCELLED);
    }
    void OnDone() override { delete this; }
    std::shared_ptr<PendingPoll> poll_;  // set before the call can end
  };

  PendingPoll(FederationService* service, std::shared_ptr<GrpcClientProxy> proxy,
              v1::Task* task, AccessControl::Ticket ticket, Reactor* reactor)
      : service_(service),
        proxy_(std::move(proxy)),
        task_(task),
        ticket_(std::move(ticket)),
        reactor_(reactor) {}

  // Fire (the proxy, on whatever thread made the task) hands the answer to
  // the timer's thread.
  void Fire() override { service_->poll_timer_->Soon(weak_from_this()); }

  // Answer ends the call with `status` (OK: with the task there is now),
  // unless it has been answered already.
  void Answer(const grpc::Status& status) {
    if (answered_.exchange(true)) return;
    proxy_->DropWaiter(this);  // the proxy holds it no more (nor the proxy, through it)
    if (status.ok()) service_->AnswerPoll(*proxy_, task_);
    // The device's in-flight slot is free once its poll is answered.
    ticket_ = AccessControl::Ticket();
    reactor_->Finish(status);
  }

 private:
  FederationService* const service_;
  const std::shared_ptr<GrpcClientProxy> proxy_;
  v1::Task* const task_;  // gRPC's, valid until Finish
  AccessControl::Ticket ticket_;
  Reactor* const reactor_;
  std::atomic<bool> answered_{false};
};

void PollTimer::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    const absl::Time next = due_.empty() ? absl::InfiniteFuture() : due_.begin()->first;
    auto wake = [this, next]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || (!due_.empty() && due_.begin()->first < next);
    };
    // Up to 100 ms late at most, so a new earlier deadline is never
    // missed by long.
    mu_.AwaitWithDeadline(absl::Condition(&wake),
                          std::min(next, absl::Now() + absl::Milliseconds(100)));
    std::vector<std::shared_ptr<PollWaiter>> fire;
    const absl::Time now = absl::Now();
    while (!due_.empty() && due_.begin()->first <= now) {
      if (auto w = due_.begin()->second.lock()) fire.push_back(std::move(w));
      due_.erase(due_.begin());
    }
    if (fire.empty()) continue;
    mu_.Unlock();
    for (const auto& w : fire) static_cast<FederationService::PendingPoll&>(*w).Answer(grpc::Status::OK);
    mu_.Lock();
  }
}

grpc::ServerUnaryReactor* FederationService::Poll(grpc::CallbackServerContext* ctx,
                                                  const v1::PollRequest* req, v1::Task* task) {
  auto* reactor = new PendingPoll::Reactor;
  absl::StatusOr<AccessControl::Ticket> ticket =
      Admit(ctx, *req, req->client_id());
  if (!ticket.ok()) {
    reactor->Finish(ToGrpcStatus(ticket.status()));
    return reactor;
  }
  absl::StatusOr<std::shared_ptr<GrpcClientProxy>> proxy = KnownClient(req->client_id());
  if (!proxy.ok()) {
    reactor->Finish(ToGrpcStatus(proxy.status()));
    return reactor;
  }
  // Never hold a call past the client's own deadline.
  absl::Duration wait = options_.max_poll_wait;
  const auto client_deadline = absl::FromChrono(ctx->deadline());
  if (client_deadline < absl::Now() + wait) {
    wait = std::max(absl::ZeroDuration(), client_deadline - absl::Now() - absl::Milliseconds(200));
  }
  auto poll = std::make_shared<PendingPoll>(this, *proxy, task, *std::move(ticket), reactor);
  reactor->poll_ = poll;
  if (wait <= absl::ZeroDuration() || (*proxy)->AwaitTask(poll)) {
    poll->Answer(grpc::Status::OK);  // on gRPC's thread, holding nothing
  } else {
    poll_timer_->Add(absl::Now() + wait, poll);
  }
  return reactor;
}

void FederationService::AnswerPoll(GrpcClientProxy& proxy, v1::Task* task) {
  *task = proxy.NextTask(absl::ZeroDuration());
  clients_->Heartbeat(proxy.id());
  // Name the exact bytes of the model the task refers to, so a device never
  // trains on a cached model that merely has the same version number.
  v1::ModelVersion* model = task->has_fit()        ? task->mutable_fit()->mutable_model()
                            : task->has_evaluate() ? task->mutable_evaluate()->mutable_model()
                            : task->has_shutdown() ? task->mutable_shutdown()->mutable_final_model()
                                                   : nullptr;
  const std::shared_ptr<ModelStore> store = model != nullptr ? Store() : nullptr;
  if (store != nullptr) {
    absl::StatusOr<StoredModel> stored = store->Get(model->version());
    if (stored.ok()) {
      model->set_sha256(stored->payload->header().sha256());
      model->set_size_bytes(stored->payload->header().total_bytes());
      model->set_signature(stored->record.signature);
      // And the code the weights run with, which the signature covers too.
      absl::StatusOr<SignedModel> code =
          SignedModelOf(stored->record, stored->payload->header().sha256());
      if (code.ok()) {
        model->set_model_spec(code->spec);
        model->set_code_sha256(code->code_sha256);
        if (!code->code_sha256.empty()) {
          absl::StatusOr<std::shared_ptr<const ChunkedPayload>> bytes =
              store->Code(code->code_sha256);
          if (bytes.ok()) model->set_code_size_bytes((*bytes)->header().total_bytes());
        }
      }
    }
  }
  std::optional<v1::ModelVersion> offer;
  if (options_.rollout != nullptr) {
    offer = options_.rollout->OfferFor(proxy.id());
  } else if (options_.serving != nullptr) {
    offer = options_.serving->Offer();
  }
  if (offer) *task->mutable_serving() = *std::move(offer);
}

grpc::Status FederationService::DownloadModel(grpc::ServerContext* ctx,
                                              const v1::DownloadModelRequest* req,
                                              grpc::ServerWriter<v1::Chunk>* writer) {
  absl::StatusOr<AccessControl::Ticket> ticket =
      Admit(ctx, *req, req->client_id());
  if (!ticket.ok()) return ToGrpcStatus(ticket.status());
  absl::StatusOr<std::shared_ptr<GrpcClientProxy>> proxy = KnownClient(req->client_id());
  if (!proxy.ok()) return ToGrpcStatus(proxy.status());
  if (req->serving() && options_.serving == nullptr) {
    return ToGrpcStatus(absl::NotFoundError("this server offers no serving versions"));
  }
  const std::shared_ptr<ModelStore> store = Store();
  if (!req->serving() && store == nullptr) {
    return ToGrpcStatus(absl::FailedPreconditionError("no run is in progress"));
  }
  if (!req->serving() && req->has_delta_from() && store->delta_downloads()) {
    // Anything that stops a delta (the base is gone, another model) only
    // means the whole model goes.
    absl::StatusOr<std::shared_ptr<const ChunkedPayload>> delta =
        store->DeltaPayload(req->version(), req->delta_from());
    if (delta.ok()) {
      grpc::Status sent = StreamPayload(**delta, writer);
      if (sent.ok()) (*proxy)->NoteDownloaded(req->version());
      return sent;
    }
  }
  absl::StatusOr<std::shared_ptr<const ChunkedPayload>> payload =
      req->serving() ? options_.serving->Payload(req->version()) : store->Payload(req->version());
  if (!payload.ok()) return ToGrpcStatus(payload.status());
  grpc::Status sent = StreamPayload(**payload, writer);
  if (sent.ok() && !req->serving()) (*proxy)->NoteDownloaded(req->version());
  return sent;
}

grpc::Status FederationService::DownloadModelCode(grpc::ServerContext* ctx,
                                                  const v1::DownloadModelCodeRequest* req,
                                                  grpc::ServerWriter<v1::Chunk>* writer) {
  absl::StatusOr<AccessControl::Ticket> ticket = Admit(ctx, *req, req->client_id());
  if (!ticket.ok()) return ToGrpcStatus(ticket.status());
  absl::StatusOr<std::shared_ptr<GrpcClientProxy>> proxy = KnownClient(req->client_id());
  if (!proxy.ok()) return ToGrpcStatus(proxy.status());
  const std::shared_ptr<ModelStore> store = Store();
  absl::StatusOr<std::shared_ptr<const ChunkedPayload>> code =
      store != nullptr ? store->Code(req->sha256())
                       : absl::StatusOr<std::shared_ptr<const ChunkedPayload>>(
                             absl::NotFoundError("no run is in progress"));
  if (absl::IsNotFound(code.status()) && options_.serving != nullptr) {
    code = options_.serving->Code(req->sha256());  // a serving version's
  }
  if (!code.ok()) return ToGrpcStatus(code.status());
  return StreamPayload(**code, writer);
}

grpc::Status FederationService::DownloadAux(grpc::ServerContext* ctx,
                                            const v1::DownloadAuxRequest* req,
                                            grpc::ServerWriter<v1::Chunk>* writer) {
  absl::StatusOr<AccessControl::Ticket> ticket =
      Admit(ctx, *req, req->client_id());
  if (!ticket.ok()) return ToGrpcStatus(ticket.status());
  absl::StatusOr<std::shared_ptr<GrpcClientProxy>> proxy = KnownClient(req->client_id());
  if (!proxy.ok()) return ToGrpcStatus(proxy.status());
  absl::StatusOr<GrpcClientProxy::FitTaskInputs> inputs = (*proxy)->OpenFitTask(req->task_id());
  if (!inputs.ok()) return ToGrpcStatus(inputs.status());
  if (inputs->aux == nullptr) {
    return ToGrpcStatus(absl::NotFoundError(
        absl::StrCat("fit task '", req->task_id(), "' has no auxiliary tensors")));
  }
  // Serialized per download and dropped after it: a round's aux is shared by
  // every task, and keeping one serialized copy per waiting client would cost
  // a model's size per client.
  return StreamPayload(ChunkedPayload(SerializeParameters(*inputs->aux)), writer);
}

absl::Status FederationService::ReceiveFit(
    grpc::ServerContext* ctx, grpc::ServerReader<v1::SubmitFitRequest>* reader) {
  v1::SubmitFitRequest msg;
  if (!reader->Read(&msg)) {
    // The client sent nothing, or its link broke before the first message.
    return absl::InvalidArgumentError(
        "the SubmitFit stream ended before its first message (nothing sent, or the link "
        "broke)");
  }
  if (!msg.has_header()) {
    return absl::InvalidArgumentError("the first SubmitFit message must carry the header");
  }
  const v1::FitResultHeader header = msg.header();
  SHOAL_ASSIGN_OR_RETURN(AccessControl::Ticket ticket,
                         Admit(ctx, msg, header.client_id()));
  SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<GrpcClientProxy> proxy,
                         KnownClient(header.client_id()));
  // A retried upload of a task answered already is not read nor counted
  // again: "already received" (OK) when the first was accepted.
  if (std::optional<absl::Status> again = proxy->Answered(header.task_id())) return *again;
  // Refuse before reading megabytes when the task is not open.
  SHOAL_ASSIGN_OR_RETURN(GrpcClientProxy::FitTaskInputs inputs,
                         proxy->OpenFitTask(header.task_id()));
  if (!header.declined().empty()) {
    // The client chose not to train now: its reason, counted as a decline.
    proxy->CompleteFit(header.task_id(), DeclinedError(QuoteForMessage(header.declined(), 200)))
        .IgnoreError();
    return absl::OkStatus();
  }
  if (!header.error().empty()) {
    // The client could not train; fail its task now so the round need not
    // wait for the deadline.
    proxy->CompleteFit(header.task_id(),
                       absl::AbortedError(absl::StrCat("client reported: ", QuoteForMessage(header.error(), 200))))
        .IgnoreError();
    return absl::OkStatus();
  }
  // An honest update is as large as the global model plus per-tensor
  // framing; anything much larger is refused before it is buffered. A masked
  // update (secure aggregation) holds one integer per element plus the
  // weight, up to 8 bytes each (the modulus is at most 2^62).
  const Parameters* aux = inputs.aux.get();
  const uint64_t framing = 1024 * (inputs.global->size() + (aux ? aux->size() : 0) + 16);
  const uint64_t limit =
      inputs.secure
          ? 8 * (static_cast<uint64_t>(inputs.global->NumElements()) + 1) + framing
          : static_cast<uint64_t>(inputs.global->ByteSize() + (aux ? aux->ByteSize() : 0)) +
                framing;
  ChunkAssembler assembler(limit);
  do {
    SHOAL_RETURN_IF_ERROR(ValidateRequestStrings(msg));
    if (msg.has_header() && msg.header().task_id() != header.task_id()) {
      return absl::InvalidArgumentError("a SubmitFit stream carries one task only");
    }
    if (!msg.has_chunk()) return absl::InvalidArgumentError("SubmitFit message without a chunk");
    SHOAL_RETURN_IF_ERROR(Annotate(assembler.Add(msg.chunk()), "update upload"));
  } while (reader->Read(&msg));
  absl::StatusOr<std::string> payload = assembler.Finish();
  // A short or corrupted stream may be the network's fault: the client can
  // upload again while the task is open.
  if (!payload.ok()) return Annotate(payload.status(), "update upload");

  if (CarriesSecAgg(*payload) != inputs.secure) {
    // A plain update in a secure round must not be aggregated in the clear;
    // a masked one in a plain round means nothing without its session.
    const absl::Status wrong = absl::InvalidArgumentError(
        inputs.secure ? "this round is securely aggregated: send the masked input, not the "
                        "update (is the client too old for secure aggregation?)"
                      : "this round is not securely aggregated, but the result is a masked "
                        "input");
    proxy->CompleteFit(header.task_id(), wrong).IgnoreError();
    return wrong;
  }
  if (inputs.secure) {
    absl::StatusOr<FitRes> masked = MaskedFitRes(header, *payload);
    // Refused for good, like a malformed update: fail the task now.
    if (!masked.ok()) {
      proxy->CompleteFit(header.task_id(), masked.status()).IgnoreError();
      return masked.status();
    }
    return proxy->CompleteFit(header.task_id(), *std::move(masked));
  }
  FitRes res;
  res.num_examples = header.num_examples();
  res.metrics = MetricsFromProto(header.metrics());
  res.upload_bytes = static_cast<int64_t>(payload->size());
  // Compressed or not, decoded against the task's model before anything
  // else sees it: the strategies get a dense update either way.
  // The frozen tensors are not sent; the Coordinator counts them unchanged.
  absl::Status parsed = ParseFitUpload(
      *payload, inputs.frozen.empty() ? *inputs.global : Without(*inputs.global, inputs.frozen),
      &res.update, &res.aux);
  if (!parsed.ok()) {
    // A well-transferred but malformed update will not get better: fail the
    // client's task now rather than let the round wait for it.
    proxy->CompleteFit(header.task_id(), parsed).IgnoreError();
    return parsed;
  }
  return proxy->CompleteFit(header.task_id(), std::move(res));
}

grpc::Status FederationService::SubmitFit(
    grpc::ServerContext* ctx, grpc::ServerReader<v1::SubmitFitRequest>* reader,
    v1::SubmitResponse* resp) {
  absl::Status status = ReceiveFit(ctx, reader);
  if (!status.ok()) {
    LogRefusal("SubmitFit", ctx->peer(), status);
    return ToGrpcStatus(status);
  }
  resp->set_accepted(true);
  return grpc::Status::OK;
}

grpc::Status FederationService::SubmitEvaluate(grpc::ServerContext* ctx,
                                               const v1::EvaluateResult* req,
                                               v1::SubmitResponse* resp) {
  absl::StatusOr<AccessControl::Ticket> ticket =
      Admit(ctx, *req, req->client_id());
  if (!ticket.ok()) return ToGrpcStatus(ticket.status());
  absl::StatusOr<std::shared_ptr<GrpcClientProxy>> proxy = KnownClient(req->client_id());
  if (!proxy.ok()) return ToGrpcStatus(proxy.status());
  if (!req->error().empty()) {
    return ToGrpcStatus((*proxy)->CompleteEvaluate(
        req->task_id(), absl::AbortedError(absl::StrCat("client reported: ", QuoteForMessage(req->error(), 200)))));
  }
  EvaluateRes res;
  res.num_examples = req->num_examples();
  res.loss = req->loss();
  res.metrics = MetricsFromProto(req->metrics());
  absl::Status status = (*proxy)->CompleteEvaluate(req->task_id(), std::move(res));
  if (!status.ok()) return ToGrpcStatus(status);
  resp->set_accepted(true);
  return grpc::Status::OK;
}

grpc::Status FederationService::SubmitSecAgg(grpc::ServerContext* ctx,
                                             const v1::SecAggSubmission* req,
                                             v1::SubmitResponse* resp) {
  absl::StatusOr<AccessControl::Ticket> ticket =
      Admit(ctx, *req, req->client_id());
  if (!ticket.ok()) return ToGrpcStatus(ticket.status());
  absl::StatusOr<std::shared_ptr<GrpcClientProxy>> proxy = KnownClient(req->client_id());
  if (!proxy.ok()) return ToGrpcStatus(proxy.status());
  // A client that gave up is dropped from the session at once, so the stage
  // need not wait for its deadline.
  // An error starting "declined: " is a device that may not train now,
  // answering the session's setup (SecAggSubmission has no field of its
  // own for it): a decline, not a failure.
  constexpr absl::string_view kDeclined = "declined: ";
  absl::StatusOr<v1::SecAggClientMessage> message =
      req->error().empty()
          ? absl::StatusOr<v1::SecAggClientMessage>(req->message())
      : absl::StartsWith(req->error(), kDeclined)
          ? DeclinedError(QuoteForMessage(absl::string_view(req->error()).substr(kDeclined.size()), 200))
          : absl::UnavailableError(absl::StrCat("client gave up: ", QuoteForMessage(req->error(), 200)));
  absl::Status status = (*proxy)->CompleteSecAgg(req->task_id(), std::move(message));
  if (!status.ok()) {
    LogRefusal(absl::StrCat("SubmitSecAgg of '", req->client_id(), "'"),
               ctx->peer(), status);
    return ToGrpcStatus(status);
  }
  resp->set_accepted(true);
  return grpc::Status::OK;
}

grpc::Status FederationService::Leave(grpc::ServerContext* ctx,
                                      const v1::LeaveRequest* req,
                                      v1::LeaveResponse* resp) {
  absl::StatusOr<AccessControl::Ticket> ticket =
      Admit(ctx, *req, req->client_id());
  if (!ticket.ok()) return ToGrpcStatus(ticket.status());
  absl::StatusOr<std::shared_ptr<GrpcClientProxy>> proxy = KnownClient(req->client_id());
  if (!proxy.ok()) return ToGrpcStatus(proxy.status());
  clients_->Unregister(req->client_id());
  spdlog::info("client '{}' left", req->client_id());
  return grpc::Status::OK;
}

grpc::Status FederationService::ReportServing(grpc::ServerContext* ctx,
                                              const v1::ServingReport* req,
                                              v1::SubmitResponse* resp) {
  absl::StatusOr<AccessControl::Ticket> ticket = Admit(ctx, *req, req->client_id());
  if (!ticket.ok()) return ToGrpcStatus(ticket.status());
  absl::StatusOr<std::shared_ptr<GrpcClientProxy>> proxy = KnownClient(req->client_id());
  if (!proxy.ok()) return ToGrpcStatus(proxy.status());
  if (req->serving_version() < 0 || req->offered_version() < 0 ||
      !std::isfinite(req->offered_value()) || !std::isfinite(req->current_value())) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "a serving report needs versions >= 0 and finite metric values"));
  }
  FleetServing entry{req->serving_version(), req->offered_version(), req->accepted(),
                     req->reason(),          req->metric(),          req->offered_value(),
                     req->current_value(),   absl::Now()};
  if (!req->accepted() && req->offered_version() > 0) {
    spdlog::warn("client '{}' refused serving version {}: {}", req->client_id(),
                 req->offered_version(), req->reason());
  }
  if (options_.rollout != nullptr) options_.rollout->Report(req->client_id(), *req);
  absl::MutexLock lock(&fleet_mu_);
  fleet_[req->client_id()] = std::move(entry);
  return grpc::Status::OK;
}

std::map<std::string, FleetServing> FederationService::Fleet() const {
  absl::MutexLock lock(&fleet_mu_);
  return fleet_;
}

namespace {

// RpcTimer reports each call to an RpcObserver: its latency (from its
// initial metadata to its status) and the size of each response message.
class RpcTimer final : public grpc::experimental::Interceptor {
 public:
  RpcTimer(RpcObserver* observer, const char* method)
      : observer_(observer), method_(method != nullptr ? method : ""), start_(absl::Now()) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      if (grpc::ByteBuffer* sent = methods->GetSerializedSendMessage(); sent != nullptr) {
        observer_->OnSent(method_, sent->Length());
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      observer_->OnCallEnd(method_, absl::Now() - start_, methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  RpcObserver* observer_;
  std::string method_;
  absl::Time start_;
};

class RpcTimerFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcTimerFactory(RpcObserver* observer) : observer_(observer) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcTimer(observer_, info->method());
  }

 private:
  RpcObserver* observer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const std::string& address,
                                                              grpc::Service* service,
                                                              const TlsMaterial* tls) {
  return Start(address, std::vector<grpc::Service*>{service}, tls);
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const std::string& address, const std::vector<grpc::Service*>& services,
    const TlsMaterial* tls, RpcObserver* observer) {
  SHOAL_ASSIGN_OR_RETURN(
      HostPort where, Annotate(ParseListenAddress(address), "listen address"));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, MakeServerCredentials(tls), &port);
  builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
  for (grpc::Service* service : services) builder.RegisterService(service);
  // gRPC sets SO_REUSEPORT by default, so a second server on a port in use
  // would start and split the fleet between two runs. One server per port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Devices behind NAT send keepalive pings on idle connections; allow them.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (observer != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> timers;
    timers.push_back(std::make_unique<RpcTimerFactory>(observer));
    builder.experimental().SetInterceptorCreators(std::move(timers));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ",
                                               QuoteForMessage(address), ": ",
                                               WhyCannotListen(where)));
  }
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(server), port));
}

GrpcServer::~GrpcServer() { Shutdown(absl::ZeroDuration()); }

void GrpcServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  server_.reset();
}

}  // namespace shoal
