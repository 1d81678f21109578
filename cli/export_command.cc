// shoal export: write a stored global model where PyTorch can use it.
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "client/inference.h"
#include "client/model.h"
#include "common/files.h"
#include "common/status.h"

namespace shoal::cli {

absl::Status CheckWritableTarget(const std::string& path, absl::string_view flag) {
  std::error_code ec;
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " needs a file name"));
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " '", path, "' is a folder; name the file to write"));
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " '", path, "': the folder '", parent.string(), "' does not exist"));
  }
  return absl::OkStatus();
}

namespace {

// PythonModulePath is where a built-in's Python module goes: the flag, or
// `output` with its extension replaced by ".py".
std::string PythonModulePath(const ExportFlags& flags) {
  if (!flags.python_module.empty()) return flags.python_module;
  return std::filesystem::path(flags.output).replace_extension(".py").string();
}

absl::Status RunExport(const ExportFlags& flags) {
  SHOAL_RETURN_IF_ERROR(CheckWritableTarget(flags.output, "--output"));
  SHOAL_ASSIGN_OR_RETURN(
      std::shared_ptr<const ModelVerifier> verifier,
      VerifierForStoredModel(flags.model_key, flags.insecure_unverified, "shoal export"));
  ModelRecord record;
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<client::Model> model,
                         client::LoadStoredModel(flags.model_dir, &record, /*spec_override=*/"",
                                                 verifier.get(), flags.version));
  const bool torchscript = !record.code_sha256_hex.empty();
  std::string python;
  if (torchscript) {
    if (!flags.python_module.empty()) {
      return absl::InvalidArgumentError(
          "--python-module: the model is TorchScript, which carries its own code; "
          "load the export with torch.jit.load");
    }
  } else {
    SHOAL_ASSIGN_OR_RETURN(const client::ModelSpec spec, client::ParseModelSpec(record.model_spec));
    SHOAL_ASSIGN_OR_RETURN(python, client::BuiltinPythonModule(spec));
    if (PythonModulePath(flags) == flags.output) {
      return absl::InvalidArgumentError(
          absl::StrCat("--output '", flags.output,
                       "' would be overwritten by the Python module; name the "
                       "weights file .pt, or give --python-module"));
    }
    SHOAL_RETURN_IF_ERROR(CheckWritableTarget(PythonModulePath(flags), "--python-module"));
  }
  SHOAL_ASSIGN_OR_RETURN(const std::string bytes, model->Export());
  // Write failures are the machine's (a full or read-only disk): exit 1.
  const auto write = [](const std::string& path, const std::string& contents) {
    absl::Status status = WriteFileAtomically(path, contents);
    return status.ok()
               ? status
               : absl::InternalError(absl::StrCat("cannot write '", path, "': ", status.message()));
  };
  SHOAL_RETURN_IF_ERROR(write(flags.output, bytes));
  std::printf(
      "exported model version %lld (%s) from %s, %s\n", static_cast<long long>(record.version),
      torchscript
          ? absl::StrCat("torchscript, code SHA-256 ", record.code_sha256_hex.substr(0, 16)).c_str()
          : record.model_spec.c_str(),
      flags.model_dir.c_str(),
      verifier != nullptr ? "signature verified" : "signature NOT checked");
  if (torchscript) {
    std::printf(
        "  %s: TorchScript with the trained weights; in Python: "
        "model = torch.jit.load(\"%s\")\n",
        flags.output.c_str(), flags.output.c_str());
    return absl::OkStatus();
  }
  const std::string module_path = PythonModulePath(flags);
  SHOAL_RETURN_IF_ERROR(write(module_path, python));
  const std::string module = std::filesystem::path(module_path).stem().string();
  std::printf(
      "  %s: the state dict (torch.load + load_state_dict)\n"
      "  %s: the model's class; in Python: import %s; model = %s.load(\"%s\")\n",
      flags.output.c_str(), module_path.c_str(), module.c_str(), module.c_str(),
      flags.output.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunExportCommand(const ExportFlags& flags) {
  absl::Status status = RunExport(flags);
  if (!status.ok()) {
    PrintCommandError("export", status.message());
    return absl::IsInvalidArgument(status) || absl::IsNotFound(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace shoal::cli
