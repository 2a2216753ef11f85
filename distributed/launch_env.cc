#include "distributed/launch_env.h"

#include <cstdlib>

#include "common/error.h"
#include "common/strings.h"

namespace shardrec {
namespace {

int NeedInt(const EnvLookup& env, const std::string& name, int min) {
  auto v = env(name);
  if (!v) Fail("environment: ", name, " is not set but other ", name.substr(0, name.find('_')),
               " variables are");
  auto n = ParseInt64(*v);
  if (!n || *n < min || *n > 1'000'000) Fail("environment: ", name, "=", Quote(*v), " is not a valid count");
  return static_cast<int>(*n);
}

int OptInt(const EnvLookup& env, const std::string& name, int fallback) {
  return env(name) ? NeedInt(env, name, 0) : fallback;
}

// SLURM_TASKS_PER_NODE looks like "4(x2),3": the first node's count is enough for local size.
std::optional<int> SlurmTasksPerNode(const EnvLookup& env) {
  if (auto v = env("SLURM_NTASKS_PER_NODE")) {
    if (auto n = ParseInt64(*v)) return static_cast<int>(*n);
  }
  if (auto v = env("SLURM_TASKS_PER_NODE")) {
    std::string s = *v;
    size_t end = s.find_first_not_of("0123456789");
    if (auto n = ParseInt64(s.substr(0, end))) return static_cast<int>(*n);
  }
  return std::nullopt;
}

}  // namespace

LaunchEnv DetectLaunchEnv(const EnvLookup& env) {
  LaunchEnv e;
  if (env("OMPI_COMM_WORLD_RANK") || env("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = "openmpi";
    e.rank = NeedInt(env, "OMPI_COMM_WORLD_RANK", 0);
    e.world_size = NeedInt(env, "OMPI_COMM_WORLD_SIZE", 1);
    e.local_rank = OptInt(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0);
    e.local_world_size = OptInt(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1);
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    e.launcher = "slurm";
    e.rank = NeedInt(env, "SLURM_PROCID", 0);
    e.world_size = NeedInt(env, "SLURM_NTASKS", 1);
    e.local_rank = OptInt(env, "SLURM_LOCALID", 0);
    e.local_world_size = SlurmTasksPerNode(env).value_or(1);
  } else if (env("PMI_RANK") || env("PMI_SIZE")) {
    e.launcher = "pmi";
    e.rank = NeedInt(env, "PMI_RANK", 0);
    e.world_size = NeedInt(env, "PMI_SIZE", 1);
    e.local_rank = OptInt(env, "MPI_LOCALRANKID", 0);
    e.local_world_size = OptInt(env, "MPI_LOCALNRANKS", 1);
  }
  if (e.rank >= e.world_size) {
    Fail("environment (", e.launcher, "): rank ", e.rank, " is not below the world size ", e.world_size);
  }
  if (e.local_rank >= std::max(1, e.local_world_size) && e.local_world_size > 0) {
    Fail("environment (", e.launcher, "): local rank ", e.local_rank, " is not below the local size ",
         e.local_world_size);
  }
  return e;
}

LaunchEnv DetectLaunchEnv() {
  return DetectLaunchEnv([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  });
}

}  // namespace shardrec
