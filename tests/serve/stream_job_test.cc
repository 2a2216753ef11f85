// The stream job's own state: what a checkpoint commits (stream.h5) reads back as written, and
// the segments still to consume under a set of per-producer offsets. The job itself, through kill -9
// and on 2 ranks, is tests/serve/stream_check.py.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "serve/stream_job.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

TEST(StreamState, RoundTrips) {
  testing::TempDir dir;
  StreamState s;
  s.base_version = "v20261208-000000";
  s.base_data = "/data/day \"1\".h5";  // quoted in JSON
  s.offsets = {{"a", "0000000000000002-a.jsonl"}, {"serve_1", "0000000000000003-serve_1.jsonl"}};
  s.consumed = {"0000000000000002-a.jsonl", "0000000000000001-serve_1.jsonl", "0000000000000003-serve_1.jsonl"};
  s.segments = 3, s.events = 1234, s.unknown_items = 5, s.new_users = 7, s.publishes = 2;
  s.item_events = {0, 3, 0, 9, 1};
  WriteStreamState(dir.File("stream.h5"), s);
  const StreamState r = ReadStreamState(dir.File("stream.h5"));
  EXPECT_EQ(r.base_version, s.base_version);
  EXPECT_EQ(r.base_data, s.base_data);
  EXPECT_EQ(r.offsets, s.offsets);
  EXPECT_EQ(r.consumed, s.consumed);
  EXPECT_EQ(r.segments, 3);
  EXPECT_EQ(r.events, 1234);
  EXPECT_EQ(r.unknown_items, 5);
  EXPECT_EQ(r.new_users, 7);
  EXPECT_EQ(r.publishes, 2);
  EXPECT_EQ(r.item_events, s.item_events);
}

TEST(StreamState, AnotherFileIsRefusedByName) {
  testing::TempDir dir;
  WriteFileAtomically(dir.File("x.h5"), "not hdf5");
  try {
    ReadStreamState(dir.File("x.h5"));
    FAIL() << "read a file that is not a stream state";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("x.h5"), std::string::npos) << e.what();
  }
}

TEST(StreamJob, SegmentsAfterTheOffsetsPerProducer) {
  const std::vector<std::string> log = {"0000000000000001-a.jsonl", "0000000000000002-b.jsonl", "0000000000000003-a.jsonl",
                                        "0000000000000004-b.jsonl", "0000000000000005-c.jsonl"};
  // Nothing consumed: everything, in log order.
  EXPECT_EQ(SegmentsAfter(log, {}), log);
  // a up to its second segment, b up to its first: the rest of b and all of c.
  EXPECT_EQ(SegmentsAfter(log, {{"a", "0000000000000003-a.jsonl"}, {"b", "0000000000000002-b.jsonl"}}),
            (std::vector<std::string>{"0000000000000004-b.jsonl", "0000000000000005-c.jsonl"}));
  // A segment of a that appears late with a name below a's offset cannot exist (a producer's names
  // only grow); names that are not segments are skipped.
  EXPECT_EQ(SegmentsAfter({".0000000000000009-a.jsonl.open", "junk", "0000000000000009-a.jsonl"}, {{"a", "0000000000000003-a.jsonl"}}),
            (std::vector<std::string>{"0000000000000009-a.jsonl"}));
}

}  // namespace
}  // namespace shardrec
