#include "common/stop_signals.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <ctime>

namespace shardrec {
namespace {

std::atomic<int> g_stop{0};
std::atomic<int64_t> g_first_ms{0};
bool g_announce = false;
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free,
              "the handler needs lock-free flags");

int64_t NowMs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);  // async-signal-safe
  return static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

extern "C" void OnStopSignal(int sig) {
  const int saved_errno = errno;  // the interrupted code may be about to read it
  struct Restore {
    int value;
    ~Restore() { errno = value; }
  } restore{saved_errno};
  if (g_stop.load() != 0) {
    // One Ctrl-C can arrive twice (the terminal signals the whole process group, and the launcher
    // forwards it): only a request a second or more after the first stops at once, the way the
    // signal would have without a handler.
    if (NowMs() - g_first_ms.load() < 1000) return;
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_first_ms.store(NowMs());
  g_stop.store(sig);
  if (g_announce) {
    static const char kMessage[] =
        "shardrec: stop requested; finishing the current steps and writing a checkpoint (signal again to stop at "
        "once)\n";
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  }
}

}  // namespace

void InstallStopHandlers(bool announce) {
  g_announce = announce;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) sigaction(sig, &sa, nullptr);
}

const std::atomic<int>& StopSignal() { return g_stop; }

}  // namespace shardrec
