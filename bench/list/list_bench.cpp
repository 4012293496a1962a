// The shared list's costs: get and set of an int and of a 16-byte str (and
// the lock-free copy of one, shr_list_read_copy), from
// one process and from two at once on the same list (the second process
// runs the same operation in a loop while the first is measured), append,
// and count over 1000 items. Google Benchmark; run by bench/run.sh, which
// also times CPython's ShareableList (cpython_sl.py) for scale.
#include <benchmark/benchmark.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include <sharena.h>

namespace {

shr_heap_t *heap;
std::string heap_name;
int counter;

const char kStr16[] = "0123456789abcdef";

enum Op { GET_INT, GET_STR, COPY_STR, SET_INT, SET_STR };

// A fresh list of 1000 items of the kind the operation reads or writes.
shr_list_t *make_list(const char *name, bool strings)
{
    static shr_value_t v[1000];
    for (int i = 0; i < 1000; i++) v[i] = strings ? shr_strn(kStr16, 16) : shr_int(i);
    shr_list_t *l = nullptr;
    if (shr_list_create(heap, name, v, 1000, &l) != 0) std::abort();
    return l;
}

// One operation on item i; what the benchmark measures.
inline void do_op(shr_list_t *l, Op op, int64_t i)
{
    shr_value_t v;
    switch (op) {
    case GET_INT:
        shr_list_get(l, i, &v);
        benchmark::DoNotOptimize(v.u.i);
        break;
    case GET_STR:
        shr_list_get(l, i, &v);
        benchmark::DoNotOptimize(v.u.s.data[0]);
        shr_value_release(heap, &v);
        break;
    case COPY_STR: {
        alignas(16) char buf[64];
        shr_list_read_copy(l, i, &v, buf, sizeof buf);
        benchmark::DoNotOptimize(buf[0]);
        break;
    }
    case SET_INT:
        v = shr_int(i);
        shr_list_set(l, i, &v);
        break;
    case SET_STR:
        v = shr_strn(kStr16, 16);
        shr_list_set(l, i, &v);
        break;
    }
}

// A second process doing the same operation on the same list until killed.
pid_t start_peer(const char *name, Op op)
{
    int ready[2];
    if (pipe(ready) != 0) std::abort();
    pid_t pid = fork();
    if (pid == 0) {
        shr_list_t *l;
        if (shr_list_attach(heap, name, &l) != 0) _exit(1);
        char c = 1;
        if (write(ready[1], &c, 1) != 1) _exit(1);
        for (int64_t i = 0;; i = (i + 7) % 1000) do_op(l, op, i);
    }
    char c;
    if (read(ready[0], &c, 1) != 1) std::abort();
    close(ready[0]);
    close(ready[1]);
    return pid;
}

void BM_list(benchmark::State &state, Op op)
{
    char name[64];
    snprintf(name, sizeof name, "bl%d", counter++);
    shr_list_t *l = make_list(name, op == GET_STR || op == COPY_STR || op == SET_STR);
    pid_t peer = state.range(0) == 2 ? start_peer(name, op) : 0;
    int64_t i = 0;
    for (auto _ : state) {
        do_op(l, op, i);
        i = i + 1 == 1000 ? 0 : i + 1;
    }
    if (peer) {
        kill(peer, SIGKILL);
        waitpid(peer, nullptr, 0);
        shr_heap_recover(heap); /* release what the killed peer held */
    }
    state.counters["procs"] = static_cast<double>(state.range(0));
    shr_list_close(l);
    shr_list_unlink(heap, name);
}

void BM_list_append(benchmark::State &state)
{
    shr_list_t *l;
    if (shr_list_create(heap, nullptr, nullptr, 0, &l) != 0) std::abort();
    int64_t n = 0;
    for (auto _ : state) {
        shr_value_t v = shr_int(n);
        shr_list_append(l, &v);
        if (++n == 1000000) { /* keep the list bounded, outside the timing */
            state.PauseTiming();
            shr_list_close(l);
            if (shr_list_create(heap, nullptr, nullptr, 0, &l) != 0) std::abort();
            n = 0;
            state.ResumeTiming();
        }
    }
    shr_list_close(l);
}

void BM_list_count_1000(benchmark::State &state)
{
    shr_list_t *l = make_list("blcount", false);
    shr_value_t needle = shr_int(999);
    size_t c = 0;
    for (auto _ : state) {
        shr_list_count(l, &needle, &c);
        benchmark::DoNotOptimize(c);
    }
    shr_list_close(l);
    shr_list_unlink(heap, "blcount");
}

BENCHMARK_CAPTURE(BM_list, get_int, GET_INT)->Arg(1)->Arg(2)->ArgName("procs");
BENCHMARK_CAPTURE(BM_list, get_str16, GET_STR)->Arg(1)->Arg(2)->ArgName("procs");
BENCHMARK_CAPTURE(BM_list, copy_str16, COPY_STR)->Arg(1)->Arg(2)->ArgName("procs");
BENCHMARK_CAPTURE(BM_list, set_int, SET_INT)->Arg(1)->Arg(2)->ArgName("procs");
BENCHMARK_CAPTURE(BM_list, set_str16, SET_STR)->Arg(1)->Arg(2)->ArgName("procs");
BENCHMARK(BM_list_append);
BENCHMARK(BM_list_count_1000);

} // namespace

int main(int argc, char **argv)
{
    const char *prefix = getenv("SHB_SHM_PREFIX");
    heap_name = std::string(prefix ? prefix : "shb_") + "list_" + std::to_string(getpid());
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.flags = SHR_HEAP_UNLINK_ON_LAST_CLOSE;
    int rc = shr_heap_create(heap_name.c_str(), &o, &heap);
    if (rc != 0) {
        fprintf(stderr, "bench_list: %s\n", shr_strerror(rc));
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    shr_heap_close(heap);
    shr_heap_unlink(heap_name.c_str());
    return 0;
}
