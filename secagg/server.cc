#include "secagg/server.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "secagg/crypto.h"
#include "secagg/shamir.h"
#include "secagg/wire.h"

namespace shoal::secagg {

const char* ServerStageName(ServerStage stage) {
  switch (stage) {
    case ServerStage::kCollectKeys: return "advertise keys";
    case ServerStage::kCollectShares: return "share keys";
    case ServerStage::kCollectMaskedInputs: return "masked input";
    case ServerStage::kCollectUnmasking: return "unmasking";
    case ServerStage::kDone: return "done";
    case ServerStage::kAborted: return "aborted";
  }
  return "unknown";
}

absl::Status SecAggServerConfig::Validate() const {
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateSessionId(session_id), "secure aggregation"));
  const size_t n = neighbours.size();
  if (n < 2 || n > kMaxClients) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secure aggregation needs 2 to ", kMaxClients, " clients, got ", n));
  }
  if (threshold < 1) {
    return absl::InvalidArgumentError("secure aggregation threshold must be >= 1");
  }
  if (vector_length < 1 || vector_length > kMaxVectorLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secure aggregation vector length ", vector_length, " is not in [1, 2^31]"));
  }
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateModulus(modulus), "secure aggregation"));
  for (size_t i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(i + 1);
    const std::vector<uint32_t>& list = neighbours[i];
    if (list.size() < threshold) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client ", u, " has ", list.size(), " neighbours, fewer than the threshold ",
          threshold));
    }
    uint32_t previous = 0;
    for (uint32_t v : list) {
      if (v <= previous || v > n || v == u) {
        return absl::InvalidArgumentError(absl::StrCat(
            "client ", u, "'s neighbour list is not ascending within [1, ", n,
            "] without the client itself"));
      }
      previous = v;
      const std::vector<uint32_t>& back = neighbours[v - 1];
      if (!std::binary_search(back.begin(), back.end(), u)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the neighbour graph is not symmetric: ", u, " lists ", v, " but not back"));
      }
    }
  }
  return absl::OkStatus();
}

// ServerContext is what the stages hand on to each other. Clients are
// numbered 1..n; per-client vectors are indexed by number - 1.
struct ServerContext {
  SecAggServerConfig config;
  uint32_t n = 0;
  std::vector<uint8_t> expected;  // asked in the current stage
  std::vector<uint8_t> answered;  // answered in the current stage
  std::vector<size_t> survivors;
  std::vector<v1::SecAggPublicKeys> keys;  // U1's advertised keys
  std::vector<uint8_t> shared;             // U2
  std::vector<uint8_t> masked;             // U3
  // inbox[v - 1]: the pairs sealed for v, as (owner, sealed bytes).
  std::vector<std::vector<std::pair<uint32_t, std::string>>> inbox;
  std::vector<uint64_t> sum;
  // Revealed shares of each client's self-mask seed / mask private key.
  std::vector<std::vector<ShamirShare>> seed_shares;
  std::vector<std::vector<ShamirShare>> key_shares;

  const std::vector<uint32_t>& neighbours(uint32_t u) const {
    return config.neighbours[u - 1];
  }
  // ShareX is the x at which `owner` evaluated the share it gave `holder`:
  // the holder's place in the owner's neighbour list, plus one.
  uint32_t ShareX(uint32_t owner, uint32_t holder) const {
    const std::vector<uint32_t>& list = neighbours(owner);
    return static_cast<uint32_t>(
        std::lower_bound(list.begin(), list.end(), holder) - list.begin() + 1);
  }
  // Among `u`'s neighbours, those with flag[v - 1] set.
  std::vector<uint32_t> NeighboursWith(uint32_t u, const std::vector<uint8_t>& flag) const {
    std::vector<uint32_t> out;
    for (uint32_t v : neighbours(u)) {
      if (flag[v - 1]) out.push_back(v);
    }
    return out;
  }
  size_t Count(const std::vector<uint8_t>& flag) const {
    return static_cast<size_t>(std::count(flag.begin(), flag.end(), 1));
  }
  // NextStage makes this stage's answerers the next stage's expected clients.
  void NextStage() {
    survivors.push_back(Count(answered));
    expected = answered;
    std::fill(answered.begin(), answered.end(), 0);
  }
  absl::Status CheckEnough(absl::string_view what) const {
    const size_t count = Count(answered);
    if (count < config.threshold) {
      return absl::FailedPreconditionError(absl::StrCat(
          "secure aggregation aborted: only ", count, " of ", n, " clients ", what,
          "; the threshold is ", config.threshold));
    }
    return absl::OkStatus();
  }
};

class ServerState {
 public:
  virtual ~ServerState() = default;
  virtual ServerStage stage() const = 0;
  virtual v1::SecAggClientMessage::StageCase expected_payload() const = 0;
  virtual v1::SecAggServerMessage MessageFor(const ServerContext& ctx, uint32_t u) const = 0;
  // Receive validates u's payload and records it; on error nothing changes.
  virtual absl::Status Receive(ServerContext& ctx, uint32_t u,
                               const v1::SecAggClientMessage& message) = 0;
  // Close ends the stage and returns the next one.
  virtual absl::StatusOr<std::unique_ptr<ServerState>> Close(ServerContext& ctx) = 0;
};

namespace {

class Finished : public ServerState {
 public:
  explicit Finished(ServerStage stage) : stage_(stage) {}
  ServerStage stage() const override { return stage_; }
  v1::SecAggClientMessage::StageCase expected_payload() const override {
    return v1::SecAggClientMessage::STAGE_NOT_SET;
  }
  v1::SecAggServerMessage MessageFor(const ServerContext&, uint32_t) const override {
    return {};
  }
  absl::Status Receive(ServerContext&, uint32_t, const v1::SecAggClientMessage&) override {
    return absl::FailedPreconditionError(absl::StrCat(
        "the secure-aggregation session is ", ServerStageName(stage_)));
  }
  absl::StatusOr<std::unique_ptr<ServerState>> Close(ServerContext&) override {
    return absl::FailedPreconditionError(absl::StrCat(
        "the secure-aggregation session is ", ServerStageName(stage_)));
  }

 private:
  ServerStage stage_;
};

// CheckRevealed checks that `revealed` names exactly the clients in `asked`,
// each once, with well-formed shares.
absl::Status CheckRevealed(
    const google::protobuf::RepeatedPtrField<v1::SecAggRevealedShare>& revealed,
    const std::vector<uint32_t>& asked, absl::string_view what) {
  const size_t chunks = ShamirChunks(kKeySize);
  std::set<uint32_t> seen;
  for (const v1::SecAggRevealedShare& share : revealed) {
    if (!std::binary_search(asked.begin(), asked.end(), share.peer()) ||
        !seen.insert(share.peer()).second) {
      return absl::PermissionDeniedError(absl::StrCat(
          "revealed a ", what, " share of client ", share.peer(),
          ", which was not asked for (or twice)"));
    }
    if (static_cast<size_t>(share.share_size()) != chunks ||
        std::any_of(share.share().begin(), share.share().end(),
                    [](uint64_t y) { return y >= kShamirPrime; })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the ", what, " share of client ", share.peer(), " is malformed"));
    }
  }
  if (seen.size() != asked.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "revealed ", seen.size(), " ", what, " shares; ", asked.size(), " were asked for"));
  }
  return absl::OkStatus();
}

// Rebuild combines the revealed shares of one secret.
absl::StatusOr<Bytes> Rebuild(const ServerContext& ctx, const std::vector<ShamirShare>& shares,
                              uint32_t owner, absl::string_view what) {
  if (shares.size() < ctx.config.threshold) {
    return absl::FailedPreconditionError(absl::StrCat(
        "secure aggregation aborted: client ", owner, "'s ", what, " needs ",
        ctx.config.threshold, " shares, but only ", shares.size(),
        " of its neighbours revealed one"));
  }
  return ShamirCombine(shares, static_cast<int>(ctx.config.threshold), kKeySize);
}

class CollectUnmasking : public ServerState {
 public:
  ServerStage stage() const override { return ServerStage::kCollectUnmasking; }
  v1::SecAggClientMessage::StageCase expected_payload() const override {
    return v1::SecAggClientMessage::kUnmask;
  }
  v1::SecAggServerMessage MessageFor(const ServerContext& ctx, uint32_t u) const override {
    v1::SecAggServerMessage message;
    v1::SecAggUnmaskRequest* request = message.mutable_unmask();
    for (uint32_t v : ctx.neighbours(u)) {
      if (ctx.masked[v - 1]) {
        request->add_survivors(v);
      } else if (ctx.shared[v - 1]) {
        request->add_dropped(v);
      }
    }
    return message;
  }
  absl::Status Receive(ServerContext& ctx, uint32_t u,
                       const v1::SecAggClientMessage& message) override {
    const v1::SecAggUnmaskResponse& response = message.unmask();
    SHOAL_RETURN_IF_ERROR(CheckRevealed(response.seed_shares(),
                                        ctx.NeighboursWith(u, ctx.masked), "self-mask seed"));
    std::vector<uint8_t> dropped(ctx.n, 0);
    for (uint32_t v = 1; v <= ctx.n; ++v) {
      dropped[v - 1] = ctx.shared[v - 1] && !ctx.masked[v - 1];
    }
    SHOAL_RETURN_IF_ERROR(
        CheckRevealed(response.key_shares(), ctx.NeighboursWith(u, dropped), "mask key"));
    for (const v1::SecAggRevealedShare& s : response.seed_shares()) {
      ctx.seed_shares[s.peer() - 1].push_back(
          {ctx.ShareX(s.peer(), u), {s.share().begin(), s.share().end()}});
    }
    for (const v1::SecAggRevealedShare& s : response.key_shares()) {
      ctx.key_shares[s.peer() - 1].push_back(
          {ctx.ShareX(s.peer(), u), {s.share().begin(), s.share().end()}});
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<ServerState>> Close(ServerContext& ctx) override {
    // Rebuilding secrets is cheap and sequential; expanding the masks they
    // give (one vector-length PRG each) is most of the server's work, and is
    // spread over the caller's parallel_for when it gave one.
    std::vector<MaskJob> jobs;
    // Each survivor's self mask.
    for (uint32_t v = 1; v <= ctx.n; ++v) {
      if (!ctx.masked[v - 1]) continue;
      SHOAL_ASSIGN_OR_RETURN(Bytes seed,
                             Rebuild(ctx, ctx.seed_shares[v - 1], v, "self-mask seed"));
      jobs.push_back({std::move(seed), {}, {}, /*self=*/true, /*subtract=*/true});
    }
    // The pairwise masks survivors share with clients that dropped after
    // sharing keys: rebuild the dropped client's mask key, to agree each
    // survivor's seed with it.
    for (uint32_t v = 1; v <= ctx.n; ++v) {
      if (!ctx.shared[v - 1] || ctx.masked[v - 1]) continue;
      SHOAL_ASSIGN_OR_RETURN(Bytes private_key,
                             Rebuild(ctx, ctx.key_shares[v - 1], v, "mask key"));
      absl::StatusOr<Bytes> public_key = PublicKeyOf(private_key);
      if (!public_key.ok() || *public_key != ctx.keys[v - 1].mask_key()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "secure aggregation aborted: client ", v, "'s rebuilt mask key does not "
            "match the key it advertised (a neighbour revealed a wrong share)"));
      }
      SHOAL_ASSIGN_OR_RETURN(AgreementKey dropped_key, AgreementKey::FromPrivate(private_key));
      OPENSSL_cleanse(private_key.data(), private_key.size());
      for (uint32_t u : ctx.neighbours(v)) {
        if (!ctx.masked[u - 1]) continue;
        // u added +mask when u < v and -mask when u > v.
        jobs.push_back({{}, dropped_key, ctx.keys[u - 1].mask_key(), /*self=*/false,
                        /*subtract=*/u < v});
      }
    }
    SHOAL_RETURN_IF_ERROR(RemoveMasks(ctx, jobs));
    ctx.NextStage();
    return std::make_unique<Finished>(ServerStage::kDone);
  }

 private:
  // MaskJob: one mask to take out of the sum.
  struct MaskJob {
    Bytes seed;                 // self mask: the rebuilt seed
    AgreementKey dropped_key;   // pairwise: the dropped client's mask key...
    std::string survivor_key;   // ...and the survivor's public mask key
    bool self = false;
    bool subtract = true;       // the mask was added (else subtracted)
  };

  // RemoveMasks expands every job's mask and takes it out of ctx.sum. Jobs
  // are split into groups, each folded into its own accumulator, so the
  // groups can run in parallel without sharing anything.
  static absl::Status RemoveMasks(ServerContext& ctx, const std::vector<MaskJob>& jobs) {
    const uint64_t modulus = ctx.config.modulus;
    const size_t length = ctx.sum.size();
    const std::string& session = ctx.config.session_id;
    const bool parallel = ctx.config.parallel_for != nullptr && ctx.config.parallelism > 1;
    const size_t groups = std::max<size_t>(
        1, std::min(jobs.size(), parallel ? ctx.config.parallelism : size_t{1}));
    std::vector<std::vector<uint64_t>> removed(groups);
    std::vector<absl::Status> status(groups);
    auto run_group = [&](size_t g) {
      std::vector<uint64_t>& acc = removed[g];
      acc.assign(length, 0);
      for (size_t j = g; j < jobs.size(); j += groups) {
        const MaskJob& job = jobs[j];
        absl::StatusOr<std::vector<uint64_t>> mask;
        if (job.self) {
          mask = SelfMask(job.seed, session, length, modulus);
        } else {
          absl::StatusOr<Bytes> agreed =
              job.dropped_key.Agree(job.survivor_key, MaskKeyContext(session));
          mask = agreed.ok() ? PairwiseMask(*agreed, session, length, modulus)
                             : absl::StatusOr<std::vector<uint64_t>>(agreed.status());
        }
        if (!mask.ok()) {
          status[g] = mask.status();
          return;
        }
        if (job.subtract) {
          AddInto(acc, *mask, modulus);
        } else {
          SubtractFrom(acc, *mask, modulus);
        }
      }
    };
    if (groups > 1) {
      ctx.config.parallel_for(groups, run_group);
    } else {
      run_group(0);
    }
    for (size_t g = 0; g < groups; ++g) {
      SHOAL_RETURN_IF_ERROR(status[g]);
      SubtractFrom(ctx.sum, removed[g], modulus);
    }
    return absl::OkStatus();
  }
};

class CollectMaskedInputs : public ServerState {
 public:
  ServerStage stage() const override { return ServerStage::kCollectMaskedInputs; }
  v1::SecAggClientMessage::StageCase expected_payload() const override {
    return v1::SecAggClientMessage::kMaskedInput;
  }
  v1::SecAggServerMessage MessageFor(const ServerContext& ctx, uint32_t u) const override {
    v1::SecAggServerMessage message;
    for (const auto& [owner, sealed] : ctx.inbox[u - 1]) {
      v1::SecAggSealedShare* share = message.mutable_shares()->add_shares();
      share->set_peer(owner);
      share->set_sealed(sealed);
    }
    return message;
  }
  absl::Status Receive(ServerContext& ctx, uint32_t u,
                       const v1::SecAggClientMessage& message) override {
    SHOAL_ASSIGN_OR_RETURN(std::vector<uint64_t> values,
                           Unpack(message.masked_input().packed(), ctx.config.vector_length,
                                  ctx.config.modulus));
    if (ctx.sum.empty()) ctx.sum.assign(values.size(), 0);
    AddInto(ctx.sum, values, ctx.config.modulus);
    ctx.masked[u - 1] = 1;
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<ServerState>> Close(ServerContext& ctx) override {
    SHOAL_RETURN_IF_ERROR(ctx.CheckEnough("sent masked inputs"));
    ctx.inbox.clear();
    ctx.inbox.shrink_to_fit();
    ctx.seed_shares.resize(ctx.n);
    ctx.key_shares.resize(ctx.n);
    ctx.NextStage();
    return std::make_unique<CollectUnmasking>();
  }
};

class CollectShares : public ServerState {
 public:
  ServerStage stage() const override { return ServerStage::kCollectShares; }
  v1::SecAggClientMessage::StageCase expected_payload() const override {
    return v1::SecAggClientMessage::kShares;
  }
  v1::SecAggServerMessage MessageFor(const ServerContext& ctx, uint32_t u) const override {
    v1::SecAggServerMessage message;
    for (uint32_t v : ctx.NeighboursWith(u, ctx.expected)) {
      v1::SecAggPeerKeys* peer = message.mutable_key_list()->add_peers();
      peer->set_index(v);
      peer->set_encryption_key(ctx.keys[v - 1].encryption_key());
      peer->set_mask_key(ctx.keys[v - 1].mask_key());
    }
    return message;
  }
  absl::Status Receive(ServerContext& ctx, uint32_t u,
                       const v1::SecAggClientMessage& message) override {
    // An honest client seals one pair for every neighbour in its key list.
    const std::vector<uint32_t> holders = ctx.NeighboursWith(u, ctx.expected);
    const auto& shares = message.shares().shares();
    if (static_cast<size_t>(shares.size()) != holders.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sent ", shares.size(), " share pairs; it has ", holders.size(),
          " neighbours with keys"));
    }
    // A sealed pair is two shares of 5 field elements plus framing and the
    // AES-GCM nonce and tag: far below this bound.
    constexpr size_t kMaxSealedSize = 512;
    std::set<uint32_t> seen;
    for (const v1::SecAggSealedShare& share : shares) {
      if (!std::binary_search(holders.begin(), holders.end(), share.peer()) ||
          !seen.insert(share.peer()).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "share pair for client ", share.peer(),
            ", which is not a neighbour with keys (or named twice)"));
      }
      if (share.sealed().size() > kMaxSealedSize) {
        return absl::InvalidArgumentError(absl::StrCat(
            "share pair for client ", share.peer(), " has ", share.sealed().size(),
            " bytes; at most ", kMaxSealedSize, " are expected"));
      }
    }
    for (const v1::SecAggSealedShare& share : shares) {
      ctx.inbox[share.peer() - 1].emplace_back(u, share.sealed());
    }
    ctx.shared[u - 1] = 1;
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<ServerState>> Close(ServerContext& ctx) override {
    SHOAL_RETURN_IF_ERROR(ctx.CheckEnough("shared their keys"));
    // Pairs from clients that shared are delivered; a holder that dropped
    // never gets its pairs, and an owner that dropped sent none.
    ctx.NextStage();
    return std::make_unique<CollectMaskedInputs>();
  }
};

class CollectKeys : public ServerState {
 public:
  ServerStage stage() const override { return ServerStage::kCollectKeys; }
  v1::SecAggClientMessage::StageCase expected_payload() const override {
    return v1::SecAggClientMessage::kKeys;
  }
  v1::SecAggServerMessage MessageFor(const ServerContext& ctx, uint32_t u) const override {
    v1::SecAggServerMessage message;
    v1::SecAggSetup* setup = message.mutable_setup();
    setup->set_client_index(u);
    setup->mutable_neighbours()->Add(ctx.neighbours(u).begin(), ctx.neighbours(u).end());
    setup->set_threshold(ctx.config.threshold);
    setup->set_vector_length(ctx.config.vector_length);
    setup->set_modulus(ctx.config.modulus);
    *setup->mutable_encoding() = ctx.config.encoding;
    return message;
  }
  absl::Status Receive(ServerContext& ctx, uint32_t u,
                       const v1::SecAggClientMessage& message) override {
    const v1::SecAggPublicKeys& keys = message.keys();
    if (keys.encryption_key().size() != kKeySize || keys.mask_key().size() != kKeySize ||
        keys.encryption_key() == keys.mask_key()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "public keys must be two different ", kKeySize, "-byte X25519 keys"));
    }
    ctx.keys[u - 1] = keys;
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<ServerState>> Close(ServerContext& ctx) override {
    SHOAL_RETURN_IF_ERROR(ctx.CheckEnough("advertised keys"));
    ctx.NextStage();
    return std::make_unique<CollectShares>();
  }
};


}  // namespace

absl::StatusOr<std::unique_ptr<SecAggServer>> SecAggServer::Create(SecAggServerConfig config) {
  SHOAL_RETURN_IF_ERROR(config.Validate());
  auto ctx = std::make_unique<ServerContext>();
  ctx->n = static_cast<uint32_t>(config.neighbours.size());
  ctx->config = std::move(config);
  ctx->expected.assign(ctx->n, 1);
  ctx->answered.assign(ctx->n, 0);
  ctx->survivors.push_back(ctx->n);
  ctx->keys.resize(ctx->n);
  ctx->shared.assign(ctx->n, 0);
  ctx->masked.assign(ctx->n, 0);
  ctx->inbox.resize(ctx->n);
  return std::unique_ptr<SecAggServer>(new SecAggServer(std::move(ctx)));
}

SecAggServer::SecAggServer(std::unique_ptr<ServerContext> context)
    : context_(std::move(context)), state_(std::make_unique<CollectKeys>()) {}

SecAggServer::~SecAggServer() = default;

ServerStage SecAggServer::stage() const { return state_->stage(); }

bool SecAggServer::finished() const {
  return stage() == ServerStage::kDone || stage() == ServerStage::kAborted;
}

uint32_t SecAggServer::num_clients() const { return context_->n; }

std::vector<uint32_t> SecAggServer::Expected() const {
  std::vector<uint32_t> out;
  if (finished()) return out;
  for (uint32_t u = 1; u <= context_->n; ++u) {
    if (context_->expected[u - 1]) out.push_back(u);
  }
  return out;
}

absl::StatusOr<v1::SecAggServerMessage> SecAggServer::MessageFor(uint32_t client) const {
  if (finished() || client < 1 || client > context_->n || !context_->expected[client - 1]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client ", client, " is not asked in the '", ServerStageName(stage()), "' stage"));
  }
  v1::SecAggServerMessage message = state_->MessageFor(*context_, client);
  message.set_session_id(context_->config.session_id);
  return message;
}

absl::Status SecAggServer::Receive(uint32_t client, const v1::SecAggClientMessage& message) {
  ServerContext& ctx = *context_;
  if (finished()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the secure-aggregation session is ", ServerStageName(stage())));
  }
  if (message.session_id() != ctx.config.session_id) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message for session '", message.session_id(), "', not this round's session"));
  }
  if (client < 1 || client > ctx.n || message.client_index() != client) {
    return absl::PermissionDeniedError(absl::StrCat(
        "message claims client ", message.client_index(), " but comes from client ",
        client, " of ", ctx.n));
  }
  if (!ctx.expected[client - 1]) {
    return absl::FailedPreconditionError(absl::StrCat(
        "client ", client, " is not part of the '", ServerStageName(stage()),
        "' stage (it dropped out earlier)"));
  }
  if (ctx.answered[client - 1]) {
    return absl::AlreadyExistsError(absl::StrCat(
        "client ", client, " already answered the '", ServerStageName(stage()),
        "' stage; a repeated message is refused"));
  }
  if (message.stage_case() != state_->expected_payload()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the '", ServerStageName(stage()), "' stage expects ",
        MessageName(state_->expected_payload()), ", client ", client, " sent ",
        MessageName(message.stage_case())));
  }
  SHOAL_RETURN_IF_ERROR(Annotate(state_->Receive(ctx, client, message),
                                 absl::StrCat("client ", client)));
  ctx.answered[client - 1] = 1;
  return absl::OkStatus();
}

size_t SecAggServer::num_answered() const { return context_->Count(context_->answered); }

bool SecAggServer::StageComplete() const {
  return !finished() && num_answered() == context_->Count(context_->expected);
}

absl::Status SecAggServer::Advance() {
  if (finished()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the secure-aggregation session is ", ServerStageName(stage())));
  }
  absl::StatusOr<std::unique_ptr<ServerState>> next = state_->Close(*context_);
  if (!next.ok()) {
    abort_reason_ = next.status();
    state_ = std::make_unique<Finished>(ServerStage::kAborted);
    context_->sum.clear();
    return abort_reason_;
  }
  state_ = *std::move(next);
  return absl::OkStatus();
}

const std::vector<size_t>& SecAggServer::survivors() const { return context_->survivors; }

const std::vector<uint64_t>& SecAggServer::sum() const { return context_->sum; }

std::vector<uint32_t> SecAggServer::summed_clients() const {
  std::vector<uint32_t> out;
  if (stage() != ServerStage::kDone) return out;
  for (uint32_t u = 1; u <= context_->n; ++u) {
    if (context_->masked[u - 1]) out.push_back(u);
  }
  return out;
}

}  // namespace shoal::secagg
