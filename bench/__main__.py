"""`make bench`: every benchmark, each printing its ratio against a baseline from the same run."""

from bench import (
    bench_audit,
    bench_browser,
    bench_delivery,
    bench_policy,
    bench_sandbox,
    bench_sql,
    bench_webhook,
)

for bench in (
    bench_sandbox,
    bench_audit,
    bench_policy,
    bench_webhook,
    bench_delivery,
    bench_sql,
    bench_browser,
):
    bench.main()
