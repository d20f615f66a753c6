"""`make bench`: every benchmark, each printing its ratio against a baseline from the same run."""

from bench import bench_audit, bench_policy, bench_sandbox

for bench in (bench_sandbox, bench_audit, bench_policy):
    bench.main()
