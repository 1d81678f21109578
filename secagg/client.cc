#include "secagg/client.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "secagg/crypto.h"
#include "secagg/shamir.h"
#include "secagg/wire.h"

namespace shoal::secagg {

const char* ClientStageName(ClientStage stage) {
  switch (stage) {
    case ClientStage::kAwaitSetup: return "awaiting setup";
    case ClientStage::kAwaitKeyList: return "awaiting keys";
    case ClientStage::kAwaitShares: return "awaiting shares";
    case ClientStage::kAwaitUnmask: return "awaiting unmasking";
    case ClientStage::kDone: return "done";
    case ClientStage::kAborted: return "aborted";
  }
  return "unknown";
}

struct PeerKeys {
  Bytes encryption_key;
  Bytes mask_key;
  Bytes share_key;  // agreed for sealing share pairs both ways
};

// ClientContext is what the stages hand on to each other.
struct ClientContext {
  std::string session_id;
  std::optional<v1::SecAggSetup> setup;
  KeyPair encryption;
  KeyPair mask;
  AgreementKey encryption_agreement;  // the private keys, loaded once
  AgreementKey mask_agreement;
  Bytes seed;  // the self-mask seed b_u
  std::map<uint32_t, PeerKeys> peers;                 // neighbours with keys
  std::map<uint32_t, v1::SecAggSharePair> held;       // pairs we hold, by owner
  std::optional<std::vector<uint64_t>> input;

  uint32_t me() const { return setup->client_index(); }

  // Wipe forgets every secret, once the session is over either way.
  void Wipe() {
    for (Bytes* secret : {&encryption.private_key, &mask.private_key, &seed}) {
      OPENSSL_cleanse(secret->data(), secret->size());
      secret->clear();
    }
    for (auto& [index, peer] : peers) {
      OPENSSL_cleanse(peer.share_key.data(), peer.share_key.size());
    }
    peers.clear();
    encryption_agreement = AgreementKey();
    mask_agreement = AgreementKey();
    held.clear();
    input.reset();
  }
  ~ClientContext() { Wipe(); }
};

class ClientState {
 public:
  struct Next {
    std::unique_ptr<ClientState> state;
    v1::SecAggClientMessage reply;
  };
  virtual ~ClientState() = default;
  virtual ClientStage stage() const = 0;
  virtual absl::StatusOr<Next> Handle(ClientContext& ctx,
                                      const v1::SecAggServerMessage& message) = 0;
};

namespace {

absl::Status ExpectPayload(const ClientContext& ctx,
                           const v1::SecAggServerMessage& message,
                           v1::SecAggServerMessage::StageCase expected) {
  if (message.session_id() != ctx.session_id) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message for session '", message.session_id(), "', but this is session '",
        ctx.session_id, "'"));
  }
  if (message.stage_case() != expected) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expected a ", MessageName(expected), " from the server, got a ",
        MessageName(message.stage_case())));
  }
  return absl::OkStatus();
}

bool IsNeighbour(const v1::SecAggSetup& setup, uint32_t index) {
  return std::binary_search(setup.neighbours().begin(), setup.neighbours().end(), index);
}

absl::Status ValidateSetup(const v1::SecAggSetup& setup) {
  if (setup.client_index() < 1 || setup.client_index() > kMaxClients) {
    return absl::InvalidArgumentError(absl::StrCat(
        "setup: client index ", setup.client_index(), " is not in [1, ", kMaxClients, "]"));
  }
  if (setup.neighbours().empty() ||
      static_cast<uint32_t>(setup.neighbours_size()) > kMaxClients) {
    return absl::InvalidArgumentError(absl::StrCat(
        "setup: ", setup.neighbours_size(), " neighbours; need 1 to ", kMaxClients));
  }
  uint32_t previous = 0;
  for (uint32_t v : setup.neighbours()) {
    if (v <= previous || v > kMaxClients || v == setup.client_index()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "setup: neighbour ", v, " is out of range, repeated, out of order or "
          "the client itself"));
    }
    previous = v;
  }
  if (setup.threshold() < 1 ||
      setup.threshold() > static_cast<uint32_t>(setup.neighbours_size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "setup: threshold ", setup.threshold(), " is not in [1, ",
        setup.neighbours_size(), "] (the number of neighbours)"));
  }
  if (setup.vector_length() < 1 || setup.vector_length() > kMaxVectorLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "setup: vector length ", setup.vector_length(), " is not in [1, 2^31]"));
  }
  return Annotate(ValidateModulus(setup.modulus()), "setup");
}

class Finished : public ClientState {
 public:
  explicit Finished(ClientStage stage) : stage_(stage) {}
  ClientStage stage() const override { return stage_; }
  absl::StatusOr<Next> Handle(ClientContext&, const v1::SecAggServerMessage&) override {
    return absl::FailedPreconditionError(absl::StrCat(
        "the secure-aggregation session is ", ClientStageName(stage_),
        "; no more messages are answered"));
  }

 private:
  ClientStage stage_;
};

class AwaitUnmask : public ClientState {
 public:
  ClientStage stage() const override { return ClientStage::kAwaitUnmask; }
  absl::StatusOr<Next> Handle(ClientContext& ctx,
                              const v1::SecAggServerMessage& message) override {
    SHOAL_RETURN_IF_ERROR(ExpectPayload(ctx, message, v1::SecAggServerMessage::kUnmask));
    const v1::SecAggUnmaskRequest& request = message.unmask();
    std::set<uint32_t> named;
    auto check = [&](uint32_t v) -> absl::Status {
      if (ctx.held.count(v) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unmasking request names client ", v,
            ", which holds no share pair with this client"));
      }
      if (!named.insert(v).second) {
        // Survivor and dropped at once would reveal both of v's secrets.
        return absl::PermissionDeniedError(absl::StrCat(
            "unmasking request names client ", v,
            " twice (as survivor and dropped, or repeated); refusing to reveal "
            "both of its secrets"));
      }
      return absl::OkStatus();
    };
    for (uint32_t v : request.survivors()) SHOAL_RETURN_IF_ERROR(check(v));
    for (uint32_t v : request.dropped()) SHOAL_RETURN_IF_ERROR(check(v));
    const uint32_t threshold = ctx.setup->threshold();
    if (static_cast<uint32_t>(request.survivors_size()) + 1 < threshold) {
      return absl::FailedPreconditionError(absl::StrCat(
          "only ", request.survivors_size() + 1,
          " clients of this neighbourhood sent masked inputs (this one included); "
          "the threshold is ", threshold, ", so their sum would say too much"));
    }
    Next next{std::make_unique<Finished>(ClientStage::kDone), {}};
    v1::SecAggUnmaskResponse* response = next.reply.mutable_unmask();
    for (uint32_t v : request.survivors()) {
      v1::SecAggRevealedShare* share = response->add_seed_shares();
      share->set_peer(v);
      *share->mutable_share() = ctx.held[v].seed_share();
    }
    for (uint32_t v : request.dropped()) {
      v1::SecAggRevealedShare* share = response->add_key_shares();
      share->set_peer(v);
      *share->mutable_share() = ctx.held[v].key_share();
    }
    ctx.Wipe();
    return next;
  }
};

class AwaitShares : public ClientState {
 public:
  ClientStage stage() const override { return ClientStage::kAwaitShares; }
  absl::StatusOr<Next> Handle(ClientContext& ctx,
                              const v1::SecAggServerMessage& message) override {
    SHOAL_RETURN_IF_ERROR(ExpectPayload(ctx, message, v1::SecAggServerMessage::kShares));
    const v1::SecAggSetup& setup = *ctx.setup;
    const size_t chunks = ShamirChunks(kKeySize);
    for (const v1::SecAggSealedShare& sealed : message.shares().shares()) {
      const uint32_t owner = sealed.peer();
      auto peer = ctx.peers.find(owner);
      if (peer == ctx.peers.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "share pair from client ", owner, ", which is not a neighbour with keys"));
      }
      if (ctx.held.count(owner) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "two share pairs from client ", owner));
      }
      absl::StatusOr<Bytes> plain = Open(peer->second.share_key, sealed.sealed(),
                                         ShareAssociatedData(ctx.session_id, owner, ctx.me()));
      if (!plain.ok()) {
        return Annotate(plain.status(), absl::StrCat("share pair from client ", owner));
      }
      v1::SecAggSharePair pair;
      const bool parsed = pair.ParseFromString(*plain);
      OPENSSL_cleanse(plain->data(), plain->size());
      if (!parsed || pair.owner() != owner || pair.holder() != ctx.me() ||
          static_cast<size_t>(pair.key_share_size()) != chunks ||
          static_cast<size_t>(pair.seed_share_size()) != chunks) {
        return absl::InvalidArgumentError(absl::StrCat(
            "share pair from client ", owner, " is malformed"));
      }
      ctx.held.emplace(owner, std::move(pair));
    }
    if (ctx.held.size() < setup.threshold()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "only ", ctx.held.size(), " neighbours shared keys with this client; the "
          "threshold is ", setup.threshold()));
    }
    // y = x + PRG(b) + sum over neighbours v that shared: +PRG(s_uv) if u < v,
    // -PRG(s_uv) if u > v. The pairwise terms cancel in the sum of all.
    std::vector<uint64_t> masked = std::move(*ctx.input);
    ctx.input.reset();
    const uint64_t modulus = setup.modulus();
    SHOAL_ASSIGN_OR_RETURN(std::vector<uint64_t> self,
                           SelfMask(ctx.seed, ctx.session_id, masked.size(), modulus));
    AddInto(masked, self, modulus);
    for (const auto& [v, pair] : ctx.held) {
      SHOAL_ASSIGN_OR_RETURN(Bytes agreed, ctx.mask_agreement.Agree(
                                               ctx.peers[v].mask_key,
                                               MaskKeyContext(ctx.session_id)));
      SHOAL_ASSIGN_OR_RETURN(std::vector<uint64_t> mask,
                             PairwiseMask(agreed, ctx.session_id, masked.size(), modulus));
      OPENSSL_cleanse(agreed.data(), agreed.size());
      if (ctx.me() < v) {
        AddInto(masked, mask, modulus);
      } else {
        SubtractFrom(masked, mask, modulus);
      }
    }
    Next next{std::make_unique<AwaitUnmask>(), {}};
    next.reply.mutable_masked_input()->set_packed(Pack(masked, modulus));
    return next;
  }
};

class AwaitKeyList : public ClientState {
 public:
  ClientStage stage() const override { return ClientStage::kAwaitKeyList; }
  absl::StatusOr<Next> Handle(ClientContext& ctx,
                              const v1::SecAggServerMessage& message) override {
    SHOAL_RETURN_IF_ERROR(ExpectPayload(ctx, message, v1::SecAggServerMessage::kKeyList));
    const v1::SecAggSetup& setup = *ctx.setup;
    // Every key in the neighbourhood must be distinct: a server that hands
    // two clients the same key could make their masks cancel.
    std::set<Bytes> keys = {ctx.encryption.public_key, ctx.mask.public_key};
    for (const v1::SecAggPeerKeys& peer : message.key_list().peers()) {
      if (!IsNeighbour(setup, peer.index())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key list names client ", peer.index(), ", which is not a neighbour"));
      }
      if (ctx.peers.count(peer.index()) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key list names client ", peer.index(), " twice"));
      }
      if (peer.encryption_key().size() != kKeySize || peer.mask_key().size() != kKeySize) {
        return absl::InvalidArgumentError(absl::StrCat(
            "client ", peer.index(), "'s public keys are not ", kKeySize, " bytes"));
      }
      if (!keys.insert(peer.encryption_key()).second || !keys.insert(peer.mask_key()).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "client ", peer.index(), "'s public keys repeat another key"));
      }
      SHOAL_ASSIGN_OR_RETURN(Bytes share_key,
                             ctx.encryption_agreement.Agree(peer.encryption_key(),
                                                            ShareKeyContext(ctx.session_id)));
      ctx.peers[peer.index()] = {peer.encryption_key(), peer.mask_key(), std::move(share_key)};
    }
    if (ctx.peers.size() < setup.threshold()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "only ", ctx.peers.size(), " of ", setup.neighbours_size(),
          " neighbours advertised keys; the threshold is ", setup.threshold()));
    }
    SHOAL_ASSIGN_OR_RETURN(ctx.seed, RandomBytes(kKeySize));
    // Shares are numbered by the holder's place in the neighbour list, which
    // the server knows too, so a holder cannot choose its share's x.
    const int k = setup.neighbours_size();
    const int t = static_cast<int>(setup.threshold());
    SHOAL_ASSIGN_OR_RETURN(std::vector<ShamirShare> key_shares,
                           ShamirSplit(ctx.mask.private_key, t, k));
    SHOAL_ASSIGN_OR_RETURN(std::vector<ShamirShare> seed_shares, ShamirSplit(ctx.seed, t, k));
    Next next{std::make_unique<AwaitShares>(), {}};
    v1::SecAggSealedShares* out = next.reply.mutable_shares();
    for (int j = 0; j < k; ++j) {
      const uint32_t v = setup.neighbours(j);
      auto peer = ctx.peers.find(v);
      if (peer == ctx.peers.end()) continue;  // v did not advertise keys
      v1::SecAggSharePair pair;
      pair.set_owner(ctx.me());
      pair.set_holder(v);
      pair.mutable_key_share()->Add(key_shares[j].y.begin(), key_shares[j].y.end());
      pair.mutable_seed_share()->Add(seed_shares[j].y.begin(), seed_shares[j].y.end());
      std::string plain = pair.SerializeAsString();
      absl::StatusOr<Bytes> sealed = Seal(peer->second.share_key, plain,
                                          ShareAssociatedData(ctx.session_id, ctx.me(), v));
      OPENSSL_cleanse(plain.data(), plain.size());
      if (!sealed.ok()) return sealed.status();
      v1::SecAggSealedShare* share = out->add_shares();
      share->set_peer(v);
      share->set_sealed(*std::move(sealed));
    }
    return next;
  }
};

class AwaitSetup : public ClientState {
 public:
  ClientStage stage() const override { return ClientStage::kAwaitSetup; }
  absl::StatusOr<Next> Handle(ClientContext& ctx,
                              const v1::SecAggServerMessage& message) override {
    SHOAL_RETURN_IF_ERROR(Annotate(ValidateSessionId(message.session_id()), "setup"));
    ctx.session_id = message.session_id();
    SHOAL_RETURN_IF_ERROR(ExpectPayload(ctx, message, v1::SecAggServerMessage::kSetup));
    SHOAL_RETURN_IF_ERROR(ValidateSetup(message.setup()));
    ctx.setup = message.setup();
    SHOAL_ASSIGN_OR_RETURN(ctx.encryption, GenerateKeyPair());
    SHOAL_ASSIGN_OR_RETURN(ctx.mask, GenerateKeyPair());
    SHOAL_ASSIGN_OR_RETURN(ctx.encryption_agreement,
                           AgreementKey::FromPrivate(ctx.encryption.private_key));
    SHOAL_ASSIGN_OR_RETURN(ctx.mask_agreement, AgreementKey::FromPrivate(ctx.mask.private_key));
    Next next{std::make_unique<AwaitKeyList>(), {}};
    next.reply.mutable_keys()->set_encryption_key(ctx.encryption.public_key);
    next.reply.mutable_keys()->set_mask_key(ctx.mask.public_key);
    return next;
  }
};

}  // namespace

SecAggClient::SecAggClient()
    : context_(std::make_unique<ClientContext>()),
      state_(std::make_unique<AwaitSetup>()) {}

SecAggClient::~SecAggClient() = default;

absl::StatusOr<v1::SecAggClientMessage> SecAggClient::Handle(
    const v1::SecAggServerMessage& message) {
  if (state_->stage() == ClientStage::kAwaitShares && !context_->input.has_value() &&
      message.stage_case() == v1::SecAggServerMessage::kShares) {
    return absl::FailedPreconditionError(
        "the masked-input stage needs the input: call SetInput first");
  }
  absl::StatusOr<ClientState::Next> next = state_->Handle(*context_, message);
  if (!next.ok()) {
    if (state_->stage() != ClientStage::kDone && state_->stage() != ClientStage::kAborted) {
      abort_reason_ = next.status();
      state_ = std::make_unique<Finished>(ClientStage::kAborted);
      context_->Wipe();
    }
    return next.status();
  }
  state_ = std::move(next->state);
  next->reply.set_session_id(context_->session_id);
  next->reply.set_client_index(context_->me());
  return std::move(next->reply);
}

absl::Status SecAggClient::SetInput(std::vector<uint64_t> input) {
  const ClientStage s = state_->stage();
  if (s != ClientStage::kAwaitKeyList && s != ClientStage::kAwaitShares) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the input is taken after setup and before the shares arrive; the "
        "session is ", ClientStageName(s)));
  }
  const v1::SecAggSetup& setup = *context_->setup;
  if (input.size() != setup.vector_length()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input has ", input.size(), " elements; the session expects ",
        setup.vector_length()));
  }
  for (size_t i = 0; i < input.size(); ++i) {
    if (input[i] >= setup.modulus()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input element ", i, " is ", input[i], ", not below the modulus ",
          setup.modulus()));
    }
  }
  context_->input = std::move(input);
  return absl::OkStatus();
}

bool SecAggClient::NeedsInput() const {
  const ClientStage s = state_->stage();
  return (s == ClientStage::kAwaitKeyList || s == ClientStage::kAwaitShares) &&
         !context_->input.has_value();
}

ClientStage SecAggClient::stage() const { return state_->stage(); }

const v1::SecAggSetup* SecAggClient::setup() const {
  return context_->setup.has_value() ? &*context_->setup : nullptr;
}

const std::string& SecAggClient::session_id() const { return context_->session_id; }

}  // namespace shoal::secagg
