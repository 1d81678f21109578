#include "client/data/source.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/data/spool.h"
#include "client/data/torch_file.h"
#include "common/logging.h"
#include "common/status.h"

namespace shoal::client {

absl::StatusOr<DataFormat> ParseDataFormat(const std::string& text) {
  if (text == "idx") return DataFormat::kIdx;
  if (text == "csv") return DataFormat::kCsv;
  if (text == "image_folder") return DataFormat::kImageFolder;
  if (text == "torch") return DataFormat::kTorch;
  return absl::InvalidArgumentError(absl::StrCat("unknown data format '", text.substr(0, 64),
                                                 "': expected idx, csv, image_folder or torch"));
}

std::string DataFormatName(DataFormat format) {
  switch (format) {
    case DataFormat::kIdx:
      return "idx";
    case DataFormat::kCsv:
      return "csv";
    case DataFormat::kImageFolder:
      return "image_folder";
    case DataFormat::kTorch:
      return "torch";
  }
  return "unknown";
}

absl::StatusOr<Dataset> ReadDataFile(const DataOptions& options, const std::string& path,
                                     const Task& task, int64_t num_classes) {
  const bool classes = TargetsAreClassIndices(task.options().kind);
  switch (options.format) {
    case DataFormat::kIdx: {
      SHOAL_ASSIGN_OR_RETURN(const at::Tensor images, ReadIdxImages(path));
      return Dataset{ScaleImages(images), at::Tensor()};
    }
    case DataFormat::kCsv: {
      CsvOptions csv = options.csv;
      csv.targets = classes ? TargetType::kClassIndex : TargetType::kFloat;
      csv.num_classes = classes ? num_classes : 0;
      return ReadCsv(path, csv);
    }
    case DataFormat::kImageFolder: {
      SHOAL_ASSIGN_OR_RETURN(LabelledImages images, ReadImageFolder(path, options.images));
      return std::move(images.data);
    }
    case DataFormat::kTorch:
      return ReadTorchFile(path);
  }
  return absl::InvalidArgumentError("unknown data format");
}

absl::StatusOr<Dataset> LoadData(const DataOptions& options, Split split, const Task& task,
                                 int64_t num_classes) {
  Dataset data;
  if (options.format == DataFormat::kIdx) {
    SHOAL_ASSIGN_OR_RETURN(data, LoadIdxDir(options.dir, split == Split::kTest));
  } else {
    const bool own_test_file = !options.test.empty();
    if (options.train.empty() || (!own_test_file && split == Split::kTest &&
                                  options.test_fraction <= 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the ", DataFormatName(options.format), " data needs ",
          options.train.empty() ? "data.train" : "data.test or data.test_fraction",
          " for its ", split == Split::kTest ? "test" : "training", " split"));
    }
    const std::string& path = split == Split::kTest && own_test_file ? options.test : options.train;
    SHOAL_ASSIGN_OR_RETURN(data, ReadDataFile(options, path, task, num_classes));
    if (!own_test_file && options.test_fraction > 0) {
      // One file, split once the same way by every process of a run.
      std::vector<int64_t> all(static_cast<size_t>(data.size()));
      std::iota(all.begin(), all.end(), 0);
      auto [train, test] = SplitHoldout(all, options.test_fraction, options.split_seed);
      std::sort(train.begin(), train.end());
      std::sort(test.begin(), test.end());
      data = data.Subset(split == Split::kTest ? test : train);
      if (data.size() == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": data.test_fraction ", options.test_fraction, " leaves no ",
            split == Split::kTest ? "test" : "training", " examples"));
      }
    }
  }
  if (!TargetsAreClassIndices(task.options().kind)) {
    // IDX labels are class indices; a multi-label or regression task reads
    // them as values.
    if (data.targets.scalar_type() == at::kLong) data.targets = data.targets.to(at::kFloat);
  } else if (data.targets.scalar_type() != at::kLong) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a classification task needs integer class labels, but the ",
        DataFormatName(options.format), " data holds ", c10::toString(data.targets.scalar_type()),
        " targets"));
  }
  Normalization normalization = options.normalization;
  if (normalization.mode == Normalization::Mode::kAuto) {
    // Statistics of the training split, also for the test split: a model is
    // evaluated on inputs scaled as it was trained on.
    if (split == Split::kTest) {
      SHOAL_ASSIGN_OR_RETURN(normalization, TrainingNormalization(options, task, num_classes));
    } else {
      Dataset train{data.inputs.clone(), data.targets};
      SHOAL_ASSIGN_OR_RETURN(normalization, Normalize(normalization, train));
      normalization.mode = Normalization::Mode::kGiven;
      spdlog::info("normalizing with mean [{}] and std [{}] computed from the training split",
                   absl::StrJoin(normalization.mean, ", "),
                   absl::StrJoin(normalization.std, ", "));
    }
  }
  SHOAL_RETURN_IF_ERROR(Normalize(normalization, data).status());
  return data;
}

namespace {

// CheckTargetKind makes `targets` what `task` trains on: IDX labels are
// class indices, which a multi-label or regression task reads as values.
absl::StatusOr<at::Tensor> CheckTargetKind(const DataOptions& options, const Task& task,
                                           at::Tensor targets) {
  if (!TargetsAreClassIndices(task.options().kind)) {
    if (targets.scalar_type() == at::kLong) return targets.to(at::kFloat);
    return targets;
  }
  if (targets.scalar_type() != at::kLong) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a classification task needs integer class labels, but the ",
        DataFormatName(options.format), " data holds ", c10::toString(targets.scalar_type()),
        " targets"));
  }
  return targets;
}

// SpoolFile reads all of `path` (or the IDX split) into a spool.
absl::StatusOr<std::shared_ptr<const ExampleSource>> SpoolSplit(const DataOptions& options,
                                                                const std::string& path,
                                                                Split split, const Task& task,
                                                                int64_t num_classes,
                                                                int64_t chunk) {
  SHOAL_ASSIGN_OR_RETURN(
      std::unique_ptr<SpoolWriter> spool,
      SpoolWriter::Create(options.spool_dir.empty() ? DefaultSpoolDir() : options.spool_dir,
                          path));
  const ChunkFn append = [&](Dataset chunk_data) -> absl::Status {
    SHOAL_ASSIGN_OR_RETURN(chunk_data.targets,
                           CheckTargetKind(options, task, std::move(chunk_data.targets)));
    return spool->Append(chunk_data);
  };
  const bool classes = TargetsAreClassIndices(task.options().kind);
  switch (options.format) {
    case DataFormat::kIdx: {
      SHOAL_ASSIGN_OR_RETURN(const auto files, FindIdxFiles(options.dir, split == Split::kTest));
      SHOAL_RETURN_IF_ERROR(ReadIdxChunks(files.first, files.second, chunk, append));
      break;
    }
    case DataFormat::kCsv: {
      CsvOptions csv = options.csv;
      csv.targets = classes ? TargetType::kClassIndex : TargetType::kFloat;
      csv.num_classes = classes ? num_classes : 0;
      SHOAL_RETURN_IF_ERROR(ReadCsvChunks(path, csv, chunk, append));
      break;
    }
    case DataFormat::kImageFolder:
      SHOAL_RETURN_IF_ERROR(ReadImageFolderChunks(path, options.images, chunk, append));
      break;
    case DataFormat::kTorch: {
      SHOAL_ASSIGN_OR_RETURN(Dataset data, ReadTorchFile(path));
      SHOAL_RETURN_IF_ERROR(append(std::move(data)));
      break;
    }
  }
  return spool->Finish();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ExampleSource>> OpenData(const DataOptions& options,
                                                              Split split, const Task& task,
                                                              int64_t num_classes,
                                                              int64_t chunk) {
  if (!options.stream) {
    SHOAL_ASSIGN_OR_RETURN(Dataset data, LoadData(options, split, task, num_classes));
    return InMemory(std::move(data));
  }
  if (chunk < 1) return absl::InvalidArgumentError("chunk must be >= 1");
  std::string path = options.dir;
  const bool own_test_file = !options.test.empty();
  if (options.format != DataFormat::kIdx) {
    if (options.train.empty() ||
        (!own_test_file && split == Split::kTest && options.test_fraction <= 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the ", DataFormatName(options.format), " data needs ",
          options.train.empty() ? "data.train" : "data.test or data.test_fraction", " for its ",
          split == Split::kTest ? "test" : "training", " split"));
    }
    path = split == Split::kTest && own_test_file ? options.test : options.train;
  }
  std::shared_ptr<const ExampleSource> source;
  try {
    SHOAL_ASSIGN_OR_RETURN(source, SpoolSplit(options, path, split, task, num_classes, chunk));
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": cannot read the data: ", e.what_without_backtrace()));
  }
  if (options.format != DataFormat::kIdx && !own_test_file && options.test_fraction > 0) {
    // One file, split once the same way by every process of a run.
    std::vector<int64_t> all(static_cast<size_t>(source->size()));
    std::iota(all.begin(), all.end(), 0);
    auto [train, test] = SplitHoldout(all, options.test_fraction, options.split_seed);
    std::sort(train.begin(), train.end());
    std::sort(test.begin(), test.end());
    source = source->Subset(split == Split::kTest ? test : train);
    if (source->size() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": data.test_fraction ", options.test_fraction, " leaves no ",
          split == Split::kTest ? "test" : "training", " examples"));
    }
  }
  Normalization normalization = options.normalization;
  if (normalization.mode == Normalization::Mode::kAuto) {
    std::shared_ptr<const ExampleSource> train = source;
    if (split == Split::kTest) {
      DataOptions raw = options;
      raw.normalization = Normalization{};
      SHOAL_ASSIGN_OR_RETURN(train, OpenData(raw, Split::kTrain, task, num_classes, chunk));
    }
    SHOAL_ASSIGN_OR_RETURN(normalization, ComputeNormalization(*train, chunk));
    spdlog::info("normalizing with mean [{}] and std [{}] computed from the training split",
                 absl::StrJoin(normalization.mean, ", "), absl::StrJoin(normalization.std, ", "));
  }
  const std::vector<int64_t> shape = source->input_shape();
  SHOAL_RETURN_IF_ERROR(CheckNormalization(normalization, shape.empty() ? 1 : shape[0]));
  return Normalized(std::move(source), std::move(normalization));
}

absl::StatusOr<Normalization> TrainingNormalization(const DataOptions& options, const Task& task,
                                                    int64_t num_classes) {
  if (options.normalization.mode != Normalization::Mode::kAuto) return options.normalization;
  DataOptions raw = options;
  raw.normalization = Normalization{};
  SHOAL_ASSIGN_OR_RETURN(Dataset train, LoadData(raw, Split::kTrain, task, num_classes));
  SHOAL_ASSIGN_OR_RETURN(Normalization used, Normalize(options.normalization, train));
  used.mode = Normalization::Mode::kGiven;
  spdlog::info("normalizing with mean [{}] and std [{}] computed from the training split",
               absl::StrJoin(used.mean, ", "), absl::StrJoin(used.std, ", "));
  return used;
}

absl::StatusOr<Normalization> Normalize(const Normalization& normalization, Dataset& data) {
  Normalization used = normalization;
  if (normalization.mode == Normalization::Mode::kNone) return used;
  at::Tensor& x = data.inputs;
  if (x.dim() < 2 || !at::isFloatingType(x.scalar_type())) {
    return absl::InvalidArgumentError("only floating-point inputs [N, ...] can be normalized");
  }
  const int64_t width = x.size(1);
  if (normalization.mode == Normalization::Mode::kAuto) {
    if (x.size(0) < 2) {
      return absl::InvalidArgumentError(
          "cannot compute a normalization from fewer than 2 examples; give data.normalize a "
          "mean and std");
    }
    // Statistics over every axis but the channel/feature one, in double.
    std::vector<int64_t> reduce;
    for (int64_t d = 0; d < x.dim(); ++d) {
      if (d != 1) reduce.push_back(d);
    }
    const at::Tensor x64 = x.to(at::kDouble);
    const at::Tensor mean = x64.mean(reduce).contiguous();
    // A constant feature has std 0: leave its scale alone (std 1).
    const at::Tensor std = x64.std(reduce, /*unbiased=*/false).clamp_min(1e-12).contiguous();
    used.mode = Normalization::Mode::kGiven;
    used.mean.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + width);
    used.std.assign(std.data_ptr<double>(), std.data_ptr<double>() + width);
    for (double& s : used.std) {
      if (s <= 1e-12) s = 1;
    }
  }
  SHOAL_RETURN_IF_ERROR(CheckNormalization(used, width));
  ApplyNormalization(used, x);
  return used;
}

std::vector<int64_t> InputShape(const Dataset& data) {
  if (!data.inputs.defined() || data.inputs.dim() < 1) return {};
  const auto sizes = data.inputs.sizes();
  return std::vector<int64_t>(sizes.begin() + 1, sizes.end());
}

absl::StatusOr<int64_t> OutputsFor(const Task& task, const Dataset& data, int64_t num_classes) {
  return OutputsFor(task, *InMemory(data), num_classes);
}

absl::StatusOr<int64_t> OutputsFor(const Task& task, const ExampleSource& data,
                                   int64_t num_classes) {
  const at::Tensor& targets = data.targets();
  if (!TargetsAreClassIndices(task.options().kind)) {
    return targets.dim() == 1 ? 1 : targets.size(1);
  }
  if (data.size() == 0) {
    if (num_classes > 0) return num_classes;
    return absl::InvalidArgumentError("no examples to count the classes of; set task.num_classes");
  }
  const int64_t lo = targets.min().item<int64_t>();
  const int64_t hi = targets.max().item<int64_t>();
  if (lo < 0) {
    return absl::InvalidArgumentError(absl::StrCat("label ", lo, " is negative"));
  }
  if (num_classes > 0 && hi >= num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("label ", hi, " is not below task.num_classes (", num_classes, ")"));
  }
  return num_classes > 0 ? num_classes : hi + 1;
}

uint64_t ClientSeed(uint64_t run_seed, uint64_t client) {
  return run_seed ^ (0x5eedULL + client + 1);
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> SplitHoldout(
    const std::vector<int64_t>& examples, double fraction, uint64_t seed) {
  const auto n = static_cast<int64_t>(examples.size());
  const auto held = static_cast<int64_t>(fraction * static_cast<double>(n));
  const at::Tensor perm = at::randperm(n, at::make_generator<at::CPUGeneratorImpl>(seed),
                                       at::TensorOptions().dtype(at::kLong));
  const int64_t* p = perm.data_ptr<int64_t>();
  std::pair<std::vector<int64_t>, std::vector<int64_t>> out;
  out.first.reserve(static_cast<size_t>(n - held));
  out.second.reserve(static_cast<size_t>(held));
  for (int64_t i = 0; i < n; ++i) {
    (i < held ? out.second : out.first).push_back(examples[static_cast<size_t>(p[i])]);
  }
  return out;
}

std::pair<Dataset, Dataset> SplitClientData(const Dataset& data, double fraction, uint64_t seed) {
  std::vector<int64_t> all(static_cast<size_t>(data.size()));
  std::iota(all.begin(), all.end(), 0);
  auto [train, held] = SplitHoldout(all, fraction, seed);
  return {data.Subset(train), data.Subset(held)};
}

std::pair<std::shared_ptr<const ExampleSource>, std::shared_ptr<const ExampleSource>>
SplitClientData(const ExampleSource& data, double fraction, uint64_t seed) {
  std::vector<int64_t> all(static_cast<size_t>(data.size()));
  std::iota(all.begin(), all.end(), 0);
  auto [train, held] = SplitHoldout(all, fraction, seed);
  return {data.Subset(train), data.Subset(held)};
}

}  // namespace shoal::client
