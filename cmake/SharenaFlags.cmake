# shr_flags: one INTERFACE target that every sharena target links. It carries
# the warnings, the debug level and the sanitizers, so they apply per target
# and never leak into the baselines the benchmarks link.
add_library(shr_flags INTERFACE)
target_compile_options(shr_flags INTERFACE
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  $<$<BOOL:${SHR_WERROR}>:-Werror>)
# C-only warnings must not reach C++ sources.
target_compile_options(shr_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wno-missing-prototypes -Wno-strict-prototypes>)
target_compile_definitions(shr_flags INTERFACE SHR_DEBUG=${SHR_DEBUG} _GNU_SOURCE)

if(SHR_SANITIZE)
  string(REPLACE ";" "," _shr_san "${SHR_SANITIZE}")
  target_compile_options(shr_flags INTERFACE -fsanitize=${_shr_san} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
  target_link_options(shr_flags INTERFACE -fsanitize=${_shr_san})
  if(_shr_san MATCHES "address")
    target_compile_definitions(shr_flags INTERFACE SHR_ASAN=1)
  endif()
  if(_shr_san MATCHES "thread")
    target_compile_definitions(shr_flags INTERFACE SHR_TSAN=1)
  endif()
endif()
