#!/usr/bin/env python3
"""libvips side of `imgbench` (tools/imgbench.rs): in-process pyvips, operation cache off.

    VIPS_CONCURRENCY=1 python3 tools/vips_bench.py PHOTO WIDTH QUALITY RUNS OUTDIR FORMAT...

For each FORMAT (jpeg, webp, avif) it times RUNS iterations of thumbnail_buffer(PHOTO, WIDTH)
→ write_to_buffer at QUALITY after one warm-up, writes the last output to OUTDIR/vips.FORMAT,
and prints one JSON object: {"libvips": version, "formats": {FORMAT: {"ms": [..], "bytes": n}},
"peak_rss_kib": n}. Needs `pip install pyvips pyvips-binary` (imgbench installs them).
"""

import json
import resource
import sys
import time

import pyvips

SAVE = {
    # Progressive, like lastbyte's JPEG output at this size (libjpeg optimises its tables then).
    "jpeg": (".jpg", {"interlace": True}),
    "webp": (".webp", {}),
    # effort 2 of 0-9 is libaom's cpu-used 7: the closest to lastbyte's --avif-speed 6.
    "avif": (".avif", {"effort": 2}),
}


def main():
    photo, width, quality, runs, outdir = sys.argv[1:6]
    formats = sys.argv[6:]
    width, quality, runs = int(width), int(quality), int(runs)
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    data = open(photo, "rb").read()
    result = {"libvips": pyvips.version(0) * 100 + pyvips.version(1), "formats": {}}
    for fmt in formats:
        suffix, opts = SAVE[fmt]
        times = []
        out = b""
        for i in range(runs + 1):
            t0 = time.perf_counter()
            img = pyvips.Image.thumbnail_buffer(data, width)
            out = img.write_to_buffer(suffix, Q=quality, strip=True, **opts)
            dt = (time.perf_counter() - t0) * 1000.0
            if i > 0:
                times.append(dt)
        with open(f"{outdir}/vips.{fmt}", "wb") as f:
            f.write(out)
        result["formats"][fmt] = {"ms": times, "bytes": len(out)}
    result["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


if __name__ == "__main__":
    main()
