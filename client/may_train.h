// May-train checks for AgentOptions::may_train from outside the program: a
// device's own command, or a pause file, so that `shoal client` can ask
// the device whether it may train now (idle, charging, unmetered) without
// any C++. A "no" declines the round's task; the server counts the device
// as declined, with the reason given here, not as failed.
#ifndef SHOAL_CLIENT_MAY_TRAIN_H_
#define SHOAL_CLIENT_MAY_TRAIN_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace shoal::client {

// MayTrainCommand returns a check that runs `command` with /bin/sh -c each
// time it is asked (in a process group of its own, stdin from /dev/null,
// default signal handling). Exit
// status 0: train now. Any other status, a signal, or no answer within
// `timeout` (the command's group is then killed): decline, with the first
// line the command printed (stdout and stderr, printable ASCII, at most 200
// characters) as the reason, else what ended it ("exited with status 1").
std::function<absl::Status()> MayTrainCommand(std::string command,
                                              absl::Duration timeout = absl::Seconds(10));

// PauseWhileFileExists returns a check that declines while `path` exists,
// with the file's first line as the reason (printable ASCII, at most 200
// characters; "PATH exists" when it is empty or unreadable).
std::function<absl::Status()> PauseWhileFileExists(std::string path);

// Both: a check that says yes only when each given one does (unset ones
// are skipped); the first "no" is the reason.
std::function<absl::Status()> BothMayTrain(std::function<absl::Status()> a,
                                           std::function<absl::Status()> b);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_MAY_TRAIN_H_
