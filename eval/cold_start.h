// The cold-start protocol's dataset (io/cold_start.h): written once per run, read by training and
// evaluation alike.
#pragma once

#include <cstdint>
#include <string>

#include "distributed/communicator.h"

namespace shardrec {

// COLLECTIVE. Makes sure `path` holds the protocol's dataset of `data` for (fraction, seed): rank 0
// writes it unless it already does (atomically), and every rank learns whether that worked.
// Returns, on rank 0, a line saying what it did.
std::string PrepareColdStartData(const std::string& data, double fraction, uint64_t seed, const std::string& path,
                          Communicator& comm);

}  // namespace shardrec
