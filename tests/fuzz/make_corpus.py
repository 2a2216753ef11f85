#!/usr/bin/env python3
"""Writes the converters' seed corpora (tests/fuzz/corpus/fuzz_convert_*) in the harness's input
encoding: each file a FuzzedDataProvider string (backslashes doubled, ended by '\\' + newline),
then the option bytes, which the provider reads from the end (all zero: the defaults)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def encode(files, tail):
    out = b""
    for f in files:
        out += f.replace(b"\\", b"\\\\") + b"\\\n"
    return out + tail


ML100K = [
    b"2\t20\t4\t300\n1\t10\t5\t200\n1\t30\t1\t100\n10\t10\t3\t50\n2\t30\t5\t300\n",
    b"10|Caf\xe9 Society (1995)|01-Jan-1995||http://x|0|1|1\n20|Toy Story (1995)|01-Jan-1995||http://y|0|0|1\n"
    b"30|Heat (1995)|01-Jan-1995||http://z|1|0|0\n",
    b"unknown|0\nAction|1\nDrama|2\n\n",
]
ML1M = [
    b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
    b"1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n",
]
SEQ = {
    "lines": b"1 10 20 30\n2 20 30\n3 30 10 20 10\n",
    "pairs": b"1 10\n1 20\n2 10\n2 30\n3 20\n",
    "strings": b"u1 itemA itemB\nu2 itemB itemC itemA\n",
}
CSV = {
    "comma": b"user,item,timestamp,rating\n1,10,100,4\n1,20,101,2\n2,10,99,5\n2,30,150,3\n",
    "semicolon": b"userId;movieId;rating;timestamp\n1;10;4.5;100\n2;10;3.0;90\n",
    "tab": b"user\titem\n7\t1\n7\t2\n8\t1\n",
    "quoted": b'user,item,timestamp\n"a,1",x,5\nb,"y ""z""",6\n',
}
# Option bytes, read from the end: ConsumeBool (movielens: ML-1M when odd), then the flags byte.
ZEROS = b"\0" * 16


def main():
    def put(harness, name, data):
        d = os.path.join(HERE, "corpus", harness)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    put("fuzz_convert_movielens", "ml100k", encode(ML100K, ZEROS))
    put("fuzz_convert_movielens", "ml1m", encode(ML1M, ZEROS[:-1] + b"\1"))
    put("fuzz_convert_movielens", "ml100k-min-rating-kcore", encode(ML100K, b"\2\1\1" + b"\0" * 4 + bytes([8 | 16]) + b"\0"))
    for name, text in SEQ.items():
        put("fuzz_convert_seq", name, encode([text], ZEROS))
    put("fuzz_convert_seq", "pairs-dedup", encode([SEQ["pairs"]], ZEROS[:-1] + bytes([2 | 4])))
    for name, text in CSV.items():
        put("fuzz_convert_csv", name, encode([text], ZEROS))
    put("fuzz_convert_csv", "window", encode([CSV["comma"]], b"\0\0\0\x64\0\0\0\x96" + bytes([32 | 64])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
