// Transport security and client authentication over real gRPC on
// 127.0.0.1, with a PKI the test creates (common/pki.h): mutual TLS admits
// exactly the devices of the deployment, each only under its own name,
// revocation takes effect without a restart, and per-client limits hold.
#include "common/tls.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/agent.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/access_control.h"
#include "server/client_manager.h"
#include "server/grpc_service.h"
#include "server/model_store.h"
#include "shoal/v1/shoal.grpc.pb.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = dir_.File("pki");
    PkiOptions pki_options;
    ASSERT_TRUE(InitPki(pki_, pki_options).ok());
    for (const char* id : {"device-a", "device-b"}) {
      ASSERT_TRUE(IssueClient(pki_, id, pki_options).ok());
    }
    store_ = *ModelStore::Open(dir_.File("models"), "test");
  }

  void StartServer(AccessControlOptions access = {}) {
    absl::StatusOr<TlsMaterial> tls = LoadServerTls(pki_ + "/server");
    ASSERT_TRUE(tls.ok()) << tls.status();
    FederationServiceOptions options;
    options.max_poll_wait = absl::Milliseconds(100);
    options.access = std::move(access);
    options.access.revoked_file = pki_ + "/server/revoked.txt";
    service_ = std::make_unique<FederationService>(options, &clients_, store_.get());
    auto server = GrpcServer::Start("127.0.0.1:0", service_.get(), &*tls);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::ZeroDuration());
  }

  std::unique_ptr<v1::Federation::Stub> Stub(std::shared_ptr<grpc::ChannelCredentials> creds) {
    grpc::ChannelArguments args;
    // A fresh connection per stub, so each test's handshake is its own.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return v1::Federation::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()), creds, args));
  }

  std::unique_ptr<v1::Federation::Stub> DeviceStub(const std::string& bundle) {
    absl::StatusOr<TlsMaterial> tls = LoadClientTls(bundle);
    EXPECT_TRUE(tls.ok()) << tls.status();
    return Stub(MakeChannelCredentials(&*tls));
  }

  static grpc::Status Join(v1::Federation::Stub& stub, const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::JoinRequest req;
    req.set_client_id(id);
    v1::JoinResponse resp;
    return stub.Join(&ctx, req, &resp);
  }

  static grpc::Status Poll(v1::Federation::Stub& stub, const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::PollRequest req;
    req.set_client_id(id);
    v1::Task task;
    return stub.Poll(&ctx, req, &task);
  }

  testing::TempDir dir_;
  std::string pki_;
  ClientManager clients_;
  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(TlsTest, DeviceWithItsCertificateJoinsUnderItsName) {
  StartServer();
  auto stub = DeviceStub(pki_ + "/clients/device-a");
  grpc::Status s = Join(*stub, "device-a");
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_NE(clients_.Find("device-a"), nullptr);
  EXPECT_TRUE(Poll(*stub, "device-a").ok());
}

TEST_F(TlsTest, CertificateOfOneDeviceCannotActForAnother) {
  StartServer();
  ASSERT_TRUE(Join(*DeviceStub(pki_ + "/clients/device-b"), "device-b").ok());
  auto stub = DeviceStub(pki_ + "/clients/device-a");
  grpc::Status s = Join(*stub, "device-b");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("certificate is for 'device-a'"));
  s = Poll(*stub, "device-b");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(TlsTest, ClientsOutsideTheDeploymentCannotConnect) {
  StartServer();
  // No client certificate: TLS that trusts the right CA but presents none.
  absl::StatusOr<TlsMaterial> a = LoadClientTls(pki_ + "/clients/device-a");
  ASSERT_TRUE(a.ok());
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = a->ca_pem;
  EXPECT_EQ(Join(*Stub(grpc::SslCredentials(no_cert)), "device-a").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A certificate from another deployment's CA, with the same name.
  const std::string other = dir_.File("other-pki");
  ASSERT_TRUE(InitPki(other, PkiOptions{}).ok());
  ASSERT_TRUE(IssueClient(other, "device-a", PkiOptions{}).ok());
  absl::StatusOr<TlsMaterial> stranger = LoadClientTls(other + "/clients/device-a");
  ASSERT_TRUE(stranger.ok());
  TlsMaterial mixed = *stranger;
  mixed.ca_pem = a->ca_pem;  // it trusts our server, but we do not trust it
  EXPECT_EQ(Join(*Stub(MakeChannelCredentials(&mixed)), "device-a").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // Plaintext against a TLS port.
  EXPECT_EQ(Join(*Stub(grpc::InsecureChannelCredentials()), "device-a").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(clients_.NumRegistered(), 0u);
}

TEST_F(TlsTest, DeviceRefusesAServerOfAnotherDeployment) {
  StartServer();
  const std::string other = dir_.File("other-pki");
  ASSERT_TRUE(InitPki(other, PkiOptions{}).ok());
  ASSERT_TRUE(IssueClient(other, "device-a", PkiOptions{}).ok());
  // A genuine device of the other deployment trusts only its own CA.
  EXPECT_EQ(Join(*DeviceStub(other + "/clients/device-a"), "device-a").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(clients_.NumRegistered(), 0u);
}

TEST_F(TlsTest, RevocationTakesEffectWithoutARestart) {
  StartServer();
  auto stub = DeviceStub(pki_ + "/clients/device-a");
  ASSERT_TRUE(Join(*stub, "device-a").ok());
  ASSERT_TRUE(RevokeClient(pki_, "device-a").ok());
  // The list is looked at no more than once a second.
  grpc::Status s;
  for (int i = 0; i < 40; ++i) {
    s = Poll(*stub, "device-a");
    if (!s.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("'device-a' is revoked"));
  EXPECT_EQ(clients_.Find("device-a"), nullptr) << "a revoked client must not be sampled";
  // Others are unaffected.
  EXPECT_TRUE(Join(*DeviceStub(pki_ + "/clients/device-b"), "device-b").ok());
}

TEST_F(TlsTest, CallRateIsLimitedPerClient) {
  AccessControlOptions access;
  access.calls_per_second = 1;
  access.burst = 5;
  StartServer(access);
  auto a = DeviceStub(pki_ + "/clients/device-a");
  int refused = 0;
  grpc::Status last;
  for (int i = 0; i < 12; ++i) {
    grpc::Status s = Join(*a, "device-a");
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      last = s;
    }
  }
  EXPECT_GE(refused, 5);
  EXPECT_THAT(last.error_message(), HasSubstr("calls per second"));
  // The other device has its own bucket.
  EXPECT_TRUE(Join(*DeviceStub(pki_ + "/clients/device-b"), "device-b").ok());
}

TEST_F(TlsTest, OversizedMessageIsRefused) {
  StartServer();
  auto stub = DeviceStub(pki_ + "/clients/device-a");
  ASSERT_TRUE(Join(*stub, "device-a").ok());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::EvaluateResult big;
  big.set_client_id("device-a");
  big.set_task_id(std::string(kMaxRequestBytes + 1, 'x'));
  v1::SubmitResponse resp;
  grpc::Status s = stub->SubmitEvaluate(&ctx, big, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
}

TEST_F(TlsTest, BadMaterialIsNamedBeforeGrpcSeesIt) {
  // A key that is not the certificate's.
  const std::string mixed = dir_.File("mixed");
  ASSERT_TRUE(MakeDirectories(mixed).ok());
  for (const char* f : {"ca.pem", "client.pem"}) {
    ASSERT_TRUE(WriteFileAtomically(mixed + "/" + f,
                                    *ReadFile(pki_ + "/clients/device-a/" + f)).ok());
  }
  ASSERT_TRUE(WriteFileAtomically(mixed + "/client.key",
                                  *ReadFile(pki_ + "/clients/device-b/client.key")).ok());
  absl::StatusOr<TlsMaterial> tls = LoadClientTls(mixed);
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.status().message(), HasSubstr("is not the private key of the certificate"));
  // A certificate the CA did not issue.
  const std::string other = dir_.File("other-pki");
  ASSERT_TRUE(InitPki(other, PkiOptions{}).ok());
  ASSERT_TRUE(WriteFileAtomically(mixed + "/ca.pem", *ReadFile(other + "/ca/ca.pem")).ok());
  ASSERT_TRUE(WriteFileAtomically(mixed + "/client.key",
                                  *ReadFile(pki_ + "/clients/device-a/client.key")).ok());
  tls = LoadClientTls(mixed);
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.status().message(), HasSubstr("does not verify against"));
  // Missing files say how to make them.
  tls = LoadServerTls(dir_.File("nowhere"));
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.status().message(), HasSubstr("shoal certs init"));
  // Garbage.
  ASSERT_TRUE(WriteFileAtomically(mixed + "/client.pem", "not a certificate").ok());
  tls = LoadClientTls(mixed);
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.status().message(), HasSubstr("holds no PEM certificate"));
}

// A server without TLS material admits anyone by the ID they claim, which
// is why it exists only behind --insecure-plaintext.
TEST_F(TlsTest, PlaintextServerCannotAuthenticate) {
  FederationServiceOptions options;
  options.access.require_certificate = false;
  service_ = std::make_unique<FederationService>(options, &clients_, store_.get());
  server_ = *GrpcServer::Start("127.0.0.1:0", service_.get(), nullptr);
  EXPECT_TRUE(Join(*Stub(grpc::InsecureChannelCredentials()), "anyone").ok());
}

// revoked.txt edited the careless way: deleted, emptied, copied over with
// `cp` (read half-way), hand-edited without the trailer. None of it lifts a
// revocation; only a complete list (the trailer `shoal certs revoke`
// writes) replaces the one in force.
class RevocationListTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("revoked.txt");
    ASSERT_TRUE(
        WriteFileAtomically(path_, absl::StrCat("a\nb\n", RevocationTrailer(2)))
            .ok());
    AccessControlOptions options;
    options.require_certificate = false;
    options.revoked_file = path_;
    options.clock = &clock_;
    options.on_revoked = [this](const std::vector<std::string>& ids) {
      newly_revoked_.insert(newly_revoked_.end(), ids.begin(), ids.end());
    };
    access_ = std::make_unique<AccessControl>(options);
  }

  // Revoked looks again as a call a while later would.
  bool Revoked(const std::string& id) {
    clock_.Advance(absl::Seconds(2));
    return access_->IsRevoked(id);
  }

  // WriteInPlace writes as `cp` or an editor does: the same file, truncated
  // and then filled.
  void WriteInPlace(const std::string& contents) {
    std::FILE* f = std::fopen(path_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fwrite(contents.data(), 1, contents.size(), f);
    std::fclose(f);
  }

  testing::TempDir dir_;
  std::string path_;
  FakeClock clock_{absl::UnixEpoch() + absl::Hours(1)};
  std::vector<std::string> newly_revoked_;
  std::unique_ptr<AccessControl> access_;
};

TEST_F(RevocationListTest, DeletedEmptiedOrCutShortFileKeepsEveryRevocation) {
  ASSERT_TRUE(Revoked("a"));
  ASSERT_TRUE(Revoked("b"));
  EXPECT_FALSE(Revoked("c"));
  EXPECT_THAT(newly_revoked_, ::testing::UnorderedElementsAre("a", "b"))
      << "the first read reports what is revoked";

  ASSERT_EQ(std::remove(path_.c_str()), 0);
  EXPECT_TRUE(Revoked("a")) << "deleting the file lifted a revocation";
  EXPECT_TRUE(Revoked("b"));

  WriteInPlace("");
  EXPECT_TRUE(Revoked("a")) << "emptying the file lifted a revocation";
  EXPECT_TRUE(Revoked("b"));

  // A new list that lifts "a" and adds "c", read at every point of a copy.
  const std::string next = absl::StrCat("b\nc\n", RevocationTrailer(2));
  for (size_t cut = 0; cut < next.size(); ++cut) {
    WriteInPlace(next.substr(0, cut));
    EXPECT_TRUE(Revoked("a")) << "cut at " << cut << " lifted a revocation";
    EXPECT_TRUE(Revoked("b")) << "cut at " << cut;
  }
  // What an incomplete copy adds is revoked at once.
  EXPECT_TRUE(Revoked("c"));
}

TEST_F(RevocationListTest, CompleteListReplacesTheOneInForce) {
  ASSERT_TRUE(Revoked("a"));
  // Hand-edited without the trailer: its additions count, its removals not.
  WriteInPlace("b\nz\n");
  EXPECT_TRUE(Revoked("z"));
  EXPECT_TRUE(Revoked("a"));
  // A trailer that miscounts is not complete either.
  WriteInPlace(absl::StrCat("b\n", RevocationTrailer(2)));
  EXPECT_TRUE(Revoked("a"));
  // Replaced atomically by a complete list: "a" and "z" are lifted.
  ASSERT_TRUE(
      WriteFileAtomically(path_, absl::StrCat("b\n", RevocationTrailer(1)))
          .ok());
  EXPECT_FALSE(Revoked("a"));
  EXPECT_FALSE(Revoked("z"));
  EXPECT_TRUE(Revoked("b"));
}

// Anyone who can reach the port can fail a TLS handshake, and gRPC logs a
// line for each; 300 of them must cost a bounded number of lines, routed
// through our logger.
TEST_F(TlsTest, FailedHandshakesLogABoundedNumberOfLines) {
  RouteGrpcLogs();
  testing::LogCapture log;
  StartServer();
  for (int i = 0; i < 300; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const char hello[] =
          "GET / HTTP/1.1\r\nHost: x\r\n\r\n";  // not a TLS hello
      [[maybe_unused]] ssize_t sent =
          ::send(fd, hello, sizeof(hello) - 1, MSG_NOSIGNAL);
      char buf[256];
      while (::recv(fd, buf, sizeof(buf), 0) > 0) {
      }
    }
    ::close(fd);
  }
  // Let the server's last handshakes finish failing.
  absl::SleepFor(absl::Milliseconds(500));
  int grpc_lines = 0;
  for (absl::string_view line : absl::StrSplit(log.Text(), '\n')) {
    if (absl::StrContains(line, "grpc: ")) ++grpc_lines;
  }
  EXPECT_GT(grpc_lines, 0)
      << "gRPC's handshake failures were not routed to our log";
  EXPECT_LE(grpc_lines, 80) << log.Text().substr(0, 4000);
}

// A device started without its bundle against a TLS server used to retry
// for ten minutes with "Socket closed" and no hint.
TEST_F(TlsTest, PlaintextAgentAgainstATlsServerIsToldTheServerRequiresTls) {
  StartServer();
  client::AgentOptions options;
  options.server_address = absl::StrCat("127.0.0.1:", server_->port());
  options.client_id = "device-a";
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(100);
  options.give_up_after = absl::Seconds(3);
  client::Agent agent(options, nullptr);
  const absl::Status s = agent.Run();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("requires TLS")) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("--pki-dir")) << s;
}

TEST_F(TlsTest, TlsAgentAgainstAPlaintextServerIsToldTheHandshakeFails) {
  FederationServiceOptions service_options;
  service_options.access.require_certificate = false;
  service_ = std::make_unique<FederationService>(service_options, &clients_,
                                                 store_.get());
  server_ = *GrpcServer::Start("127.0.0.1:0", service_.get(), nullptr);
  absl::StatusOr<TlsMaterial> tls = LoadClientTls(pki_ + "/clients/device-a");
  ASSERT_TRUE(tls.ok()) << tls.status();
  client::AgentOptions options;
  options.server_address = absl::StrCat("127.0.0.1:", server_->port());
  options.client_id = "device-a";
  options.tls = std::make_shared<const TlsMaterial>(*std::move(tls));
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(100);
  options.give_up_after = absl::Seconds(3);
  client::Agent agent(options, nullptr);
  const absl::Status s = agent.Run();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("without TLS")) << s;
}

}  // namespace
}  // namespace shoal
