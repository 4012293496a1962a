// C++'s operator new and delete under libsharena-malloc.so: every form, the
// new-handler, std::bad_alloc, and the containers that use them.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <sharena.h>
#include <sharena/malloc.h>

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            std::exit(1);                                                            \
        }                                                                            \
    } while (0)

struct alignas(256) Wide {
    char b[300];
};

static int handler_calls;
static void handler() {
    handler_calls++;
    std::set_new_handler(nullptr); // next failure throws
}

int main() {
    shr_heap_t *h = shr_malloc_heap ? shr_malloc_heap() : nullptr;
    CHECK(h != nullptr);
    int *i = new int(7);
    CHECK(shr_off(h, i) != 0 && *i == 7);
    delete i;
    int *a = new int[1000]();
    CHECK(a[999] == 0 && shr_off(h, a) != 0);
    delete[] a;
    Wide *w = new Wide;
    CHECK(reinterpret_cast<uintptr_t>(w) % 256 == 0);
    delete w;
    Wide *wa = new Wide[3];
    CHECK(reinterpret_cast<uintptr_t>(wa) % 256 == 0);
    delete[] wa;
    void *big = ::operator new(1 << 20, std::align_val_t(1 << 16));
    CHECK(reinterpret_cast<uintptr_t>(big) % (1 << 16) == 0);
    ::operator delete(big, std::align_val_t(1 << 16));
    void *sized = ::operator new(100);
    ::operator delete(sized, 100);
    CHECK(::operator new(SIZE_MAX / 2, std::nothrow) == nullptr);
    CHECK(::operator new[](SIZE_MAX / 2, std::nothrow) == nullptr);
    bool threw = false;
    std::set_new_handler(handler);
    try {
        void *p = ::operator new(SIZE_MAX / 2);
        (void)p;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw && handler_calls == 1);
    std::map<std::string, std::vector<std::string>> m;
    for (int k = 0; k < 20000; k++) m[std::to_string(k % 997)].push_back(std::string(k % 300, 'x'));
    CHECK(m.size() == 997);
    auto sp = std::make_shared<std::string>("shared");
    CHECK(*sp == "shared");
    std::puts("cxx ok");
    return 0;
}
