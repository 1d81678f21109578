// Data sources: where a client's (or the server's evaluation) examples come
// from, in any format Shoal reads, normalized as the config says, and split
// into training and held-out examples the same way in real clients and in
// the simulator.
#ifndef SHOAL_CLIENT_DATA_SOURCE_H_
#define SHOAL_CLIENT_DATA_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "client/data/csv_reader.h"
#include "client/data/dataset.h"
#include "client/data/example_source.h"
#include "client/data/image_folder.h"
#include "client/data/normalization.h"
#include "client/task.h"

namespace shoal::client {

enum class DataFormat {
  kIdx,          // `dir` holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
  kCsv,          // `train` / `test` are CSV files (ReadCsv, `csv` options)
  kImageFolder,  // `train` / `test` are folders of class folders (ReadImageFolder)
  kTorch,        // `train` / `test` are torch.save({"x": ..., "y": ...}) files
};

// ParseDataFormat accepts the format's config name ("idx", "csv",
// "image_folder", "torch"); InvalidArgument listing the choices otherwise.
absl::StatusOr<DataFormat> ParseDataFormat(const std::string& text);
std::string DataFormatName(DataFormat format);

// DataOptions: the "data" section of a config, less the partitioning.
struct DataOptions {
  DataFormat format = DataFormat::kIdx;
  std::string dir;  // kIdx: the folder with the four IDX files
  // The other formats: the training and the test file (or folder). Without
  // a test file, `test_fraction` of the training file's examples, chosen by
  // a permutation seeded with `split_seed`, are the test split and the rest
  // the training split: every process of a run computes the same split.
  std::string train;
  std::string test;
  double test_fraction = 0;
  uint64_t split_seed = 0;
  CsvOptions csv;             // kCsv (targets' type and num_classes: from the task)
  ImageFolderOptions images;  // kImageFolder
  Normalization normalization;
  // OpenData only: read the inputs a chunk at a time into a spool file in
  // `spool_dir` (empty: DefaultSpoolDir()) and train from it a batch at a
  // time, so the data need not fit in memory (only the targets do).
  bool stream = false;
  std::string spool_dir;
};

enum class Split { kTrain, kTest };

// LoadData reads the `split` examples `options` name, shaped for `task`
// (class indices or float targets; `num_classes` > 0 bounds the labels), and
// normalizes them. Errors name the file (and line or column where the
// format has them); nothing partial is returned.
absl::StatusOr<Dataset> LoadData(const DataOptions& options, Split split, const Task& task,
                                 int64_t num_classes = 0);

// OpenData returns the `split` examples LoadData returns, as a source.
// Without options.stream: LoadData's data, in memory. With it: the file is
// read `chunk` examples at a time (the whole of a kTorch file, which
// torch.load reads at once) into a spool file (client/data/spool.h), every
// example checked before the source is returned, and read back a batch at
// a time, normalized as LoadData would (kAuto's statistics are computed in
// one pass, in double, and can differ from LoadData's in the last bits).
// `used` (may be null) receives the normalization applied. LoadData's
// errors, and the spool's (a missing spool_dir, a full disk).
absl::StatusOr<std::shared_ptr<const ExampleSource>> OpenData(const DataOptions& options,
                                                              Split split, const Task& task,
                                                              int64_t num_classes = 0,
                                                              int64_t chunk = 4096);

// ReadDataFile reads one file (or folder) `path` in `options.format` (not
// kIdx's folder layout: an IDX image file, with targets absent), shaped for
// `task`, without normalizing. For inference and tools.
absl::StatusOr<Dataset> ReadDataFile(const DataOptions& options, const std::string& path,
                                     const Task& task, int64_t num_classes = 0);

// Normalize applies `normalization` to `data.inputs` in place and returns
// the mean and std it used (empty for kNone). InvalidArgument when a given
// mean/std has the wrong length for the inputs' channels or features, or a
// std is not > 0.
absl::StatusOr<Normalization> Normalize(const Normalization& normalization, Dataset& data);

// TrainingNormalization is the normalization `options` trains with, made
// explicit: kAuto's statistics computed from the training split (read
// again), kNone and kGiven as they are. For inference on new inputs.
absl::StatusOr<Normalization> TrainingNormalization(const DataOptions& options, const Task& task,
                                                    int64_t num_classes = 0);

// InputShape is one example's input shape: data.inputs.sizes()[1:].
std::vector<int64_t> InputShape(const Dataset& data);

// OutputsFor is the number of model outputs `task` needs for `data`:
// `num_classes` when set (> 0), else 1 + the largest label (classification);
// the targets' width for the other tasks (1 for targets [N]).
// InvalidArgument when a label is not below `num_classes`.
absl::StatusOr<int64_t> OutputsFor(const Task& task, const Dataset& data, int64_t num_classes);
absl::StatusOr<int64_t> OutputsFor(const Task& task, const ExampleSource& data,
                                   int64_t num_classes);

// ClientSeed is the seed of client `client`'s holdout split (and of its
// shuffling) in a run seeded `run_seed`: the same for a real client given
// partition `client` and for the simulator's virtual client `client`, so
// the two are twins.
uint64_t ClientSeed(uint64_t run_seed, uint64_t client);

// SplitHoldout splits a client's `examples` (indices into its source, in
// partition order) into training and held-out ones: `fraction` of them,
// rounded down, chosen by a permutation seeded with `seed`. The training
// examples keep the permutation's order.
std::pair<std::vector<int64_t>, std::vector<int64_t>> SplitHoldout(
    const std::vector<int64_t>& examples, double fraction, uint64_t seed);

// SplitClientData splits a client's examples `data` (its partition, or its
// own data) into training and held-out examples with SplitHoldout: what a
// real client does, and what the simulator does for virtual client `c` when
// `seed` is ClientSeed(run seed, c).
std::pair<Dataset, Dataset> SplitClientData(const Dataset& data, double fraction, uint64_t seed);
std::pair<std::shared_ptr<const ExampleSource>, std::shared_ptr<const ExampleSource>>
SplitClientData(const ExampleSource& data, double fraction, uint64_t seed);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_SOURCE_H_
