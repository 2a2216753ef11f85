#include "launch/flags.h"

DEFINE_string(format, "", "input format: movielens | seq | csv");
DEFINE_string(input, "", "input file or directory");
DEFINE_string(output, "", "output file (written to a temporary name, renamed when complete)");
DEFINE_string(seq_layout, "auto",
              "seq: 'lines' (user item1 item2 ...), 'pairs' (user item per line) or 'auto'");
DEFINE_string(columns, "",
              "csv: map roles to column names, e.g. user=reviewerID,item=asin,timestamp=ts,rating=r");
DEFINE_string(delimiter, "", "csv: field delimiter (',', ';', 'tab'); empty = detect from header");
DEFINE_string(min_rating, "", "keep events with rating >= this (empty = keep all)");
DEFINE_int64(min_user_events, 0, "k-core: drop users with fewer events (iterated with items)");
DEFINE_int64(min_item_events, 0, "k-core: drop items with fewer events (iterated with users)");
DEFINE_bool(dedup, false, "keep only the first event of each (user, item) pair");
DEFINE_bool(json, false, "print machine-readable JSON");
DEFINE_int64(users, 10000, "synthetic users");
DEFINE_int64(items, 5000, "synthetic items");
DEFINE_int64(events, 0, "synthetic events in total (0 = 20 per user; at least 3 per user)");
DEFINE_uint64(seed, 7, "random seed (the same seed gives the same output)");
DEFINE_int32(topics, 32, "synthetic latent topics");
DEFINE_int32(categories, 16, "synthetic item categories (0 = none)");
DEFINE_int32(content_dim, 16, "synthetic item content vector size (0 = none)");
DEFINE_double(zipf, 1.0, "synthetic item popularity exponent");
DEFINE_double(stay, 0.8, "synthetic P(next topic = previous item's topic)");
DEFINE_double(transition, 0.3, "synthetic P(next item is a successor of the previous item)");
DEFINE_int32(successors, 4, "synthetic successors per item");
DEFINE_bool(titles, true, "synthetic item titles");
DEFINE_string(workdir, "runs/demo", "directory for the demo's files");
DEFINE_int64(batch_size, 256, "global batch size (users per batch over all ranks)");
DEFINE_int64(max_len, 50, "history length kept per user");
DEFINE_int32(world_size, 2, "demo: reader ranks simulated in one process");
DEFINE_string(backend, "auto",
              "collectives: auto (one process: inprocess; several: mpi on cpu, nccl on cuda), "
              "inprocess, mpi, nccl");
DEFINE_string(device, "cpu", "cpu or cuda (the GPU is picked by the local rank)");
DEFINE_double(comm_timeout, 600, "seconds a collective may take before the job is ended");
DEFINE_int64(bytes, 1 << 20, "comm check: message size for the bandwidth line");
