// shoal/data.h: examples of any shape, read from IDX, CSV, image folders or
// torch.save files, normalized as configured, partitioned among clients.
//
// Dataset: `inputs` [N, ...] float32 and `targets` (int64 class indices [N],
//   or float [N] / [N, K]); a value type, not thread-safe to mutate.
// DataOptions: format, location and Normalization (none, given mean/std per
//   channel or feature, or computed from the data). Every default is
//   documented in docs/configuration.md ("data").
// LoadData(options, split, task, num_classes): reads a split. Errors:
//   NotFound (missing files), InvalidArgument naming the file, line or column
//   (ragged rows, non-numeric cells, labels out of range); nothing is
//   returned half-read.
// ExampleSource: examples as training reads them, a batch at a time; the
//   targets in memory, the inputs in memory (InMemory(dataset)) or in a
//   spool file on disk. Immutable, so safe to read from several threads.
// OpenData(options, split, task, num_classes): LoadData's examples as a
//   source; with options.stream (data.stream) the file is read a chunk at a
//   time into an unnamed spool file in options.spool_dir and read back a
//   batch at a time, so a device's data need not fit in memory. Training on
//   either gives bit-identical weights. LoadData's errors, plus NotFound /
//   PermissionDenied for a spool_dir that cannot hold a file and
//   ResourceExhausted for a full disk.
// Partition(targets, PartitionOptions): each client's example indices (iid,
//   dirichlet, shards, quantity skew; seeded). Dirichlet and shards need
//   class labels and say so for regression (InvalidArgument).
// SplitClientData(data, fraction, seed): a client's (train, holdout) split,
//   the same function in a real client and in its simulated twin; seed with
//   ClientSeed(run seed, client index).
//
// Example:
//   shoal::DataOptions data;
//   data.dir = "/usr/share/datasets/fashion-mnist";
//   SHOAL_ASSIGN_OR_RETURN(shoal::Dataset train,
//       shoal::LoadData(data, shoal::Split::kTrain, shoal::Task(), 0));
//   shoal::PartitionOptions parts;
//   parts.num_partitions = 20;
//   SHOAL_ASSIGN_OR_RETURN(auto indices, shoal::Partition(train.targets, parts));
//   auto [mine, holdout] = shoal::SplitClientData(
//       train.Subset(indices[3]), 0.1, shoal::ClientSeed(42, 3));
#ifndef SHOAL_DATA_H_
#define SHOAL_DATA_H_

#include "client/data/dataset.h"
#include "client/data/partition.h"
#include "client/data/source.h"
#include "shoal/task.h"

namespace shoal {

using client::ClientSeed;
using client::CsvOptions;
using client::DataFormat;
using client::DataOptions;
using client::Dataset;
using client::ExampleSource;
using client::ImageFolderOptions;
using client::InMemory;
using client::InputShape;
using client::LoadData;
using client::OpenData;
using client::Normalization;
using client::Partition;
using client::PartitionOptions;
using client::PartitionScheme;
using client::ReadDataFile;
using client::SampledPartitionOptions;
using client::Split;
using client::SplitClientData;
using client::TrainingNormalization;

}  // namespace shoal

#endif  // SHOAL_DATA_H_
