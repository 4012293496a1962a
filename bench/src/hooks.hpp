// The two halves of every benchmark binary.
//
//   proc.cpp    compiled once per binary, with SHB_PROC_<ALLOCATOR>: the
//               process allocator's benchmarks, memory probe and counts
//   shared.cpp  compiled once for all binaries: sharena and Boost.Interprocess
//
// main.cpp parses the mode and calls them.
#ifndef SHB_HOOKS_HPP
#define SHB_HOOKS_HPP

#include <cstdio>
#include <string>

namespace shb {

// Which shared heaps run next to the process allocator: none; sharena's
// check rows; sharena in full; sharena, Boost and the no-allocator control.
enum class SharedSet { kNone, kCheck, kSharena, kAll };

// proc.cpp
const char *proc_name();
std::string proc_describe();          // version, and the library that serves malloc
void proc_register();
void proc_memory(FILE *out, bool &first);
void proc_count();

// shared.cpp
std::string sharena_describe();
void shared_register(SharedSet set);
void shared_memory(FILE *out, bool &first, SharedSet set);   // kSharena or kAll
void shared_count(SharedSet set);

}  // namespace shb

#endif
