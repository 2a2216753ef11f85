// libFuzzer harness of one converter (FUZZ_FORMAT: movielens, seq or csv; io/convert.h): the input
// holds the options (from its last bytes: all zero is the defaults) and the files' text (from its
// first bytes, each file a FuzzedDataProvider string: '\' ends one, "\\" is a backslash). Any input
// must end in a dataset that reads back, or in a UserError.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/stat.h>

#include "io/convert.h"
#include "io/dataset.h"
#include "tests/fuzz/fuzz_util.h"

namespace shardrec::fuzz {
namespace {

ConvertOptions Options(FuzzedDataProvider& in) {
  ConvertOptions o;
  o.format = FUZZ_FORMAT;
  const uint8_t flags = in.ConsumeIntegral<uint8_t>();
  o.seq_layout = flags & 1 ? "lines" : flags & 2 ? "pairs" : "auto";
  o.dedup = flags & 4;
  if (flags & 8) o.min_rating = in.ConsumeIntegralInRange<int>(-1, 6) * 0.5;
  if (flags & 16) {
    o.min_user_events = in.ConsumeIntegralInRange<int64_t>(0, 4);
    o.min_item_events = in.ConsumeIntegralInRange<int64_t>(0, 4);
  }
  if (flags & 32) o.since = in.ConsumeIntegral<int32_t>();
  if (flags & 64) o.until = in.ConsumeIntegral<int32_t>();
  if (flags & 128) o.columns = in.ConsumeRandomLengthString(64);
  return o;
}

}  // namespace
}  // namespace shardrec::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardrec;
  using namespace shardrec::fuzz;
  FuzzedDataProvider in(data, size);
  const std::string dir = Scratch() + "/in", out = Scratch() + "/out.h5";
  mkdir(dir.c_str(), 0755);  // once; EEXIST after
  Clear(dir);
  std::remove(out.c_str());
  const std::string format = FUZZ_FORMAT;
  // Files first (the provider reads strings from the front), options from what is left at the back.
  std::string input;
  if (format == "movielens") {
    const bool ml1m = in.ConsumeBool();
    const char* names100k[] = {"u.data", "u.item", "u.genre"};
    const char* names1m[] = {"ratings.dat", "movies.dat"};
    for (int i = 0; i < (ml1m ? 2 : 3); ++i) WriteFile(dir + "/" + (ml1m ? names1m[i] : names100k[i]), in.ConsumeRandomLengthString(1 << 14));
    input = dir;
  } else {
    input = dir + (format == "csv" ? "/e.csv" : "/e.txt");
    WriteFile(input, in.ConsumeRandomLengthString(1 << 15));
  }
  const ConvertOptions options = Options(in);
  ExpectOnlyUserErrors([&] {
    const ConvertReport r = ConvertToDataset(input, out, options);
    // What was written reads back with the counts the converter reported.
    auto ds = Dataset::Open(out);
    if (ds->info().num_events != r.info.num_events || ds->info().num_users != r.info.num_users) std::abort();
    ds->ReadItems(0, ds->info().num_events);
    ds->ReadUserRawIds(0, ds->info().num_users);
  });
  return 0;
}
