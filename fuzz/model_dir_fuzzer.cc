// Model files: a model directory's manifest (ParseModelRecord, what
// ReadModelRecord reads) and its payload, read back through the real file
// readers (LoadModelParameters: manifest, SHA-256 check, ParseParameters).
// TorchScript files (torch::jit::load) are LibTorch's parser, not Shoal's,
// and are left out.
//
// Properties: nothing crashes; a manifest that parses names a params file
// inside the directory, and a code file only by a well-formed hash
// (code-<64 hex>.pt, never a path); a model that loads matches the
// manifest's SHA-256.
//
// Input: the manifest's text, a NUL byte, the payload (a serialized
// ParametersProto). "@SHA256@" in the manifest is replaced by the payload's
// digest, so the fuzzer gets past the integrity check. The manifest goes
// through ExpandRepeats (fuzz/fuzz_support.h): deep nesting and long values
// are in reach.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_replace.h"
#include "common/model_dir.h"
#include "common/sha256.h"
#include "fuzz/fuzz_support.h"

namespace shoal::fuzz {
namespace {

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
}

std::vector<std::string> Seeds() {
  Parameters p;
  p.Add("w", at::arange(6, at::kFloat).reshape({2, 3}));
  p.Add("b", at::zeros({3}, at::kFloat));
  const std::string payload = SerializeParameters(p);
  auto manifest = [](const std::string& extra) {
    return absl::StrCat(
        "{\n  \"version\": 3,\n  \"sha256\": \"@SHA256@\",\n  \"size_bytes\": 60,\n"
        "  \"model\": \"cnn\",\n  \"params_file\": \"model-000000.params\"",
        extra, "\n}\n");
  };
  std::vector<std::string> seeds;
  seeds.push_back(manifest("") + '\0' + payload);
  seeds.push_back(manifest(",\n  \"metrics\": {\"test_accuracy\": 0.81, \"round\": 3},\n"
                           "  \"created_at\": \"2024-01-01T00:00:00Z\"") +
                  '\0' + payload);
  seeds.push_back(manifest(",\n  \"metrics\": {}") + '\0');
  seeds.push_back(manifest(",\n  \"code_sha256\": \"" + std::string(64, 'a') + "\"") + '\0' +
                  payload);
  // Issue 14: a cached manifest nesting 100,000 levels crashed the client
  // at every start.
  seeds.push_back(manifest(",\n  \"metrics\": {\"a\": {{100000*[}}{{100000*]}}}") + '\0' +
                  payload);
  return seeds;
}

}  // namespace
}  // namespace shoal::fuzz

SHOAL_FUZZ_INITIALIZE(shoal::fuzz::Seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal;
  using namespace shoal::fuzz;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string payload = nul == std::string::npos ? "" : input.substr(nul + 1);
  const std::string manifest = absl::StrReplaceAll(
      ExpandRepeats(input.substr(0, nul)), {{"@SHA256@", Sha256Hex(payload)}});

  absl::StatusOr<ModelRecord> record = ParseModelRecord(manifest, "fuzz.json");
  if (record.ok()) {
    Check(!record->params_file.empty() &&
              record->params_file.find('/') == std::string::npos,
          "a manifest naming a file outside the directory parsed");
    const std::string& code = record->code_sha256_hex;
    Check(code.empty() || (code.size() == 64 && code.find_first_not_of("0123456789abcdef") ==
                                                    std::string::npos),
          "a manifest naming its code by anything but a SHA-256 parsed");
  }

  // The same bytes through the file readers, as a client loading its cached
  // model would see them.
  const std::string& dir = ScratchDir();
  WriteFile(dir + "/latest.json", manifest);
  WriteFile(dir + "/model-000000.params", payload);
  ModelRecord loaded;
  absl::StatusOr<Parameters> params = LoadModelParameters(dir, &loaded);
  Check(params.ok() <= record.ok(), "a model loaded from a manifest that does not parse");
  if (params.ok()) {
    // Only two files exist, and a manifest may name either.
    const bool is_payload = loaded.params_file == "model-000000.params";
    Check(is_payload || loaded.params_file == "latest.json",
          "a model loaded from a file that does not exist");
    Check(Sha256Hex(is_payload ? payload : manifest) == loaded.sha256_hex,
          "a loaded model does not match its manifest's SHA-256");
  }
  std::remove((dir + "/latest.json").c_str());
  std::remove((dir + "/model-000000.params").c_str());
  return 0;
}
