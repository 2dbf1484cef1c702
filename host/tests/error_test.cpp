// How a command ends: every failure's exit code and one-line message (the CLI's exit-code table,
// docs/host-tool.md), and SIGINT/SIGTERM handling (the CLI installs it): the first signal asks
// every wait to stop (request_interrupt), a second one ends the process even when it is stuck
// somewhere that never looks at the flag.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <new>
#include <stdexcept>
#include <thread>

#include "rtcanboot/host/error.hpp"

namespace rtcanboot::host {
namespace {

// Runs a child that installs the handlers, reports "ready", then reports 'I' once it sees the
// interrupt flag and goes on waiting for ever (stuck code that ignores the flag).
pid_t stuck_child(int& report) {
  int p[2];
  if (::pipe(p) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    install_interrupt_handlers();
    // Signals stay blocked except inside sigsuspend: none is lost between the check and the wait.
    sigset_t block, open;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &open);
    sigdelset(&open, SIGINT);
    sigdelset(&open, SIGTERM);
    (void)!::write(p[1], "R", 1);
    bool told = false;
    for (;;) {
      if (interrupt_requested() && !told) {
        (void)!::write(p[1], "I", 1);
        told = true;
      }
      sigsuspend(&open);
    }
  }
  ::close(p[1]);
  report = p[0];
  return pid;
}

char read_report(int fd) {
  char c = 0;
  return ::read(fd, &c, 1) == 1 ? c : '?';
}

// Waits up to 10 s for the child to end; kills it (and fails) otherwise.
int wait_end(pid_t pid) {
  for (int i = 0; i < 1000; ++i) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ADD_FAILURE() << "the process did not end";
  return status;
}

// Row 1 of the exit-code table cannot be reached on purpose through the CLI (it is a bug): the
// mapping is tested here, with every other row beside it.
TEST(ExitCodes, EveryFailureMapsToItsDocumentedCode) {
  const struct {
    ErrorKind kind;
    int code;
  } rows[] = {{ErrorKind::kInternal, 1},        {ErrorKind::kUsage, 2},
              {ErrorKind::kInput, 3},           {ErrorKind::kBus, 4},
              {ErrorKind::kNoNode, 5},          {ErrorKind::kTimeout, 6},
              {ErrorKind::kRejected, 7},        {ErrorKind::kAborted, 8},
              {ErrorKind::kWrongProduct, 9},    {ErrorKind::kNotConfirmed, 10},
              {ErrorKind::kSelfTestFailed, 11}, {ErrorKind::kInterrupted, 130}};
  for (const auto& row : rows) {
    const FailureReport r = report_failure(Error(row.kind, "what\nhappened"));
    EXPECT_EQ(r.exit_code, row.code) << to_string(row.kind);
    EXPECT_EQ(r.line, "rtcanboot: what happened");
  }
  // Anything that is not an Error is a bug: exit code 1, and the message says so.
  const FailureReport bug = report_failure(std::logic_error("vector index out of range"));
  EXPECT_EQ(bug.exit_code, 1);
  EXPECT_EQ(bug.line,
            "rtcanboot: internal error (a bug: please report): vector index out of range");
  EXPECT_EQ(report_failure(std::bad_alloc()).exit_code, 1);
}

TEST(Interrupt, FirstSignalSetsTheFlagSecondEndsTheProcess) {
  for (const int sig : {SIGINT, SIGTERM}) {
    int report = -1;
    const pid_t pid = stuck_child(report);
    ASSERT_GT(pid, 0);
    ASSERT_EQ(read_report(report), 'R');
    ASSERT_EQ(::kill(pid, sig), 0);
    EXPECT_EQ(read_report(report), 'I') << "the first signal did not set the interrupt flag";
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, WNOHANG), 0) << "the first signal ended the process";
    ASSERT_EQ(::kill(pid, sig), 0);
    status = wait_end(pid);
    EXPECT_TRUE(WIFSIGNALED(status));
    if (WIFSIGNALED(status)) {
      EXPECT_EQ(WTERMSIG(status), sig);
    }
    ::close(report);
  }
}

}  // namespace
}  // namespace rtcanboot::host
