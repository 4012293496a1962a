// sharena-bench: one binary per process allocator, same sources.
//
//   bench_<alloc> [--shared=all|sharena|check|none] [--proc=none] [Google Benchmark flags]
//       the timing benchmarks (default mode)
//   bench_<alloc> --mode=memory [--out=FILE] [--shared=...]
//       committed against live bytes, as JSON
//   bench_<alloc> --mode=count [--shared=...]
//       fixed-count regions for valgrind --tool=callgrind --collect-atstart=no
//   bench_<alloc> --mode=pytrace-info
//       what the CPython trace of $SHB_PYTRACE holds, as JSON
//
// --shared says which shared-memory heaps run next to the process allocator:
// all (sharena and Boost.Interprocess), check (sharena's pair/64 and batch
// only, to show that the linked process allocator does not change sharena's
// figures), sharena (sharena's workloads only) or none. The default is all in
// the glibc binary, check elsewhere. --proc=none leaves out the process
// allocator's own benchmarks, memory and counts (bench_sharena_static).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"
#include "hooks.hpp"
#include "pytrace.hpp"

using namespace shb;

namespace {

const char *set_name(SharedSet s) {
    return s == SharedSet::kAll       ? "all"
           : s == SharedSet::kSharena ? "sharena"
           : s == SharedSet::kCheck   ? "check"
                                      : "none";
}

void usage() {
    fprintf(stderr,
            "usage: bench_%s [--mode=gb|memory|count] [--shared=all|sharena|check|none]\n"
            "                [--proc=none] [--out=FILE]\n"
            "                [Google Benchmark flags, e.g. --benchmark_filter=REGEX]\n",
            proc_name());
}

}  // namespace

int main(int argc, char **argv) {
    cleanup_install();
    std::string mode = "gb", out_path;
    SharedSet set = strcmp(proc_name(), "glibc") == 0 ? SharedSet::kAll : SharedSet::kCheck;
    bool proc = true;
    std::vector<char *> rest{argv[0]};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--mode=", 7) == 0) mode = a + 7;
        else if (strncmp(a, "--out=", 6) == 0) out_path = a + 6;
        else if (strcmp(a, "--shared=all") == 0) set = SharedSet::kAll;
        else if (strcmp(a, "--shared=check") == 0) set = SharedSet::kCheck;
        else if (strcmp(a, "--shared=sharena") == 0) set = SharedSet::kSharena;
        else if (strcmp(a, "--proc=none") == 0) proc = false;
        else if (strcmp(a, "--shared=none") == 0) set = SharedSet::kNone;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        } else rest.push_back(argv[i]);
    }
    fprintf(stderr, "sharena-bench: %s; %s; shared heaps: %s\n", proc_describe().c_str(),
            sharena_describe().c_str(), set_name(set));

    if (mode == "memory") {
        FILE *out = out_path.empty() ? stdout : fopen(out_path.c_str(), "w");
        if (!out) die("cannot write %s", out_path.c_str());
        bool first = true;
        fprintf(out, "[\n");
        if (proc) proc_memory(out, first);
        if (set == SharedSet::kAll || set == SharedSet::kSharena) shared_memory(out, first, set);
        fprintf(out, "\n]\n");
        if (out != stdout) fclose(out);
        return 0;
    }
    if (mode == "count") {
        if (proc) proc_count();
        if (set == SharedSet::kAll || set == SharedSet::kSharena) shared_count(set);
        return 0;
    }
    if (mode == "pytrace-info") {
        const PyTrace &t = pytrace();
        if (!t.ok) return 1;
        printf("{\"path\": \"%s\", \"records\": %llu, \"mallocs\": %llu, \"callocs\": %llu, "
               "\"reallocs\": %llu, \"frees\": %llu, \"aligned\": %llu, \"dropped_frees\": %llu, "
               "\"unknown_reallocs\": %llu, \"final_frees\": %llu, \"replay_ops\": %zu, \"slots\": %u, "
               "\"peak_live_bytes\": %llu, \"peak_live_blocks\": %llu}\n",
               t.path, (unsigned long long)t.records, (unsigned long long)t.mallocs,
               (unsigned long long)t.callocs, (unsigned long long)t.reallocs, (unsigned long long)t.frees,
               (unsigned long long)t.aligned, (unsigned long long)t.dropped_frees,
               (unsigned long long)t.unknown_reallocs, (unsigned long long)t.final_frees, t.nops, t.slots,
               (unsigned long long)t.peak_live_bytes, (unsigned long long)t.peak_live_blocks);
        return 0;
    }
    if (mode != "gb") {
        usage();
        return 64;
    }

    if (proc) proc_register();
    shared_register(set);
    benchmark::AddCustomContext("process_allocator", proc_describe());
    benchmark::AddCustomContext("sharena", sharena_describe());
    benchmark::AddCustomContext("shared_heaps", set_name(set));
    int n = int(rest.size());
    rest.push_back(nullptr);
    benchmark::Initialize(&n, rest.data());
    if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 64;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
