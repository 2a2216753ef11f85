// Capacity planning without allocating anything: for a sharding plan, a cluster description and a
// workload (how many ids each rank looks up per step, drawn from which distribution), the expected
// all-to-all traffic per step (bytes between every pair of ranks, split into intra- and inter-node,
// and its time at the links' bandwidth) and the memory per rank, broken down by what holds it.
// `shardrec plan` prints it (docs/sharding.md, "Reading a plan"); `shardrec train` prints the
// memory estimate and checks it against the measured peak.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sharding/cluster.h"
#include "sharding/plan.h"
#include "sharding/types.h"

namespace shardrec {

// How the ids of a table are distributed: Zipf(exponent) over popularity ranks 1..rows (exponent 0
// is uniform), and how popularity ranks map to rows: shuffled (popularity independent of the row,
// as raw-id order gives) or sorted (row 0 the most popular: the worst case for contiguous row
// blocks, all hot rows on rank 0).
struct IdDistribution {
  double zipf = 1.05;
  bool sorted = false;
  // When set: the measured popularity of each row (training events per item), used instead of
  // Zipf; counts->size() must equal the table's rows. Not owned: it must outlive the estimate.
  const std::vector<int64_t>* counts = nullptr;
};

// What one table serves per step on every rank.
struct TableWorkload {
  IdDistribution ids;
  double local_draws = 0;    // ids each rank draws on its own (its batch's lookups)
  double shared_draws = 0;   // ids drawn once per step that every rank looks up (global candidates)
  double uniform_draws = 0;  // ids drawn uniformly, shared by every rank (sampled negatives)
  double outputs = 0;        // rows the lookup returns to the model on each rank (before pooling)
  bool all_rows = false;     // every rank looks up every row each step (a full softmax)
};

// Expected number of distinct popularity ranks in [begin, end) (1-based, end exclusive) hit by
// `draws` draws from Zipf(exponent) over 1..rows together with `uniform` uniform draws. Exact sums
// below rank 2^20, a midpoint integral from there (relative error < 1e-6).
double ExpectedDistinct(double zipf, int64_t rows, double draws, double uniform, int64_t begin, int64_t end);

// The same for a measured popularity (`counts` by row, summing to `total` > 0): rows [begin, end)
// (0-based).
double ExpectedDistinct(const std::vector<int64_t>& counts, double total, double draws, double uniform, int64_t begin,
                        int64_t end);

struct RankTraffic {
  double distinct = 0;          // distinct ids this rank requests per step, over all its tables
  double sent_intra = 0, sent_inter = 0;          // bytes per step, to ranks on its node / others
  double received_intra = 0, received_inter = 0;  // bytes per step
  double seconds = 0;           // this rank's all-to-all time per step
  // Its memory traffic per step serving the rows asked of its shards (the forward gather reads a
  // row; the update reads and writes it with its optimizer state) at the memory bandwidth.
  double lookup_seconds = 0;
  // Memory (bytes)
  double tables = 0;            // its shards' weights
  double optimizer = 0;         // their optimizer state
  double buffers = 0;           // a step's id and row buffers (sent, received, served, gradients)
};

struct CapacityEstimate {
  std::vector<RankTraffic> ranks;
  double total_bytes = 0;       // sent by all ranks per step, to other ranks
  double step_seconds = 0;      // the slowest rank's all-to-all time (bandwidth bound + latency)
  double dense_allreduce_seconds = 0;  // data-parallel tables' gradient all-reduce per step
  // Accumulated table by table (AddTableCapacity), turned into times by FinishCapacity.
  int sharded_tables = 0;
  double allreduce_bytes = 0;
  // A rank's step time as the planner scores it: all-to-all + lookups + the replicated tables'
  // all-reduce.
  double RankSeconds(int rank) const {
    const RankTraffic& r = ranks[static_cast<size_t>(rank)];
    return r.seconds + r.lookup_seconds + dense_allreduce_seconds;
  }
};

// The distinct ids of one table a rank asks for per step, among any rows [begin, end) (the same on
// every rank): the workload's id distribution (Zipf, or measured counts) with its draws.
class DistinctIds {
 public:
  // Keeps pointers to both: they must outlive it.
  DistinctIds(const TableSpec& spec, const TableWorkload& workload);
  DistinctIds(const TableSpec&&, const TableWorkload&) = delete;
  DistinctIds(const TableSpec&, const TableWorkload&&) = delete;
  double whole() const { return whole_; }  // over all rows
  double rows(int64_t begin, int64_t end) const;

 private:
  const TableSpec* spec_;
  const TableWorkload* workload_;
  double draws_ = 0, weight_sum_ = 0, whole_ = 0;
};

// One table's share of an estimate, added to `e` (whose ranks are sized to the cluster): memory,
// distinct ids, all-to-all bytes, buffers and lookup time of `plan`'s shards.
void AddTableCapacity(const TableSpec& spec, const TablePlan& plan, const TableWorkload& workload, const DistinctIds& ids,
                      const ClusterSpec& cluster, int64_t bytes_per_element, CapacityEstimate& e);
// After the last table: the all-to-alls' (rank, table) counts and every rank's and the step's times.
void FinishCapacity(const ClusterSpec& cluster, CapacityEstimate& e);

// Traffic and memory of `plan` for `specs` with one workload per spec. All-to-all bytes per step
// follow ShardedEmbeddingCollection (docs/sharding.md, "One step"): a rank sends each owner its
// distinct ids (8 bytes) and the gradients of their rows (cols x 4 bytes), and sends back the rows
// other ranks asked of it (cols x 4 bytes), plus the (rank, table) counts. Intra- and inter-node
// transfers overlap; a rank's time is the larger of the two, each the larger of its sent and
// received bytes over the link's bandwidth; a step adds four all-to-all latencies.
CapacityEstimate EstimateCapacity(const std::vector<TableSpec>& specs, const ShardingPlan& plan,
                                  const std::vector<TableWorkload>& workloads, const ClusterSpec& cluster,
                                  int64_t bytes_per_element = 4);

}  // namespace shardrec
