#!/usr/bin/env python3
"""Draws build/results/bench.json (update_bench) as an SVG chart with gnuplot (Debian gnuplot-nox).

  chart.py BENCH_JSON SVG

One group of bars per case: the update time, the bus limit of the whole image and the flash limit
(erase and program time at the profile's datasheet figures), on a logarithmic time axis, and the
largest SDO response of the case on a second axis against the 100 ms target.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cases = [c for c in json.loads(Path(sys.argv[1]).read_text())["cases"] if c["ok"]]
    if not cases:
        sys.exit("chart.py: no successful case in " + sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cases.dat"
        with data.open("w") as out:
            for c in cases:
                # gnuplot's log axis cannot show 0: a sparse update of nothing gets 1 ms.
                flash = max(c.get("flash_limit_s", 0.0), 0.001)
                out.write(f'"{c["name"]}" {c["update_s"]:.4f} {c["bus_limit_s"]:.4f} '
                          f'{flash:.4f} {c["max_sdo_response_ms"]:.3f}\n')
        width = max(900, 26 * len(cases) + 200)
        script = f"""
set terminal svg size {width},560 dynamic font "sans,10" background rgb "white"
set output "{sys.argv[2]}"
set title "rtcanboot update benchmark (twin, virtual time): update time against the bus and flash limits"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set ylabel "seconds (log)"
set y2label "largest SDO response, ms"
set y2range [0:120]
set y2tics 0,20,120
set ytics nomirror
set xtics rotate by -60 scale 0 font "sans,8"
set key above horizontal
set grid ytics
plot "{data}" using 2:xtic(1) title "update time" lc rgb "#1f77b4", \\
     "" using 3 title "bus limit (whole image)" lc rgb "#aaaaaa", \\
     "" using 4 title "flash limit" lc rgb "#ff7f0e", \\
     "" using 0:5 axes x1y2 with points pt 7 ps 0.6 lc rgb "#d62728" title "largest SDO response (ms, right)", \\
     100 axes x1y2 with lines dt 2 lc rgb "#d62728" title "100 ms target"
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


if __name__ == "__main__":
    main()
