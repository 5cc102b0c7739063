#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets from the wire captures (tests/fixtures/wire/*.raw).

    python3 fuzz/seed_corpus.py      # from the crate root; writes fuzz/corpus/{head_parser,chunked,multipart}/

The corpora are git-ignored and cheap to regenerate; the input layouts are described at the top
of each target in fuzz/fuzz_targets/.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
WIRE = ROOT / "tests" / "fixtures" / "wire"
CORPUS = ROOT / "fuzz" / "corpus"
FIXED = b"------------------------fuzzfuzzfuzzfuzz"  # FIXED in fuzz_targets/multipart.rs


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main():
    captures = sorted(WIRE.glob("*.raw"))
    for raw_path in captures:
        name = raw_path.stem
        raw = raw_path.read_bytes()
        end = raw.index(b"\r\n\r\n") + 4
        head, chunked = raw[:end], raw[end:]
        # head_parser: [max_head selector, step seed, bytes]; 6 = 64 KiB.
        write("head_parser", name, bytes([6, 1]) + head + chunked[:64])
        write("head_parser", name + "-small-limit", bytes([1, 7]) + head)
        # chunked: [ctl, split_hi, split_lo, body]; ctl 5 = 1 MiB limit, chunk of 1.
        split = min(len(chunked), 0xFFFF) // 2
        write("chunked", name, bytes([5, split >> 8, split & 0xFF]) + chunked + b"NEXT")
        # multipart: [n, content-type, body], and the body rewritten to the fixed boundary.
        ct = re.search(rb"Content-Type: ([^\r]*)", head).group(1)
        boundary = re.search(rb"boundary=(\S+)", ct).group(1)
        body = (WIRE / (name + ".body")).read_bytes()
        write("multipart", name, bytes([len(ct)]) + ct + body)
        write("multipart", name + "-fixed", bytes([0]) + body.replace(boundary, FIXED))
    # A few small hand-written seeds for the corners.
    write("head_parser", "get", bytes([3, 1]) + b"GET /bytes/1K?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    write("head_parser", "lf", bytes([3, 2]) + b"\r\nGET / HTTP/1.0\nConnection: keep-alive\n\n")
    write(
        "head_parser",
        "cl",
        bytes([3, 3]) + b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    )
    write("chunked", "ext-trailers", bytes([4, 0, 9]) + b"4;a=b\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\nNEXT")
    write("chunked", "empty", bytes([0, 0, 1]) + b"0\r\n\r\n")
    write(
        "multipart",
        "tiny",
        bytes([0]) + b"--" + FIXED + b"\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\nxyz\r\n--" + FIXED + b"--\r\n",
    )
    print(f"wrote seeds for {len(captures)} captures under {CORPUS}")


if __name__ == "__main__":
    main()
