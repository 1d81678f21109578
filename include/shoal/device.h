// shoal/device.h: the device runtime for applications (docs/lifecycle.md).
//
// Device::Open(DeviceOptions) reads the experiment config and the device's
// data, builds the model, checks the device's bundle (`shoal certs client`)
// and serves the newest serving version kept on disk at once, with or
// without a server; with `endpoint` set it also answers other processes on
// a Unix socket or loopback (shoal.v1.LocalPredict). Start() takes part in
// every run of the federation (`shoal serve`) it can reach, on a thread of
// its own, and takes the serving versions the server offers (signed, judged
// on the device's held-out data before they take over); Stop() leaves.
// Predict(inputs) is thread-safe and answers with the serving version that
// computed it; a new version is swapped in atomically (predictions in flight
// finish on the old one, none fails). stats() says what the device has done
// in the runs (DeviceStats). The header needs only ATen and Abseil.
//
// Example:
//   shoal::DeviceOptions options;
//   options.config = "run.json";
//   options.data_dir = "/var/lib/app/data";
//   options.pki_dir = "/etc/shoal/device";
//   options.state_dir = "/var/lib/shoal";
//   SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<shoal::Device> device,
//                          shoal::Device::Open(options));
//   device->Start();
//   SHOAL_ASSIGN_OR_RETURN(shoal::DevicePrediction p, device->Predict(x));
#ifndef SHOAL_DEVICE_H_
#define SHOAL_DEVICE_H_

#include "experiment/device.h"
#include "shoal/status.h"

namespace shoal {
using DeviceStats = client::AgentStats;
}  // namespace shoal

#endif  // SHOAL_DEVICE_H_
