#include "io/demo_checks.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "common/strings.h"
#include "io/convert.h"
#include "io/dataset.h"
#include "io/reader.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

std::string CsvRoundTripCheck(const std::string& dir, const std::string& synth_path) {
  const std::string csv_path = dir + "/synth_events.csv";
  const std::string conv_path = dir + "/synth_from_csv.h5";
  std::string out;
  Appendf(out, "== 2. CSV round trip: %s -> data convert --format csv -> %s\n", csv_path.c_str(), conv_path.c_str());
  WriteEventsCsv(*Dataset::Open(synth_path), csv_path);
  ConvertOptions co;
  co.format = "csv";
  const auto t0 = Clock::now();
  const ConvertReport cr = ConvertToDataset(csv_path, conv_path, co);
  const double secs = Since(t0);
  const bool same = SameEventsByRawId(*Dataset::Open(synth_path), *Dataset::Open(conv_path));
  Appendf(out, "   converted %lld events in %.2f s (%.0f events/s): %s\n", static_cast<long long>(cr.input_events), secs,
          cr.input_events / std::max(secs, 1e-9), same ? "identical users, items and event order" : "MISMATCH");
  if (!same) Fail("demo: the CSV round trip changed the data (this is a bug; please report it)");
  return out;
}

std::string ShardedReaderCheck(const std::string& synth_path, int world, int64_t batch_size, int64_t max_len, uint64_t seed) {
  std::string out;
  Appendf(out, "== 3. sharded reader: train split, %d ranks x global batch %lld, max_len %lld\n", world,
          static_cast<long long>(batch_size), static_cast<long long>(max_len));
  ReaderOptions ro;
  ro.global_batch_size = batch_size;
  ro.max_len = max_len;
  ro.seed = seed;
  const auto t0 = Clock::now();
  const ShardedReadCheck c = CheckShardedReading(synth_path, ro, world);
  const double secs = Since(t0);
  Appendf(out, "   %lld global batches, %lld sequences, %lld events read by %d ranks in %.2f s (%.0f events/s); rank pieces == "
          "single-process batches: %s\n", static_cast<long long>(c.batches), static_cast<long long>(c.rows),
          static_cast<long long>(c.positions), world, secs, c.positions / std::max(secs, 1e-9), c.equal ? "yes" : "NO");
  if (!c.equal) Fail("demo: sharded reader disagrees with the single reader (bug)");
  return out;
}

}  // namespace shardrec
